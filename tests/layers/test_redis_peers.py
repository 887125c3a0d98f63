"""Peer watching on the Redis layer: a channel's close and its process's death reach the
watchers in other processes (two layer instances on one prefix, and a SIGKILLed child),
both backends."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest
from interlock.layers import PeerWatchingLayer, RedisChannelLayer

from .peers_support import Told
from .redis_support import REDIS_URL, WAIT, count_keys, delete_prefix, redis_is_up, unique_prefix

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]

CHILD = """
import sys, anyio
from interlock.layers import RedisChannelLayer

async def main(prefix):
    async with RedisChannelLayer(sys.argv[2], prefix=prefix, lease=0.3, grace=0.3) as layer:
        print(await layer.new_channel(), flush=True)
        await anyio.sleep(3600)

anyio.run(main, sys.argv[1], backend=sys.argv[3])
"""


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await delete_prefix(name)


def fast(prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(REDIS_URL, prefix=prefix, lease=0.3, grace=0.3)


async def test_own_channels_are_told_at_once(key_prefix: str) -> None:
    async with fast(key_prefix) as layer:
        assert isinstance(layer, PeerWatchingLayer)
        mine = await layer.new_channel()
        told = Told()
        layer.watch_peer(mine, told)
        await layer.close_channel(mine)
        assert told.calls == [(mine, "closed")]
        gone = Told()
        layer.watch_peer(mine, gone)
        assert gone.calls == [(mine, "unknown")]


async def test_a_close_in_another_process_reaches_the_watcher(key_prefix: str) -> None:
    async with fast(key_prefix) as watcher, fast(key_prefix) as owner:
        theirs = await owner.new_channel()
        told = Told()
        watcher.watch_peer(theirs, told)
        await anyio.sleep(0.8)  # the watch is written
        assert told.calls == []
        await owner.close_channel(theirs)
        started = time.monotonic()
        assert await told.wait() == [(theirs, "closed")]
        assert time.monotonic() - started < 2.0
        late = Told()
        watcher.watch_peer(theirs, late)  # after the close: told too
        assert await late.wait() == [(theirs, "closed")]


async def test_the_owners_layer_closing_reaches_the_watcher_and_unwatch_forgets(key_prefix: str) -> None:
    async with fast(key_prefix) as watcher:
        owner = fast(key_prefix)
        first, second = await owner.new_channel(), await owner.new_channel()
        told, quiet = Told(), Told()
        watcher.watch_peer(first, told)
        cancel = watcher.watch_peer(second, quiet)
        await anyio.sleep(0.8)
        cancel()
        await anyio.sleep(0.8)
        await owner.close()
        assert await told.wait() == [(first, "closed")]
        await anyio.sleep(0.8)
        assert quiet.calls == []  # unwatched before


async def test_a_named_channel_is_watched_across_processes(key_prefix: str) -> None:
    async with fast(key_prefix) as watcher, fast(key_prefix) as owner:
        told = Told()
        watcher.watch_peer("bots.dealer", told)
        await anyio.sleep(0.8)
        await owner.close_channel("bots.dealer")
        assert await told.wait() == [("bots.dealer", "closed")]


async def test_a_killed_process_reaches_the_watcher_after_its_lease_and_grace(
    key_prefix: str, anyio_backend: str
) -> None:
    async with fast(key_prefix) as layer:
        async with await anyio.open_process(
            [sys.executable, "-c", CHILD, key_prefix, REDIS_URL, anyio_backend]
        ) as child:
            assert child.stdout is not None
            line = b""
            with anyio.fail_after(WAIT):
                while not line.endswith(b"\n"):
                    line += await child.stdout.receive(1)
            theirs = line.decode().strip()
            told = Told()
            layer.watch_peer(theirs, told)
            await anyio.sleep(0.8)
            assert told.calls == []  # alive
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await child.wait()
        assert await told.wait() == [(theirs, "lease")]
        assert time.monotonic() - killed < 0.3 + 0.3 + 0.5 + 3.0


async def test_watches_leave_no_keys_behind(key_prefix: str) -> None:
    async with fast(key_prefix) as watcher:
        async with fast(key_prefix) as owner:
            theirs = await owner.new_channel()
            told = Told()
            watcher.watch_peer(theirs, told)
            await anyio.sleep(0.8)
            await owner.close_channel(theirs)
            await told.wait()
        await anyio.sleep(0.8)
    # what stays: the closed channel's short-lived tombstone (it expires), nothing else of watching
    keys = await count_keys(key_prefix)
    assert keys <= 1, keys
