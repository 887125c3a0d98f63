"""Teardown you can trust, under fault injection on real servers (uvicorn / hypercorn -k trio).

Clients of ``lifecycle_app.LifeActor`` end at random moments (a seeded ``random``), in
each of these ways (``POINTS``):

* ``handshake``: TCP reset while ``connect()`` runs (it sleeps a random delay first);
* ``burst``: reset while the actor sends the client a burst it does not read;
* ``dispatch``: reset while layer messages fanned out to its room arrive (an agitator
  in the room keeps fanning out);
* ``exit_hook``: reset while a slow exit hook runs (the client leaves the room);
* ``fanout``: reset while the actor itself ``group_send``\\s to its room;
* ``sleep``: reset while a handler sleeps;
* ``clean``: the client closes with 1000;
* ``boom``: a handler raises (one ERROR record expected for it).

``test_mixed`` runs all of them at once in one room.  Afterwards, for every connection:
each exit hook of each state it was in ran once, innermost first, ``disconnect()`` ran
once with the expected cause (and code, where the client knows it), no channel of it is
left in ``life.all`` or its room (read from the SQLite file by this process), and the
server log holds no ERROR or Traceback beyond one record per deliberate failure.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from tests.support.faults import reset_during_handshake
from tests.support.lifecycle_records import (
    Expect,
    check,
    leftover_members,
    log_problems,
    read_records,
    report,
)
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import ConnectionClosed, WSClient

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e

SEED = 20261201
ALL = "life.all"
ROOM_PREFIX = "life.room."
PER_POINT = 50  # connections per point in its own test
MIXED = 200  # connections in test_mixed
CONCURRENCY = 10
BUDGET = 12.0  # seconds a test may spend starting connections
SETTLE = 8.0  # seconds the server gets to finish every teardown

VANISH = frozenset({"client", "lost"})
EXPECT = {
    "handshake": Expect(causes=VANISH, must_reach_app=False),
    "burst": Expect(causes=VANISH),
    "dispatch": Expect(causes=VANISH),
    "exit_hook": Expect(causes=VANISH),
    "fanout": Expect(causes=VANISH),
    "sleep": Expect(causes=VANISH),
    "clean": Expect(causes=frozenset({"client"}), codes=frozenset({1000})),
    "boom": Expect(causes=frozenset({"error"}), codes=frozenset({1011})),
    "bystander": Expect(causes=frozenset({"client"}), codes=frozenset({1000})),
}
# hypercorn reports a client's close frame as websocket.disconnect with 1006 (it sends
# StreamClosed, and ws_stream maps that to ABNORMAL_CLOSURE): the client's code never
# reaches the app there, so 1006 is what disconnect() can get
HYPERCORN_CLOSE_CODES = frozenset({1000, 1006})
POINTS = [point for point in EXPECT if point != "bystander"]
# the intended moment was hit if the client reset between the handler's start and its end
MID = {"burst": "burst", "fanout": "fanout", "sleep": "sleep"}


@attrs.frozen
class Life:
    """The lifecycle app's server, its layer file and its record directory."""

    server: RunningServer
    db: Path
    records: Path


@pytest.fixture(scope="module")
def life(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Life]:
    base = tmp_path_factory.mktemp(f"life-{anyio_backend}")
    records = base / "records"
    records.mkdir()
    db = base / "layer.sqlite3"
    env = {"INTERLOCK_LIFE_DB": str(db), "INTERLOCK_LIFE_RECORDS": str(records)}
    with serve("lifecycle_app:app", backend=anyio_backend, app_dir=str(HERE), env=env) as server:
        yield Life(server, db, records)


# -- clients -------------------------------------------------------------------------------------


def new_tag(label: str) -> str:
    return f"{label.replace('_', '-')}-{uuid.uuid4().hex[:10]}"


async def until(client: WSClient, kind: str, timeout: float = 5) -> dict[str, Any]:
    """Read (and drop) messages until one of type *kind* arrives."""
    with anyio.fail_after(timeout):
        while True:
            message: dict[str, Any] = await client.receive_json(timeout)
            if message.get("type") == kind:
                return message


OPEN: dict[str, WSClient] = {}  # tag -> its client, reset after the scenario whatever happened


async def joined(server: RunningServer, tag: str, room: str) -> WSClient:
    client = await WSClient.connect(server.host, server.port, f"/ws/life/{tag}/")
    OPEN[tag] = client
    await client.send_json({"type": "join", "room": room})
    await until(client, "joined")
    return client


async def drain(client: WSClient) -> None:
    """Read everything until the connection closes (keeps the server's sends flowing)."""
    with suppress(ConnectionClosed, TimeoutError):
        while True:
            await client.receive(timeout=60)


@attrs.define
class Room:
    """A room with bystanders that read everything, and an optional agitator fanning out."""

    name: str
    tags: dict[str, str] = attrs.field(factory=dict)  # tag -> point label
    reset_at: dict[str, float] = attrs.field(factory=dict)  # tag -> time.time() of the reset
    client_problems: dict[str, list[str]] = attrs.field(factory=dict)


