"""SQLiteChannelLayer: the conformance suite, then what only the SQLite layer promises.

Several tests start real processes (``sys.executable`` running :data:`CHILD`) on one layer
file; the others use two layer instances in this process, which the file cannot tell apart
from two processes.  Intervals (lease, grace) are shortened so pruning happens in tens of
milliseconds; waits are bounded by ``anyio.fail_after``, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from interlock.layers import (
    ChannelFull,
    ChannelLayerError,
    DropCountingLayer,
    LayerClosed,
    LayerFileReplaced,
    ListableGroupLayer,
    SQLiteChannelLayer,
)
from interlock.layers import _cli as cli
from interlock.layers import _sqlite as sqlite_module
from interlock.layers import _sqlite_conns as sqlite_conns
from interlock.layers import _sqlite_file as dbfile
from interlock.layers import _sqlite_store as store
from interlock.layers._sqlite_lease import LeaseKeeper
from interlock.layers._wire import decode, encode
from interlock.layers.testing import ChannelLayerConformance, LayerFactory, lets_other_tasks_run

WAIT = 10.0  # seconds any single wait may take before the test fails


# -- guards and helpers --------------------------------------------------------------------------


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return trio.lowlevel.in_trio_run()
    return True


class _GuardedConnection(sqlite3.Connection):
    """A connection that fails the test if it could wait on an event loop thread.

    Only a connection set up for the loop (``dbfile.for_event_loop``) may run there, and
    only with a zero busy timeout, and never a checkpoint.
    """

    for_loop = False

    def _check(self, sql: str) -> None:
        if not _on_event_loop():
            return
        assert self.for_loop, f"sqlite3 call on the event loop, on a worker thread's connection: {sql!r}"
        assert "checkpoint" not in sql, f"checkpoint on the event loop: {sql!r}"
        (timeout,) = super().execute("PRAGMA busy_timeout").fetchone()
        assert timeout == 0, f"the loop's connection may wait {timeout} ms for a lock: {sql!r}"

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        self._check(args[0])
        return super().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        self._check(args[0])
        return super().executemany(*args, **kwargs)


@pytest.fixture(autouse=True)
def no_waiting_sqlite_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection the layer opens refuses to wait on an event loop thread."""
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        assert not _on_event_loop(), "sqlite3.connect on the event loop"
        return real_connect(*args, factory=_GuardedConnection, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    real_for_event_loop = dbfile.for_event_loop

    def for_event_loop(conn: sqlite3.Connection) -> sqlite3.Connection:
        assert isinstance(conn, _GuardedConnection)
        conn.for_loop = True
        return real_for_event_loop(conn)

    monkeypatch.setattr(dbfile, "for_event_loop", for_event_loop)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "layer.sqlite3"


def fast(path: Path, **options: Any) -> SQLiteChannelLayer:
    """A layer whose lease beats (and prunes) every 0.1 s."""
    options.setdefault("lease", 0.3)
    options.setdefault("grace", 0.3)
    return SQLiteChannelLayer(path, **options)


def query(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the layer file directly (call from a worker thread, or from sync tests)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def aquery(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await anyio.to_thread.run_sync(lambda: query(path, sql, *params))


def sync_check(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """An async check for :func:`eventually` from a plain one."""

    async def run() -> bool:
        return check()

    return run


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll the async *check* until it returns true; fail naming *what* after WAIT seconds."""
    with anyio.move_on_after(WAIT) as scope:
        while not await check():  # noqa: ASYNC110 - waits on another process's doing
            await anyio.sleep(0.02)
    if scope.cancelled_caught:
        pytest.fail(f"timed out waiting until {what}")


# -- the conformance suite -----------------------------------------------------------------------


class TestSQLiteConformance(ChannelLayerConformance):
    @pytest.fixture
    def layer_factory(self, tmp_path: Path) -> LayerFactory:
        @asynccontextmanager
        async def make_layer(**options: Any) -> AsyncIterator[SQLiteChannelLayer]:
            async with SQLiteChannelLayer(tmp_path / "layer.sqlite3", **options) as layer:
                yield layer

        return make_layer

    @pytest.fixture
    async def layer(self, layer_factory: LayerFactory) -> AsyncIterator[Any]:
        async with layer_factory() as layer:
            yield layer


# -- constructor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"capacity": 0}, "0"),
        ({"capacity": 2.5}, "2.5"),
        ({"expiry": 0}, "0"),
        ({"expiry": math.nan}, "nan"),
        ({"expiry": math.inf}, "inf"),
        ({"group_expiry": -1}, "-1"),
        ({"lease": 0}, "0"),
        ({"grace": -0.5}, "-0.5"),
        ({"poll_interval": math.nan}, "nan"),
        ({"channel_capacity": {"http.*": 0}}, "http.*"),
    ],
)
def test_constructor_rejects_bad_arguments(path: Path, options: dict[str, Any], shown: str) -> None:
    with pytest.raises(ValueError, match="must be") as caught:
        SQLiteChannelLayer(path, **options)
    assert shown in str(caught.value)


def test_constructor_keeps_settings_and_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "layer.sqlite3"
    layer = SQLiteChannelLayer(path, capacity=7, expiry=2.5, lease=3, grace=4, poll_interval=0.01)
    assert (layer.capacity, layer.expiry, layer.lease, layer.grace) == (7, 2.5, 3.0, 4.0)
    assert layer.group_expiry is None
    assert not path.parent.exists()
    assert isinstance(layer, ListableGroupLayer)


# -- the file at start-up ------------------------------------------------------------------------


@contextmanager
def read_only(target: Path) -> Iterator[None]:
    """Make *target* unwritable, even for root (chattr +i), or skip."""
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(target)], check=False).returncode:
            pytest.skip("running as root and cannot make a file immutable with chattr")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(target)], check=True)
    else:
        mode = target.stat().st_mode
        target.chmod(0o555 if target.is_dir() else 0o444)
        try:
            yield
        finally:
            target.chmod(mode)


async def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(FileNotFoundError, match=r"directory .*no-such-dir.* does not exist"):
        await SQLiteChannelLayer(missing / "layer.sqlite3").start()


async def test_directory_as_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory"):
        await SQLiteChannelLayer(tmp_path).start()


async def test_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    await anyio.Path(path).write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(dbfile.LayerFileError, match="not a SQLite database, or it is corrupt") as caught:
        await SQLiteChannelLayer(path).start()
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ChannelLayerError)
    assert str(path) in str(caught.value)


async def test_corrupt_layer_file_is_refused(path: Path) -> None:
    async with SQLiteChannelLayer(path) as layer:
        await layer.group_add("room", "worker.alpha")
    data = bytearray(await anyio.Path(path).read_bytes())
    data[:16] = b"garbage garbage!"
    await anyio.Path(path).write_bytes(bytes(data))
    with pytest.raises(dbfile.LayerFileError, match="corrupt"):
        await SQLiteChannelLayer(path).start()


async def test_another_applications_database_is_refused(path: Path) -> None:
    await anyio.to_thread.run_sync(lambda: query(path, "CREATE TABLE users (id INTEGER)"))
    with pytest.raises(dbfile.LayerFileError, match=r"another application \(tables \['users'\]\)"):
        await SQLiteChannelLayer(path).start()


def test_a_file_initialised_by_another_process_meanwhile_is_accepted(path: Path) -> None:
    """A regression: two processes starting on a new file at once; one read the blank header,
    the other initialised the file, and the first took its tables for another application's."""
    dbfile.connect(path).close()  # the other process: schema and header, committed together
    late = sqlite3.connect(path)
    try:
        dbfile._initialise(late, path)  # what the first process did next, having seen a blank header
        assert dbfile._header(late) == (dbfile.APPLICATION_ID, dbfile.SCHEMA_VERSION)
    finally:
        late.close()


def test_wal_mode_waits_for_another_process_initialising_the_file(path: Path) -> None:
    """A regression: the second of two processes starting on a new file asked for WAL mode while
    the first held the file to write the schema, and failed with 'database is locked'."""
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("BEGIN IMMEDIATE")  # the other process, writing the schema
    second = sqlite3.connect(path, isolation_level=None)
    timer = threading.Timer(0.2, lambda: first.execute("COMMIT"))
    timer.start()
    try:
        dbfile._set_wal(second)  # waits for the commit rather than failing at once
        assert second.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        timer.join()
        first.close()
        second.close()


async def test_newer_schema_is_refused(path: Path) -> None:
    async with SQLiteChannelLayer(path) as layer:
        await layer.group_add("room", "worker.alpha")
    await aquery(path, "PRAGMA user_version = 99")
    with pytest.raises(dbfile.LayerFileError, match="schema version is 99, written by a newer interlock"):
        await SQLiteChannelLayer(path).start()


async def test_read_only_file_is_refused(path: Path) -> None:
    async with SQLiteChannelLayer(path) as layer:
        await layer.group_add("room", "worker.alpha")
    with read_only(path), pytest.raises(PermissionError, match="read-only") as caught:
        await SQLiteChannelLayer(path).start()
    assert str(path) in str(caught.value)


async def test_read_only_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "locked"
    directory.mkdir()
    with read_only(directory), pytest.raises(PermissionError, match="read-only"):
        await SQLiteChannelLayer(directory / "layer.sqlite3").start()


async def test_a_new_file_is_its_owners_only_and_an_existing_one_keeps_its_mode(tmp_path: Path) -> None:
    fresh, shared = tmp_path / "fresh.sqlite3", tmp_path / "shared.sqlite3"
    async with SQLiteChannelLayer(fresh) as layer:
        await layer.send("worker.alpha", {"type": "secret"})  # waits in the file, and in its WAL
        modes = await anyio.to_thread.run_sync(lambda: {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()})
    assert modes == {"fresh.sqlite3": 0o600, "fresh.sqlite3-wal": 0o600, "fresh.sqlite3-shm": 0o600}
    async with SQLiteChannelLayer(shared):
        pass
    shared.chmod(0o660)  # shared with the group on purpose
    async with SQLiteChannelLayer(shared):
        assert shared.stat().st_mode & 0o777 == 0o660


async def test_lazy_start_raises_at_first_use(tmp_path: Path) -> None:
    layer = SQLiteChannelLayer(tmp_path / "nowhere" / "layer.sqlite3")
    with pytest.raises(FileNotFoundError):
        await layer.send("worker.alpha", {"type": "x"})


async def test_file_is_wal_with_a_schema_version(path: Path) -> None:
    async with SQLiteChannelLayer(path):
        assert await aquery(path, "PRAGMA journal_mode") == [("wal",)]
        assert await aquery(path, "PRAGMA user_version") == [(dbfile.SCHEMA_VERSION,)]
        assert await aquery(path, "PRAGMA application_id") == [(dbfile.APPLICATION_ID,)]


# -- the wire format -----------------------------------------------------------------------------

WIRE_VALUES = [
    pytest.param({"\x00b": "looks like a tag"}, id="tag-lookalike"),
    pytest.param({"\x00b": b"x", "\x00\x00": 1, "\x00": None}, id="nul-keys"),
    pytest.param([{"\x00b": "QQ=="}], id="tag-lookalike-in-list"),
    pytest.param("lone \ud800 surrogate", id="lone-surrogate"),
    pytest.param("backslash \\u0000 text", id="escaped-looking-text"),
    pytest.param(-0.0, id="negative-zero"),
    pytest.param(math.inf, id="inf"),
    pytest.param(10**40, id="huge-int"),
    pytest.param(5e-324, id="denormal"),
]


@pytest.mark.parametrize("value", WIRE_VALUES)
def test_wire_round_trips_awkward_values(value: Any) -> None:
    message = {"type": "t", "value": value}
    text = encode(message)
    assert text.isascii()
    assert decode(text) == message
    assert repr(decode(text)) == repr(message)


def test_wire_keeps_nan() -> None:
    assert math.isnan(decode(encode({"type": "t", "v": math.nan}))["v"])


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5), _values, max_size=5))
def test_wire_round_trips_every_allowed_value(values: dict[str, Any]) -> None:
    message = {**values, "type": "t"}
    assert repr(decode(encode(message))) == repr(message)


# -- two processes on one file (two instances here) ----------------------------------------------


@pytest.fixture
async def pair(path: Path) -> AsyncIterator[tuple[SQLiteChannelLayer, SQLiteChannelLayer]]:
    async with fast(path) as a, fast(path) as b:
        yield a, b


async def test_send_to_another_process_keeps_order(pair: tuple[SQLiteChannelLayer, ...]) -> None:
    a, b = pair
    channel = await b.new_channel()
    for n in range(50):
        await a.send(channel, {"type": "n", "n": n, "raw": bytes([n])})
    with anyio.fail_after(WAIT):
        got = [await b.receive(channel) for _ in range(50)]
    assert got == [{"type": "n", "n": n, "raw": bytes([n])} for n in range(50)]


async def test_a_backlog_bigger_than_a_claim_arrives_whole_and_in_order(path: Path) -> None:
    count = store.CLAIM_BATCH * 2 + 7  # three claims, the first two of a whole batch
    async with fast(path, capacity=count) as a, fast(path, capacity=count) as b:
        channel = await b.new_channel()  # b waits for nothing yet: the backlog builds in the file
        for n in range(count):
            await a.send(channel, {"type": "n", "n": n})
        with anyio.fail_after(WAIT):
            assert [(await b.receive(channel))["n"] for _ in range(count)] == list(range(count))


async def test_receiver_waiting_before_the_send_wakes(pair: tuple[SQLiteChannelLayer, ...]) -> None:
    a, b = pair
    channel = await b.new_channel()
    got: list[Any] = []

    async def receive() -> None:
        got.append(await b.receive(channel))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await a.send(channel, {"type": "late"})
    assert got == [{"type": "late"}]


async def test_group_send_reaches_members_of_both_processes(pair: tuple[SQLiteChannelLayer, ...]) -> None:
    a, b = pair
    in_a, in_b = await a.new_channel(), await b.new_channel()
    await a.group_add("room", in_a)
    await b.group_add("room", in_b)
    await b.group_add("room", "worker.alpha")
    assert await a.group_members("room") == {in_a, in_b, "worker.alpha"}
    assert await b.groups() == {"room": 3}
    for n in range(3):
        await a.group_send("room", {"type": "chat", "n": n})
    with anyio.fail_after(WAIT):
        for layer, channel in ((a, in_a), (b, in_b), (b, "worker.alpha")):
            assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("remote", [sqlite_module._FAST_FANOUT, sqlite_module._FAST_FANOUT + 8])
async def test_group_send_to_many_members_elsewhere(pair: tuple[SQLiteChannelLayer, ...], remote: int) -> None:
    a, b = pair  # up to _FAST_FANOUT of b's members are queued from a's loop, more from a thread
    theirs = [await b.new_channel() for _ in range(remote)]
    mine = await a.new_channel()
    for channel in [*theirs, mine]:
        await a.group_add("crowd", channel)
    await a.group_send("crowd", {"type": "hello"})
    with anyio.fail_after(WAIT):
        assert await a.receive(mine) == {"type": "hello"}
        for channel in theirs:
            assert await b.receive(channel) == {"type": "hello"}
    assert await aquery(b.path, "SELECT COUNT(*) FROM messages") == [(0,)]


async def test_named_channel_delivers_each_message_once(pair: tuple[SQLiteChannelLayer, ...]) -> None:
    a, b = pair
    got: list[tuple[str, int]] = []

    async def work(name: str, layer: SQLiteChannelLayer) -> None:
        while True:
            got.append((name, (await layer.receive("worker.shared"))["n"]))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(work, "a", a)
            tasks.start_soon(work, "b", b)
            for n in range(40):
                await a.send("worker.shared", {"type": "job", "n": n})
            while len(got) < 40:  # noqa: ASYNC110 - two layers' receivers, no shared event
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            tasks.cancel_scope.cancel()
    assert sorted(n for _, n in got) == list(range(40))


async def test_stored_queue_has_a_capacity(path: Path) -> None:
    async with fast(path, capacity=2) as a, fast(path, capacity=2) as b:
        channel = await b.new_channel()  # b never receives, so its messages stay in the file
        await a.send(channel, {"type": "n", "n": 1})
        await a.send(channel, {"type": "n", "n": 2})
        with pytest.raises(ChannelFull, match=channel):
            await a.send(channel, {"type": "n", "n": 3})
        with anyio.fail_after(WAIT):
            assert (await b.receive(channel))["n"] == 1
            assert (await b.receive(channel))["n"] == 2


async def test_stored_queue_accepts_again_once_drained(path: Path) -> None:
    async with fast(path, capacity=3) as a, fast(path, capacity=3) as b:
        channel = await b.new_channel()
        got: list[int] = []
        sent = 0
        with anyio.fail_after(WAIT):
            while sent < 20:
                try:
                    await a.send(channel, {"type": "n", "n": sent})
                    sent += 1
                except ChannelFull:
                    got.append((await b.receive(channel))["n"])
            while len(got) < 20:
                got.append((await b.receive(channel))["n"])
        assert got == list(range(20))


async def test_stored_messages_expire(path: Path) -> None:
    async with fast(path, expiry=0.2) as a, fast(path, expiry=0.2) as b:
        channel = await b.new_channel()
        await a.send(channel, {"type": "old"})
        await anyio.sleep(0.4)
        await a.send(channel, {"type": "new"})
        with anyio.fail_after(WAIT):
            assert await b.receive(channel) == {"type": "new"}


async def test_group_send_skips_a_full_stored_member(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with fast(path, capacity=1) as a, fast(path, capacity=1) as b:
        full, free = await b.new_channel(), await a.new_channel()
        await a.send(full, {"type": "first"})
        await a.group_add("room", full)
        await a.group_add("room", free)
        await a.group_send("room", {"type": "second"})
        with anyio.fail_after(WAIT):
            assert await a.receive(free) == {"type": "second"}
            assert await b.receive(full) == {"type": "first"}
    assert any(full in record.getMessage() for record in caplog.records)


async def test_close_drops_own_memberships_at_once(pair: tuple[SQLiteChannelLayer, ...]) -> None:
    a, b = pair
    mine = await a.new_channel()
    await a.group_add("room", mine)
    await a.group_add("room", "worker.alpha")
    await a.close()
    assert await b.group_members("room") == {"worker.alpha"}


async def test_unknown_owners_channel_is_pruned_after_grace(path: Path) -> None:
    async with fast(path, grace=0.2) as layer:
        await layer.group_add("room", "ghost.0123456789ab!dead")
        await layer.group_add("room", "worker.alpha")
        assert await layer.group_members("room") == {"ghost.0123456789ab!dead", "worker.alpha"}

        async def pruned() -> bool:
            return await layer.group_members("room") == {"worker.alpha"}

        await eventually(pruned, "the ghost's membership is pruned")


async def test_lost_lease_is_renewed_with_its_memberships(pair: tuple[SQLiteChannelLayer, ...], path: Path) -> None:
    a, b = pair
    mine = await a.new_channel()
    await a.group_add("room", mine)
    process = mine.partition("!")[0].rpartition(".")[2]
    # As if a stalled a had been pruned by b:
    await anyio.to_thread.run_sync(lambda: _drop_process(path, process))
    assert await b.group_members("room") == frozenset()

    async def restored() -> bool:
        return await b.group_members("room") == {mine}

    await eventually(restored, "a's membership is restored")
    await b.group_send("room", {"type": "back"})
    with anyio.fail_after(WAIT):
        assert await a.receive(mine) == {"type": "back"}


def _drop_process(path: Path, process: str) -> None:
    conn = dbfile.connect(path, create=False)
    try:
        store.call(conn, store.unregister, process)
    finally:
        conn.close()


async def test_group_expiry_is_optional(path: Path) -> None:
    async with fast(path, group_expiry=0.2) as layer:
        await layer.group_add("room", "worker.alpha")
        await anyio.sleep(0.4)
        assert await layer.group_members("room") == frozenset()
        assert await layer.groups() == {}


async def test_waiting_receive_raises_layer_closed(path: Path) -> None:
    layer = fast(path)
    channel = await layer.new_channel()
    errors: list[Exception] = []

    async def receive(name: str) -> None:
        try:
            await layer.receive(name)
        except LayerClosed as exc:
            errors.append(exc)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive, channel)
            tasks.start_soon(receive, "worker.alpha")
            await anyio.wait_all_tasks_blocked()
            await layer.close()
    assert len(errors) == 2
    assert all("was closed" in str(error) for error in errors)


async def test_memberships_survive_a_restart_in_process(path: Path) -> None:
    async with fast(path) as first:
        await first.group_add("workers", "worker.alpha")
        await first.group_add("workers", await first.new_channel())
    async with fast(path) as second:
        assert await second.group_members("workers") == {"worker.alpha"}


async def test_ownership_is_read_from_the_name(path: Path) -> None:
    async with fast(path) as layer:
        process = (await layer.new_channel()).partition("!")[0].rpartition(".")[2]
        for channel in (f"a.{process}!x", f"a.b.{process}!", f"{process}!y"):
            await layer.send(channel, {"type": "mine"})
            assert channel in layer._local  # the in-memory queue: ours
            assert await layer.receive(channel) == {"type": "mine"}
        for channel in (f"a.x{process}!x", f"{process}.a!x", f"{process}x!", "worker.alpha"):
            await layer.send(channel, {"type": "theirs"})
            assert channel not in layer._local  # the file: someone else's or named
            with anyio.fail_after(WAIT):
                assert await layer.receive(channel) == {"type": "theirs"}


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the file's write lock from another connection."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def test_a_locked_file_makes_writers_wait_not_fail(path: Path) -> None:
    async with fast(path) as layer, fast(path) as other:
        theirs = await other.new_channel()
        await layer.group_add("room", theirs)
        await layer.send("worker.beta", {"type": "queued"})
        locked = anyio.Event()
        release = threading.Event()
        ticks = 0
        got: list[Any] = []

        def hold() -> None:
            with write_lock(path):
                anyio.from_thread.run_sync(locked.set)
                release.wait(5)

        async def tick() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                await anyio.sleep(0.01)

        async def receive_named() -> None:
            got.append(await layer.receive("worker.beta"))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, hold)
            await locked.wait()
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as writers:
                    writers.start_soon(tick)
                    writers.start_soon(layer.send, "worker.alpha", {"type": "waited"})
                    writers.start_soon(layer.group_send, "room", {"type": "grouped"})
                    writers.start_soon(layer.group_add, "room", "worker.alpha")
                    writers.start_soon(receive_named)
                    await anyio.sleep(0.3)
                    assert ticks >= 5, "the event loop stood still while another connection held the lock"
                    assert got == []
                    release.set()
        assert got == [{"type": "queued"}]
        assert await layer.group_members("room") == {"worker.alpha", theirs}
        with anyio.fail_after(WAIT):
            assert await layer.receive("worker.alpha") == {"type": "waited"}
            assert await other.receive(theirs) == {"type": "grouped"}


