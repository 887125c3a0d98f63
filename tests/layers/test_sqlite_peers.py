"""Peer watching on the SQLite layer: a channel's close and its process's death reach the
watchers in other processes (real processes on one file, SIGKILL), on both backends."""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from interlock.layers import PeerWatchingLayer, SQLiteChannelLayer

from .peers_support import Told

WAIT = 10.0

CHILD = """
import sys, time, anyio
from interlock.layers import SQLiteChannelLayer

async def main(path, mode):
    layer = SQLiteChannelLayer(path, lease=0.3, grace=0.3)
    channel = await layer.new_channel()
    print(channel, flush=True)
    if mode == "close-channel":
        sys.stdin.readline()
        await layer.close_channel(channel)
        print("closed", flush=True)
        sys.stdin.readline()
    elif mode == "close-layer":
        sys.stdin.readline()
        await layer.close()
        print("closed", flush=True)
    else:  # "wait": until killed
        await anyio.sleep(3600)

anyio.run(main, sys.argv[1], sys.argv[2], backend=sys.argv[3])
"""


def fast(path: Path) -> SQLiteChannelLayer:
    return SQLiteChannelLayer(path, lease=0.3, grace=0.3)


def watch_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT channel, watcher, owner, gone FROM watches").fetchall()


async def rows_become(path: Path, count: int) -> list[tuple[Any, ...]]:
    """Wait until the file holds *count* watch rows (written by a background task: its
    own pace on a loaded machine, where a fixed sleep was too short); return them."""
    with anyio.fail_after(WAIT):
        while len(rows := watch_rows(path)) != count:  # noqa: ASYNC110 - the rows of another connection: no event to wait on
            await anyio.sleep(0.05)
    return rows


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


async def read_line(process: anyio.abc.Process) -> str:
    assert process.stdout is not None
    data = b""
    with anyio.fail_after(WAIT):
        while not data.endswith(b"\n"):
            data += await process.stdout.receive(1)
    return data.decode().strip()


async def test_the_layer_watches_peers(tmp_path: Path) -> None:
    layer = fast(tmp_path / "layer.sqlite3")
    assert isinstance(layer, PeerWatchingLayer)
    await layer.close()


async def test_own_channels_closed_and_unknown(tmp_path: Path) -> None:
    async with fast(tmp_path / "layer.sqlite3") as layer:
        mine = await layer.new_channel()
        told = Told()
        layer.watch_peer(mine, told)
        await layer.close_channel(mine)
        assert told.calls == [(mine, "closed")]  # at once: this process closed it
        gone = Told()
        layer.watch_peer(mine, gone)  # closed already
        assert gone.calls == [(mine, "unknown")]
        never = mine.rsplit("!", 1)[0] + "!00000000deadbeef"
        layer.watch_peer(never, gone)
        assert gone.calls[-1] == (never, "unknown")


@pytest.mark.parametrize("how", ["close-channel", "close-layer"])
async def test_a_close_in_another_process_reaches_the_watcher(
    tmp_path: Path, child_script: Path, anyio_backend: str, how: str
) -> None:
    path = tmp_path / "layer.sqlite3"
    async with (
        fast(path) as layer,
        await anyio.open_process([sys.executable, str(child_script), str(path), how, anyio_backend]) as child,
    ):
        theirs = await read_line(child)
        told = Told()
        layer.watch_peer(theirs, told)
        assert [row[0] for row in await rows_become(path, 1)] == [theirs]  # the watch is written to the file
        assert told.calls == []
        assert child.stdin is not None
        await child.stdin.send(b"go\n")
        assert await read_line(child) == "closed"
        started = time.monotonic()
        assert await told.wait() == [(theirs, "closed")]
        assert time.monotonic() - started < 2.0  # within the poll interval, give or take
        assert await rows_become(path, 0) == []  # collected
        if how == "close-channel":
            await child.stdin.send(b"bye\n")  # the child that closed only its channel ends now


async def test_a_killed_process_reaches_the_watcher_after_its_lease_and_grace(
    tmp_path: Path, child_script: Path, anyio_backend: str
) -> None:
    path = tmp_path / "layer.sqlite3"
    async with fast(path) as layer:
        async with await anyio.open_process(
            [sys.executable, str(child_script), str(path), "wait", anyio_backend]
        ) as child:
            theirs = await read_line(child)
            told = Told()
            layer.watch_peer(theirs, told)
            await anyio.sleep(0.8)
            assert told.calls == []  # alive: renewing its lease
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await child.wait()
        assert await told.wait() == [(theirs, "lease")]
        assert time.monotonic() - killed < 0.3 + 0.3 + 0.5 + 2.0  # lease + grace + poll, and slack


async def test_unwatch_forgets_the_row_and_a_named_channel_is_watched_across_layers(tmp_path: Path) -> None:
    path = tmp_path / "layer.sqlite3"
    async with fast(path) as watcher, fast(path) as owner:
        theirs = await owner.new_channel()
        told = Told()
        cancel = watcher.watch_peer(theirs, told)
        await rows_become(path, 1)
        cancel()
        await rows_become(path, 0)
        await owner.close_channel(theirs)
        await anyio.sleep(0.8)
        assert told.calls == []  # unwatched before the close

        named = Told()
        watcher.watch_peer("bots.dealer", named)
        await rows_become(path, 1)
        await owner.close_channel("bots.dealer")
        assert await named.wait() == [("bots.dealer", "closed")]


async def test_a_watchers_own_close_ends_its_watches(tmp_path: Path) -> None:
    path = tmp_path / "layer.sqlite3"
    async with fast(path) as owner:
        theirs = await owner.new_channel()
        watcher = fast(path)
        told = Told()
        await watcher.start()
        watcher.watch_peer(theirs, told)
        await rows_become(path, 1)
        await watcher.close()
        assert told.calls == [(theirs, "closed")]  # the layer closed: its watches are over
        assert watch_rows(path) == []  # and its rows went with its process row