@asynccontextmanager
async def room(server: RunningServer, name: str, *, bystanders: int, agitate: bool) -> AsyncIterator[Room]:
    state = Room(name)
    clients: list[WSClient] = []
    async with anyio.create_task_group() as tg:
        for _ in range(bystanders + int(agitate)):
            tag = new_tag("bystander")
            state.tags[tag] = "bystander"
            client = await joined(server, tag, name)
            OPEN.pop(tag)  # closed by the room
            clients.append(client)
            tg.start_soon(drain, client)
        if agitate:
            tg.start_soon(agitator, clients[-1])
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        for client in clients:
            await client.close(1000)
            if client.close_info != (1000, ""):
                state.client_problems.setdefault("bystander", []).append(f"closed with {client.close_info}")


async def agitator(client: WSClient) -> None:
    """Keep fanning out to the room, so members are always dispatching layer messages."""
    with suppress(ConnectionClosed, OSError, anyio.BrokenResourceError):
        while True:
            await client.send_json({"type": "fanout", "n": 5})
            await anyio.sleep(0.02)


# -- one connection per point -------------------------------------------------------------------

Scenario = Callable[[RunningServer, str, str, random.Random], Awaitable[float | None]]


async def vanish(client: WSClient) -> float:
    """Reset the connection; return when (``time.time()``, the clock the app records with)."""
    moment = time.time()
    await client.abort()
    return moment