def test_try_once_never_waits_and_leaves_no_transaction_behind(path: Path) -> None:
    conn = dbfile.for_event_loop(dbfile.connect(path))
    try:

        def two_writes(conn: sqlite3.Connection) -> str:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO memberships VALUES ('g', 'worker.a', NULL, 0)")
            conn.execute("COMMIT")
            return "done"

        with write_lock(path):
            started = time.monotonic()
            assert store.try_once(conn, two_writes) is store.BUSY
            assert time.monotonic() - started < 1.0  # no busy timeout: it did not wait
            assert not conn.in_transaction
        assert store.try_once(conn, two_writes) == "done"

        def fails_half_way(conn: sqlite3.Connection, error: BaseException) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO memberships VALUES ('g', 'worker.b', NULL, 0)")
            raise error

        for error in (ValueError("not a lock"), sqlite3.OperationalError("not a lock either")):
            with pytest.raises(type(error), match="not a lock"):
                store.try_once(conn, fails_half_way, error)
            assert not conn.in_transaction
        assert query(path, "SELECT channel FROM memberships") == [("worker.a",)]  # worker.b rolled back
    finally:
        conn.close()


async def test_a_closing_layer_sends_through_its_thread(path: Path) -> None:
    async with fast(path) as layer, fast(path) as other:
        theirs = await other.new_channel()
        with layer._conns.fast_lock:  # what close() holds while it shuts the loop's connection
            await layer.send(theirs, {"type": "via the thread"})
        with anyio.fail_after(WAIT):
            assert await other.receive(theirs) == {"type": "via the thread"}