async def vanish_in_handshake(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    delay = rng.uniform(0, 0.03)
    after = rng.uniform(0, 0.04)
    await reset_during_handshake(server.host, server.port, f"/ws/life/{tag}/?connect_delay={delay:.4f}", after=after)
    return time.time()


async def vanish_in_burst(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    client = await joined(server, tag, room_name)
    await client.send_json({"type": "burst", "n": rng.choice([300, 2000]), "size": rng.choice([200, 2048])})
    await anyio.sleep(rng.uniform(0, 0.05))
    return await vanish(client)


async def vanish_in_dispatch(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    client = await joined(server, tag, room_name)
    await anyio.sleep(rng.uniform(0, 0.08))  # the agitator's messages arrive meanwhile; unread
    return await vanish(client)


async def vanish_in_exit_hook(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    client = await joined(server, tag, room_name)
    delay = rng.uniform(0.02, 0.06)
    # not waiting for the answer: under the agitator's traffic a client frame can wait long
    # in a full mailbox; the two frames are handled in order anyway
    await client.send_json({"type": "slow_exit", "seconds": delay})
    await client.send_json({"type": "leave"})  # exits speaking, then in_room: each hook sleeps
    await anyio.sleep(rng.uniform(0, 2.5 * delay))
    return await vanish(client)


async def vanish_in_fanout(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    client = await joined(server, tag, room_name)
    await client.send_json({"type": "fanout", "n": rng.choice([200, 800])})
    await anyio.sleep(rng.uniform(0, 0.04))
    return await vanish(client)


async def vanish_in_sleep(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float:
    client = await joined(server, tag, room_name)
    await client.send_json({"type": "sleep", "seconds": rng.uniform(0.01, 0.05)})
    await anyio.sleep(rng.uniform(0, 0.06))
    return await vanish(client)


async def close_cleanly(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float | None:
    client = await joined(server, tag, room_name)
    await client.send_json({"type": "ping"})
    await anyio.sleep(rng.uniform(0, 0.03))
    await client.close(1000)
    if client.close_info != (1000, ""):
        msg = f"client saw close {client.close_info}, expected the server to echo (1000, '')"
        raise AssertionError(msg)
    return None


async def fail_in_handler(server: RunningServer, tag: str, room_name: str, rng: random.Random) -> float | None:
    client = await joined(server, tag, room_name)
    await anyio.sleep(rng.uniform(0, 0.02))
    await client.send_json({"type": "boom"})
    closed = await client.wait_closed(timeout=10)
    await client.close()
    if closed != (1011, "internal error"):
        msg = f"client saw close {closed}, expected (1011, 'internal error')"
        raise AssertionError(msg)
    return None


SCENARIOS: dict[str, Scenario] = {
    "handshake": vanish_in_handshake,
    "burst": vanish_in_burst,
    "dispatch": vanish_in_dispatch,
    "exit_hook": vanish_in_exit_hook,
    "fanout": vanish_in_fanout,
    "sleep": vanish_in_sleep,
    "clean": close_cleanly,
    "boom": fail_in_handler,
}


async def run_connections(server: RunningServer, state: Room, plan: list[str], rng: random.Random) -> None:
    """Run one connection per entry of *plan* (a point), CONCURRENCY at a time, within BUDGET."""
    limiter = anyio.Semaphore(CONCURRENCY)
    deadline = time.monotonic() + BUDGET

    async def one(point: str, tag: str, seed: int) -> None:
        try:
            with anyio.fail_after(15):
                moment = await SCENARIOS[point](server, tag, state.name, random.Random(seed))
            if moment is not None:
                state.reset_at[tag] = moment
        except Exception as exc:
            state.client_problems.setdefault(tag, []).append(f"client side: {type(exc).__name__}: {exc}")
        finally:
            client = OPEN.pop(tag, None)
            if client is not None:
                await client.abort()  # a no-op unless the scenario failed half-way
            limiter.release()

    async with anyio.create_task_group() as tg:
        for point in plan:
            if time.monotonic() > deadline:
                break
            await limiter.acquire()
            tag = new_tag(point)
            state.tags[tag] = point
            tg.start_soon(one, point, tag, rng.randrange(2**32))


# -- verdict --------------------------------------------------------------------------------------


async def verify(life: Life, state: Room, log_start: int) -> None:
    """Check the guarantee for every connection of *state*; one assertion listing every breach."""
    tags = state.tags
    settle_by = time.monotonic() + SETTLE
    records = read_records(life.records)
    while not records.ended(tags) and time.monotonic() < settle_by:
        await anyio.sleep(0.05)
        records = read_records(life.records)
    problems: dict[str, list[str]] = {}
    for tag, point in tags.items():
        expect = EXPECT[point]
        if life.server.kind == "hypercorn" and expect.codes == frozenset({1000}):
            expect = attrs.evolve(expect, codes=HYPERCORN_CLOSE_CODES)
        found = check(records.events(tag), expect)
        found += state.client_problems.get(tag, [])
        if found:
            problems[tag] = found
    channels = {channel: tag for channel, tag in records.channel_tags().items() if tag in tags}
    left = await leftover_members(
        life.db, [ALL, ROOM_PREFIX + state.name], within=max(settle_by - time.monotonic(), 1.0), only=channels
    )
    for group, members in left.items():
        for channel in members:
            problems.setdefault(channels[channel], []).append(f"still a member of {group} (channel {channel})")
    deliberate = [tag for tag, point in tags.items() if point == "boom" and records.events(tag)]
    logged = log_problems(life.server.logs()[log_start:], deliberate)
    counts: dict[str, int] = {}
    for point in tags.values():
        counts[point] = counts.get(point, 0) + 1
    hits = {point: 0 for point in MID if point in counts}
    for tag, point in tags.items():
        what, moment = MID.get(point), state.reset_at.get(tag)
        if what is None or moment is None:
            continue
        began = [e["t"] for e in records.events(tag) if e["event"] == "began" and e.get("what") == what]
        done = [e["t"] for e in records.events(tag) if e["event"] == "done" and e.get("what") == what]
        if began and began[0] <= moment and (not done or moment <= done[0]):
            hits[point] += 1
    summary = (
        f"{life.server.kind}: {len(tags)} connections {counts}; reset mid-handler {hits}; "
        f"{len(problems)} broke the guarantee"
    )
    message = [summary]
    if problems:
        message.append("per-connection problems (count, problem, [point]: tags):")
        message.append(report(problems, tags))
    if state.client_problems.get("bystander"):
        message.append(f"bystanders: {state.client_problems['bystander']}")
    message.extend(logged)
    broken = bool(problems or logged or state.client_problems.get("bystander"))
    assert not broken, "\n".join(message)


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
async def test_each_ending_tears_down_once(life: Life, point: str, anyio_backend: str) -> None:
    rng = random.Random(f"{SEED}-{point}-{anyio_backend}")
    log_start = len(life.server.logs())
    name = new_tag(point)
    async with room(life.server, name, bystanders=2, agitate=point == "dispatch") as state:
        await run_connections(life.server, state, [point] * PER_POINT, rng)
    await verify(life, state, log_start)


async def test_mixed(life: Life, anyio_backend: str) -> None:
    """Every way of ending at once, in one room with an agitator: they must not interfere."""
    rng = random.Random(f"{SEED}-mixed-{anyio_backend}")
    log_start = len(life.server.logs())
    plan = [rng.choice(POINTS) for _ in range(MIXED)]
    async with room(life.server, new_tag("mixed"), bystanders=3, agitate=True) as state:
        await run_connections(life.server, state, plan, rng)
    await verify(life, state, log_start)


async def test_mixed_on_asyncios_own_event_loop(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same mix under ``uvicorn --loop asyncio`` (its default picks uvloop when installed)."""
    if anyio_backend != "asyncio":
        pytest.skip("uvicorn's --loop choice is an asyncio matter; trio runs under hypercorn")
    base = tmp_path_factory.mktemp("life-asyncio-loop")
    records = base / "records"
    records.mkdir()
    db = base / "layer.sqlite3"
    env = {"INTERLOCK_LIFE_DB": str(db), "INTERLOCK_LIFE_RECORDS": str(records)}
    with serve(
        "lifecycle_app:app", backend=anyio_backend, app_dir=str(HERE), env=env, extra_args=["--loop", "asyncio"]
    ) as server:
        life = Life(server, db, records)
        rng = random.Random(f"{SEED}-mixed-asyncio-loop")
        plan = [rng.choice(POINTS) for _ in range(MIXED // 2)]
        async with room(server, new_tag("mixed"), bystanders=3, agitate=True) as state:
            await run_connections(server, state, plan, rng)
        await verify(life, state, 0)