async def test_a_file_locked_too_long_raises_layer_busy(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "PATIENCE", 0.2)
    async with fast(path) as layer:
        with anyio.fail_after(WAIT):
            held = write_lock(path)
            await anyio.to_thread.run_sync(held.__enter__)
            try:
                with pytest.raises(store.LayerBusy, match="stayed locked") as caught:
                    await layer.send("worker.alpha", {"type": "x"})
            finally:
                await anyio.to_thread.run_sync(held.__exit__, None, None, None)
        assert isinstance(caught.value, ChannelLayerError)
        assert isinstance(caught.value, RuntimeError)


async def test_the_loops_connection_leaves_checkpoints_to_the_lease_thread(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[tuple[str, bool]] = []
    real_checkpoint = dbfile.checkpoint

    def checkpoint(conn: sqlite3.Connection) -> bool:
        completed = real_checkpoint(conn)
        done.append((threading.current_thread().name, completed))
        return completed

    requests = 0
    real_request = LeaseKeeper.request_checkpoint

    def request_checkpoint(keeper: LeaseKeeper) -> None:
        nonlocal requests
        requests += 1
        real_request(keeper)

    monkeypatch.setattr(dbfile, "checkpoint", checkpoint)
    monkeypatch.setattr(LeaseKeeper, "request_checkpoint", request_checkpoint)
    monkeypatch.setattr(sqlite_conns, "CHECKPOINT_EVERY", 100)
    async with fast(path, capacity=1000, lease=1.0) as layer, fast(path, capacity=1000, lease=1.0) as other:
        channel = await other.new_channel()
        for n in range(300):  # three checkpoint requests' worth of writes on the loop, nearly all
            await layer.send(channel, {"type": "n", "n": n})
        assert requests >= 2  # (a send that found the file locked wrote from a worker thread instead)
        await eventually(sync_check(lambda: len(done) >= 2), "the lease thread checkpointed twice")
        with anyio.fail_after(WAIT):
            assert [(await other.receive(channel))["n"] for _ in range(300)] == list(range(300))
        await eventually(sync_check(lambda: any(completed for _, completed in done)), "a checkpoint completed")
        await layer.send(channel, {"type": "n", "n": 300})  # the first write after it cuts the WAL back
        assert await anyio.to_thread.run_sync(os.path.getsize, f"{path}-wal") <= dbfile.WAL_SIZE_LIMIT
    assert all(name.startswith("interlock-lease-") for name, _ in done), done


@pytest.mark.parametrize("past_the_limit", [False, True])
def test_a_checkpoint_blocks_writers_only_once_the_wal_is_past_its_limit(
    path: Path, monkeypatch: pytest.MonkeyPatch, past_the_limit: bool
) -> None:
    conn = dbfile.connect(path)
    reader = dbfile.connect(path)
    try:
        for n in range(50):
            conn.execute("INSERT INTO messages (channel, owner, expires, body) VALUES ('c', NULL, 1e12, ?)", (str(n),))
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM messages").fetchone()  # a reader keeps the WAL in use
        size = os.path.getsize(f"{path}-wal")
        monkeypatch.setattr(dbfile, "WAL_SIZE_LIMIT", size - 1 if past_the_limit else size)
        monkeypatch.setattr(dbfile, "CHECKPOINT_WAIT_MS", 1)
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        dbfile.checkpoint(conn)
        conn.set_trace_callback(None)
        restarted = any("RESTART" in sql for sql in statements)
        assert restarted == past_the_limit, statements
        assert not conn.in_transaction
    finally:
        reader.close()
        conn.close()


async def test_own_sends_do_not_wake_the_pump(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    claims: list[str] = []
    real_claim = store.claim_owned

    def claim_owned(conn: sqlite3.Connection, owner: str, *args: Any, **kwargs: Any) -> Any:
        claims.append(owner)
        return real_claim(conn, owner, *args, **kwargs)

    monkeypatch.setattr(store, "claim_owned", claim_owned)
    async with fast(path, poll_interval=0.001) as a, fast(path) as b:
        mine, theirs = await a.new_channel(), await b.new_channel()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(a.receive, mine)  # a's pump now watches the file
            await anyio.sleep(0.05)
            before = claims.count(a._process)
            for n in range(100):
                await a.send(theirs, {"type": "n", "n": n})
                if n % 10 == 0:
                    await anyio.sleep(0.005)  # time for the pump to look
            assert claims.count(a._process) == before, "a's own sends woke its pump"
            await b.send(mine, {"type": "for a"})  # another process's send does
            await eventually(sync_check(lambda: claims.count(a._process) > before), "a's pump claimed")
            tasks.cancel_scope.cancel()


async def test_a_full_local_queue_neither_spins_nor_hides_other_channels(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = 0
    real_claim = store.claim_owned

    def claim_owned(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_owned", claim_owned)
    async with fast(path, capacity=2) as a, fast(path, capacity=2) as b:
        full, free = await b.new_channel(), await b.new_channel()
        got: list[Any] = []

        async def receive_free() -> None:
            got.append(await b.receive(free))  # b's pump claims while this waits

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(receive_free)
                for n in range(2):
                    await a.send(full, {"type": "n", "n": n})
                queue = b._local._queues
                await eventually(sync_check(lambda: full in queue and len(queue[full].messages) == 2), "b claimed")
                await a.send(full, {"type": "n", "n": 2})  # stays in the file: b's queue for *full* is full
                await anyio.sleep(0.05)
                before = claims
                await anyio.sleep(0.2)
                assert claims - before < 20, f"the pump claimed {claims - before} times in 0.2 s, all for nothing"
                await a.send(free, {"type": "free"})
        assert got == [{"type": "free"}]
        with anyio.fail_after(WAIT):
            assert [(await b.receive(full))["n"] for _ in range(3)] == [0, 1, 2]


async def test_a_loop_of_sends_through_the_file_lets_other_tasks_run(path: Path) -> None:
    async with fast(path, capacity=1000) as layer, fast(path, capacity=1000) as other:
        theirs = await other.new_channel()  # the conformance suite covers local channels
        await layer.group_add("room", theirs)
        sends: list[Callable[[int], Awaitable[None]]] = [
            lambda n: layer.send(theirs, {"type": "n", "n": n}),  # in the file, from the loop
            lambda n: layer.group_send("room", {"type": "n", "n": n}),
        ]
        for send in sends:

            async def work(send: Callable[[int], Awaitable[None]] = send) -> None:
                for n in range(200):
                    await send(n)

            assert await lets_other_tasks_run(work), "200 sends in a row never let another task run"


# -- threads and event loops ---------------------------------------------------------------------


async def test_other_threads_reach_local_channels_through_the_file(path: Path, anyio_backend: str) -> None:
    async with fast(path) as layer:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)

        def from_a_sync_thread() -> None:
            anyio.run(layer.send, channel, {"type": "direct"}, backend=anyio_backend)
            anyio.run(layer.group_send, "room", {"type": "group"}, backend=anyio_backend)

        await anyio.to_thread.run_sync(from_a_sync_thread)
        with anyio.fail_after(WAIT):
            assert await layer.receive(channel) == {"type": "direct"}
            assert await layer.receive(channel) == {"type": "group"}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_one_event_loop_after_another(path: Path, backend: str) -> None:
    layer = fast(path)

    async def first() -> str:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, {"type": "one"})
        assert await layer.receive(channel) == {"type": "one"}
        return channel

    async def second(channel: str) -> None:
        other = fast(path)
        await other.group_send("room", {"type": "two"})
        with anyio.fail_after(WAIT):
            assert await layer.receive(channel) == {"type": "two"}
        await other.close()
        await layer.close()

    channel = anyio.run(first, backend=backend)
    anyio.run(second, channel, backend=backend)


# -- real processes ------------------------------------------------------------------------------

CHILD = r"""
import os, random, sys, traceback
import anyio
from interlock.layers import ChannelFull, ChannelLayerError, SQLiteChannelLayer

async def main(path, mode, backend, lease, grace):
    layer = SQLiteChannelLayer(path, lease=float(lease), grace=float(grace))
    if mode == "serve":  # no start(): several tasks start the layer at once, as run_worker's do
        await serve(layer)
        return
    await layer.start()
    if mode in ("close", "exit", "kill"):
        mine = await layer.new_channel()
        await layer.group_add("room", mine)
        await layer.group_add("room", "worker.alpha")
        await layer.group_add("workers", "worker.alpha")
        print(mine, flush=True)
        if mode == "close":
            await layer.close()
        elif mode == "kill":
            await anyio.sleep_forever()
    elif mode == "echo":
        mine = await layer.new_channel()
        print(mine, flush=True)
        while True:
            message = await layer.receive(mine)
            if message["type"] == "stop":
                break
            await layer.send(message["reply_to"], message)
        await layer.close()
    elif mode.startswith("hammer"):
        await hammer(layer, int(mode[len("hammer"):]))
    elif mode == "hold":
        await hold(layer)


def fork(path, backend):
    layer = SQLiteChannelLayer(path, lease=0.3, grace=0.3)

    async def parent_channel():
        mine = await layer.new_channel()
        await layer.group_add("family", mine)
        return mine

    mine = anyio.run(parent_channel, backend=backend)
    pid = os.fork()
    if pid == 0:  # the child: a new process on the same file, same layer object
        async def child():
            theirs = await layer.new_channel()
            assert theirs.partition("!")[0] != mine.partition("!")[0], (theirs, mine)
            await layer.group_add("family", theirs)
            assert await layer.group_members("family") == {mine, theirs}
            await layer.group_send("family", {"type": "from.child", "child": theirs})
            await layer.close()

        try:
            anyio.run(child, backend=backend)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)

    async def parent():
        with anyio.fail_after(10):
            message = await layer.receive(mine)
        assert message["type"] == "from.child", message
        assert await layer.group_members("family") == {mine}  # the child closed: its channel left
        await layer.close()
        print("forked ok", flush=True)

    assert os.waitstatus_to_exitcode(status) == 0
    anyio.run(parent, backend=backend)


async def serve(layer):
    async def echo(channel, scope):
        await layer.new_channel()
        while True:
            message = await layer.receive(channel)
            if message["type"] == "stop":
                scope.cancel()
            await layer.send(message["reply_to"], {**message, "served_by": channel})

    async with anyio.create_task_group() as tasks:
        for n in range(4):
            tasks.start_soon(echo, f"worker.s{n}", tasks.cancel_scope)
    await layer.close()


async def hammer(layer, seed):
    rng = random.Random(seed)
    mine = [await layer.new_channel() for _ in range(4)]
    named = [f"worker.h{i}" for i in range(4)]
    groups = [f"g{i}" for i in range(3)]
    counts = {"sent": 0, "got": 0, "full": 0}

    async def drain(channel):
        while True:
            await layer.receive(channel)
            counts["got"] += 1

    async def worker(seed):
        rng = random.Random(seed)
        for _ in range(400):
            op, group = rng.random(), rng.choice(groups)
            if op < 0.3:
                await layer.group_add(group, rng.choice(mine + named))
            elif op < 0.5:
                await layer.group_discard(group, rng.choice(mine + named))
            elif op < 0.85:
                await layer.group_send(group, {"type": "h", "blob": b"x" * rng.randrange(200)})
                counts["sent"] += 1
            else:
                try:
                    await layer.send(rng.choice(named), {"type": "h"})
                except ChannelFull:
                    counts["full"] += 1
            if rng.random() < 0.05:
                await layer.groups()
                await layer.group_members(group)

    async with anyio.create_task_group() as tasks:
        for channel in mine:
            tasks.start_soon(drain, channel)
        async with anyio.create_task_group() as workers:
            workers.start_soon(worker, rng.random())
            workers.start_soon(worker, rng.random())
        tasks.cancel_scope.cancel()
    await layer.close()
    print(counts, flush=True)

async def hold(layer):
    mine, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", mine)
    print(mine, flush=True)
    failures = []

    async def waits():
        try:
            await layer.receive(other)
        except ChannelLayerError as exc:
            failures.append(f"receive {type(exc).__name__}")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(waits)
        try:
            with anyio.fail_after(20):
                while True:
                    await layer.group_send("room", {"type": "tick"})
                    await anyio.sleep(0.02)
        except ChannelLayerError as exc:
            failures.append(f"group_send {type(exc).__name__}")
    print(" ".join(sorted(failures)), flush=True)
    await layer.close()


if sys.argv[2] == "fork":
    fork(sys.argv[1], sys.argv[3])
else:
    anyio.run(main, *sys.argv[1:6], backend=sys.argv[3])
"""


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


def child_command(
    script: Path, path: Path, mode: str, backend: str, lease: float = 2.0, grace: float = 0.5
) -> list[str]:
    return [sys.executable, str(script), str(path), mode, backend, str(lease), str(grace)]


async def read_line_or_explain(process: anyio.abc.Process) -> str:
    """:func:`read_line`, failing with the child's exit status and stderr if it ended first."""
    try:
        return await read_line(process)
    except anyio.EndOfStream:
        with anyio.fail_after(WAIT):
            code = await process.wait()
        stderr = await _read_all(process.stderr)
        pytest.fail(f"the child ended before its first line (exit status {code}); its stderr:\n{stderr}")


async def read_line(process: anyio.abc.Process) -> str:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(WAIT):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive(1)
    return data.decode().strip()


async def test_restart_after_a_clean_close(path: Path, child_script: Path, anyio_backend: str) -> None:
    done = await anyio.run_process(child_command(child_script, path, "close", anyio_backend))
    theirs = done.stdout.decode().strip()
    async with fast(path) as layer:
        assert await layer.group_members("room") == {"worker.alpha"}  # theirs left with them
        assert await layer.groups() == {"room": 1, "workers": 1}
        await layer.group_send("workers", {"type": "job", "n": 1})
        with anyio.fail_after(WAIT):
            assert await layer.receive("worker.alpha") == {"type": "job", "n": 1}
    assert theirs.startswith("specific.")


@pytest.mark.parametrize("ending", ["exit", "kill"])
async def test_restart_after_a_process_dies(path: Path, child_script: Path, anyio_backend: str, ending: str) -> None:
    async with await anyio.open_process(child_command(child_script, path, ending, anyio_backend)) as child:
        theirs = await read_line(child)
        if ending == "kill":
            child.send_signal(signal.SIGKILL)
        await child.wait()
    async with fast(path) as layer:
        # Within its lease and grace, the dead process's channel is still listed.
        assert await layer.group_members("room") == {theirs, "worker.alpha"}
        await layer.send(theirs, {"type": "for-the-dead"})
        await layer.group_send("workers", {"type": "job"})
        with anyio.fail_after(WAIT):
            assert await layer.receive("worker.alpha") == {"type": "job"}

        async def pruned() -> bool:
            return await layer.group_members("room") == {"worker.alpha"}

        await eventually(pruned, "the dead process's membership is pruned")
        assert await layer.groups() == {"room": 1, "workers": 1}
        assert await aquery(path, "SELECT COUNT(*) FROM messages WHERE channel = ?", theirs) == [(0,)]
        owner = theirs.partition("!")[0].rpartition(".")[2]
        assert await aquery(path, "SELECT COUNT(*) FROM processes WHERE id = ?", owner) == [(0,)]


async def test_cross_process_round_trips(path: Path, child_script: Path, anyio_backend: str) -> None:
    async with (
        fast(path) as layer,
        await anyio.open_process(child_command(child_script, path, "echo", anyio_backend)) as child,
    ):
        theirs = await read_line(child)
        mine = await layer.new_channel()
        sent = [{"type": "echo", "reply_to": mine, "n": n, "raw": bytes([n % 256]) * n} for n in range(100)]
        with anyio.fail_after(WAIT * 3):
            for message in sent[:50]:  # one at a time
                await layer.send(theirs, message)
                assert await layer.receive(mine) == message
            for message in sent[50:]:  # all at once: order per sender
                await layer.send(theirs, message)
            assert [await layer.receive(mine) for _ in sent[50:]] == sent[50:]
            await layer.send(theirs, {"type": "stop"})
            assert await child.wait() == 0


async def test_a_process_whose_tasks_start_the_layer_at_once_serves_on(
    path: Path, child_script: Path, anyio_backend: str
) -> None:
    """A regression: on asyncio each task's first call started its own aiosqlite thread.

    The extra threads' connections, dropped, closed the layer's shared sqlite3 connection
    on garbage collection from their own threads, outside the layer's lock: the child
    raised "Cannot operate on a closed database", or died of a segmentation fault.
    """
    command = child_command(child_script, path, "serve", anyio_backend)
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def run() -> None:
        results.append(await anyio.run_process(command, check=False))

    sent: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    with anyio.fail_after(WAIT * 3):
        async with fast(path) as layer, anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            mine = await layer.new_channel()
            with anyio.move_on_after(WAIT):  # a child that died replies no more: its stderr says why
                for n in range(20):
                    sent.append({"type": "echo", "n": n, "reply_to": mine})
                    await layer.send(f"worker.s{n % 4}", sent[-1])
                    replies.append(await layer.receive(mine))
            await layer.send("worker.s0", {"type": "stop", "reply_to": mine})
    [done] = results
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert replies == [{**message, "served_by": f"worker.s{n % 4}"} for n, message in enumerate(sent)]
    assert len(replies) == 20


async def test_processes_hammering_one_file(path: Path, child_script: Path, anyio_backend: str) -> None:
    commands = [child_command(child_script, path, f"hammer{seed}", anyio_backend, 0.3, 0.3) for seed in range(3)]
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def run(command: list[str]) -> None:
        results.append(await anyio.run_process(command, check=False))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tasks:
            for command in commands:
                tasks.start_soon(run, command)
    for result in results:
        assert result.returncode == 0, result.stderr.decode()
        assert b"locked" not in result.stderr
        assert b"Traceback" not in result.stderr
        assert b"'sent'" in result.stdout
    assert await aquery(path, "PRAGMA integrity_check") == [("ok",)]
    async with fast(path) as layer:
        counts = await layer.groups()
        # Each process closed: only named channels remain, at most 4 per group.
        assert set(counts) <= {"g0", "g1", "g2"}
        assert all(count <= 4 for count in counts.values())
        for group in counts:
            assert all(channel.startswith("worker.h") for channel in await layer.group_members(group))


async def test_forked_child_is_a_new_process(path: Path, child_script: Path, anyio_backend: str) -> None:
    done = await anyio.run_process(child_command(child_script, path, "fork", anyio_backend), check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "forked ok"


# -- the CLI -------------------------------------------------------------------------------------


def fill(path: Path) -> str:
    """Create a layer file with two groups and a dead process; return its channel."""

    async def run() -> str:
        async with fast(path, grace=1.0) as layer:
            await layer.group_add("chat.lobby", "worker.alpha")
            await layer.group_add("chat.room", "worker.alpha")
            await layer.group_add("chat.room", "worker.beta")
            await layer.group_add("chat.room", "ghost.0123456789ab!x")
            return "ghost.0123456789ab!x"

    return anyio.run(run)


def test_cli_lists_groups(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(path)
    assert cli.main(["layer", "groups", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["chat.lobby  1", "chat.room   3"]


def test_cli_lists_members(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ghost = fill(path)
    assert cli.main(["layer", "members", str(path), "chat.room"]) == 0
    assert capsys.readouterr().out.splitlines() == sorted([ghost, "worker.alpha", "worker.beta"])
    assert cli.main(["layer", "members", str(path), "nobody"]) == 0
    assert capsys.readouterr().out == ""


def test_cli_lists_processes_and_what_they_hold(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def run() -> str:
        async with fast(path, grace=30.0) as layer:  # no beat prunes the ghost during the test
            mine = await layer.new_channel()
            await layer.group_add("chat.lobby", mine)
            await layer.group_add("chat.lobby", "worker.alpha")
            await layer.group_add("chat.room", "ghost.0123456789ab!x")
            await layer.send("worker.alpha", {"type": "job"})
            await layer.send("ghost.0123456789ab!x", {"type": "lost"})
            await anyio.to_thread.run_sync(cli.main, ["layer", "processes", str(path)])
            return layer._process

    me = anyio.run(run)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PROCESS", "PID", "HOST", "STARTED", "LEASE", "MEMBERSHIPS", "QUEUED", "DROPPED"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == {me, "0123456789ab"}
    assert f"{os.getpid()}" in rows[me]
    assert "alive (lease ends in" in rows[me]
    assert rows[me].split()[-3:] == ["1", "0", "0"]  # one membership, nothing queued for its channel
    assert "never registered" in rows["0123456789ab"]
    assert rows["0123456789ab"].split()[-3:] == ["1", "1", "0"]
    assert lines[-1] == "named channels: 1 memberships, 1 queued messages, 0 dropped"
    assert cli.main(["layer", "processes", str(path)]) == 0  # closed: its row went with it
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["0123456789ab"]


def test_cli_prunes_dead_processes(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(path)
    assert cli.main(["layer", "prune", str(path)]) == 0
    assert "dead processes pruned: 0" in capsys.readouterr().out
    time.sleep(1.1)  # the ghost's placeholder lease (grace 1 s) has run out
    assert cli.main(["layer", "prune", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dead processes pruned: 1 (0123456789ab)" in out
    assert "memberships removed: 1" in out
    assert cli.main(["layer", "members", str(path), "chat.room"]) == 0
    assert capsys.readouterr().out.splitlines() == ["worker.alpha", "worker.beta"]


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["layer", "groups", "{missing}"], "there is no layer file at"),
        (["layer", "groups", "{junk}"], "not a SQLite database"),
        (["layer", "members", "{layer}", "bad name"], "invalid group name 'bad name'"),
        (["layer", "prune", "{dir}/no/such/file"], "does not exist"),
        (["layer", "processes", "{missing}"], "there is no layer file at"),
    ],
)
def test_cli_reports_errors(
    tmp_path: Path, path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], shown: str
) -> None:
    fill(path)
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk" * 1000)
    names = {"missing": tmp_path / "missing", "junk": junk, "layer": path, "dir": tmp_path}
    assert cli.main([part.format(**names) for part in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"interlock layer {argv[1]}: ")
    assert shown in err


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["layer", "members", "only-a-path"])
    assert caught.value.code == 2
    assert "GROUP" in capsys.readouterr().err


def test_cli_mounts_under_another_parser(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(path)
    parser = argparse.ArgumentParser(prog="interlock")
    cli.add_layer_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["layer", "groups", str(path)])
    assert args.handler(args) == 0
    assert "chat.room" in capsys.readouterr().out


def test_cli_runs_as_a_module(path: Path) -> None:
    fill(path)
    done = subprocess.run(
        [sys.executable, "-m", "interlock.layers._cli", "layer", "groups", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "chat.lobby" in done.stdout


def test_lease_thread_ends_with_close(path: Path) -> None:
    before = {thread.name for thread in threading.enumerate()}

    async def run() -> None:
        async with fast(path) as layer:
            assert any(thread.name.startswith("interlock-lease-") for thread in threading.enumerate())
            await layer.new_channel()

    anyio.run(run)
    assert {thread.name for thread in threading.enumerate() if thread.name.startswith("interlock-")} <= before


async def test_calls_run_on_aiosqlite_on_asyncio_and_anyio_threads_on_trio(tmp_path: Path, anyio_backend: str) -> None:
    layer = SQLiteChannelLayer(tmp_path / "threads.sqlite3")
    async with layer:
        await layer.group_add("g", "worker.alpha")
        runner = layer._conns.thread._aio
        if anyio_backend == "asyncio":
            assert runner is not None
            assert any(t.name.startswith("Thread") and t.daemon for t in threading.enumerate())
        else:
            assert runner is None
        assert await layer.group_members("g") == frozenset({"worker.alpha"})
    assert layer._conns.thread._aio is None


async def test_own_channels_can_be_watched_and_named_ones_cannot(tmp_path: Path) -> None:
    async with SQLiteChannelLayer(tmp_path / "watch.sqlite3") as layer:
        mine = await layer.new_channel()
        notified: list[int] = []
        assert layer.watch_channel(mine, lambda: notified.append(1)) == 0
        assert layer.watch_channel("worker.alpha", lambda: None) is None  # lives in the file: receive() it
        await layer.group_add("g", mine)
        await layer.group_send("g", {"type": "hello"})
        await layer.send(mine, {"type": "again"})
        assert len(notified) == 2
        assert layer.take_message(mine) == {"type": "hello"}
        assert layer.take_message(mine) == {"type": "again"}
        assert layer.take_message(mine) is None
        await layer.close_channel(mine)
        assert await layer.group_members("g") == frozenset()


# -- drops ---------------------------------------------------------------------------------------


async def test_drops_are_counted_in_the_file_and_reach_the_owner(
    path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    async with fast(path, capacity=2) as a, fast(path, capacity=2) as b:
        assert isinstance(a, DropCountingLayer)
        mine = await a.new_channel()
        await a.group_add("room", mine)
        with caplog.at_level(logging.WARNING, logger="interlock.layers.sqlite"):
            for n in range(10):  # nobody receives yet: 2 wait in the file, 8 are dropped
                await b.group_send("room", {"type": "n", "n": n})
        assert len(caplog.records) == 1  # one line for the storm, not one per message
        assert await b.drop_counts() == {mine: 8}
        told: list[int] = []
        a.watch_channel(mine, lambda: None, on_drop=told.append)
        await eventually(sync_check(lambda: told == [8]), "the owner hears of the other process's drops")
        await a.group_send("room", {"type": "local"})  # its own queue holds 2: dropped here
        assert told == [8, 1]

        async def in_the_file() -> bool:
            return await b.drop_counts() == {mine: 9}

        await eventually(in_the_file, "the owner's own drop reaches the file")
        assert await a.drop_counts() == {mine: 9}
        await anyio.sleep(0.3)  # a few beats and claims: nothing is told twice
        assert told == [8, 1]
        await anyio.to_thread.run_sync(cli.main, ["layer", "processes", str(path)])
        rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
        assert rows[a._process][-1] == "9"
        assert rows[b._process][-1] == "0"
        await a.close_channel(mine)
        assert await b.drop_counts() == {}


async def test_a_file_whose_process_row_vanished_says_what_happened(
    pair: tuple[SQLiteChannelLayer, ...], path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A regression: the warning said the lease had not been renewed for over lease + grace, falsely."""
    a, _ = pair
    with caplog.at_level(logging.WARNING, logger="interlock.layers.sqlite"):
        await anyio.to_thread.run_sync(lambda: _drop_process(path, a._process))

        def warned() -> bool:
            return any("found its lease gone" in record.getMessage() for record in caplog.records)

        await eventually(sync_check(warned), "a says it registered again")
    [record] = [record for record in caplog.records if "lease gone" in record.getMessage()]
    assert "within lease + grace (0.6 s)" in record.getMessage()
    assert "did not renew" not in record.getMessage()


# -- a replaced layer file -----------------------------------------------------------------------


def _delete_layer_file(path: Path) -> None:
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        (path.parent / name).unlink(missing_ok=True)


async def test_a_deleted_layer_file_makes_every_call_raise(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with fast(path) as layer:
        mine = await layer.new_channel()
        with caplog.at_level(logging.ERROR, logger="interlock.layers.sqlite"):
            _delete_layer_file(path)

            async def raises() -> bool:
                try:
                    await layer.send(mine, {"type": "t"})
                except LayerFileReplaced:
                    return True
                return False

            await eventually(raises, "the layer notices its file is gone")
        assert any(
            "the layer file was replaced or deleted while this process used it" in record.getMessage()
            and str(path) in record.getMessage()
            for record in caplog.records
        )
        for call in (
            layer.receive(mine),
            layer.group_send("room", {"type": "t"}),
            layer.group_add("room", mine),
            layer.groups(),
        ):
            with pytest.raises(LayerFileReplaced, match="replaced or deleted"):
                await call
        assert layer.watch_channel(mine, lambda: None) is None
        await layer.close()
        # Closed, it starts again on the file now at the path.
        again = await layer.new_channel()
        await layer.send(again, {"type": "fresh"})
        assert await layer.receive(again) == {"type": "fresh"}


async def _read_all(stream: anyio.abc.ByteReceiveStream | None) -> str:
    assert stream is not None
    data = b""
    with anyio.fail_after(WAIT):
        while True:
            try:
                data += await stream.receive()
            except anyio.EndOfStream:
                return data.decode()


async def test_a_replaced_layer_file_fails_loudly_in_the_processes_that_hold_it(
    path: Path, child_script: Path, anyio_backend: str
) -> None:
    """A regression: two servers on a deleted file and a third on its replacement lost each other's
    messages silently, after one false 'had been pruned (it did not renew its lease ...)'."""
    # Leases of 1.5 s: the children notice the new file within half a second, and a child
    # slow to start on a loaded machine is not pruned by the other meanwhile.
    command = child_command(child_script, path, "hold", anyio_backend, 1.5, 1.5)
    async with await anyio.open_process(command) as one, await anyio.open_process(command) as two:
        first, second = await read_line_or_explain(one), await read_line_or_explain(two)
        _delete_layer_file(path)
        async with fast(path) as third:  # the new file
            mine = await third.new_channel()
            await third.group_add("room", mine)
            for child in (one, two):
                assert await read_line(child) == "group_send LayerFileReplaced receive LayerFileReplaced"
            for child in (one, two):
                with anyio.fail_after(WAIT):
                    assert await child.wait() == 0
                stderr = await _read_all(child.stderr)
                assert "ERROR" in stderr or "the layer file was replaced or deleted" in stderr, stderr
                assert f"the layer file was replaced or deleted while this process used it: {str(path)!r}" in stderr
                assert "did not renew" not in stderr
                assert "Traceback" not in stderr
            assert await third.group_members("room") == {mine}  # the old processes never wrote here
    assert first != second
