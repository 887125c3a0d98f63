"""RedisChannelLayer across real processes: groups listed everywhere, leases, SIGKILL pruning.

Each child (:data:`CHILD`, run by ``sys.executable``) starts its own layer on the test's
key prefix, makes channels, joins them to a room, prints their names as one JSON line,
then acknowledges every message its channels get to the reply channel the message names.
Leases and grace are shortened so pruning happens within a second; waits are bounded.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest
from interlock.layers import RedisChannelLayer

from .redis_support import REDIS_URL, WAIT, delete_prefix, eventually, redis_is_up, unique_prefix

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]

CHILD = """
import json, sys
import anyio
from interlock.layers import RedisChannelLayer

async def main(prefix: str, count: int) -> None:
    async with RedisChannelLayer(sys.argv[3], prefix=prefix, lease=0.3, grace=0.3) as layer:
        channels = [await layer.new_channel("member") for _ in range(count)]
        for channel in channels:
            await layer.group_add("room", channel)
        await layer.group_add("workers", "worker.shared")
        print(json.dumps({"process": layer.process, "channels": channels}), flush=True)

        async def acknowledge(channel: str) -> None:
            while True:
                message = await layer.receive(channel)
                await layer.send(message["reply"], {"type": "ack", "channel": channel, "n": message["n"]})

        async with anyio.create_task_group() as tasks:
            for channel in channels:
                tasks.start_soon(acknowledge, channel)

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await delete_prefix(name)


class Child:
    """One child process and what it printed."""

    def __init__(self, process: anyio.abc.Process, process_id: str, channels: list[str]) -> None:
        self.process = process
        self.id = process_id
        self.channels = channels


async def _read_line(process: anyio.abc.Process) -> str:
    assert process.stdout is not None
    data = b""
    while not data.endswith(b"\n"):
        chunk = await process.stdout.receive(1)
        data += chunk
    return data.decode()


async def start_child(prefix: str, count: int) -> Child:
    process = await anyio.open_process([sys.executable, "-c", CHILD, prefix, str(count), REDIS_URL])
    with anyio.fail_after(WAIT):
        report = json.loads(await _read_line(process))
    return Child(process, report["process"], report["channels"])


async def stop(child: Child, how: signal.Signals = signal.SIGKILL) -> None:
    child.process.send_signal(how)
    with anyio.fail_after(WAIT):
        await child.process.wait()
    await child.process.aclose()


@pytest.fixture
async def watcher(key_prefix: str) -> AsyncIterator[RedisChannelLayer]:
    async with RedisChannelLayer(REDIS_URL, prefix=key_prefix, lease=0.3, grace=0.3) as layer:
        yield layer


async def test_members_of_several_processes_are_listed_everywhere_and_reached(
    watcher: RedisChannelLayer, key_prefix: str
) -> None:
    children = [await start_child(key_prefix, 5) for _ in range(3)]
    try:
        everyone = {channel for child in children for channel in child.channels}
        assert await watcher.group_members("room") == everyone
        assert (await watcher.groups())["room"] == 15
        reply = await watcher.new_channel("reply")
        await watcher.group_send("room", {"type": "ping", "reply": reply, "n": 1})
        acks: set[str] = set()
        with anyio.fail_after(WAIT):
            while len(acks) < len(everyone):
                acks.add((await watcher.receive(reply))["channel"])
        assert acks == everyone
    finally:
        for child in children:
            await stop(child)


async def test_a_killed_process_is_pruned_after_its_grace_by_another(
    watcher: RedisChannelLayer, key_prefix: str
) -> None:
    doomed, survivor = await start_child(key_prefix, 2), await start_child(key_prefix, 1)
    try:
        assert await watcher.group_members("room") == {*doomed.channels, *survivor.channels}
        await stop(doomed)  # SIGKILL: no close(), no goodbye

        async def pruned() -> bool:
            members = await watcher.group_members("room")
            return members == set(survivor.channels) and doomed.id not in await _processes(watcher)

        await eventually(pruned, "the killed process and its members were pruned")
        assert await watcher.group_members("workers") == {"worker.shared"}  # a named channel's membership stays
        reply = await watcher.new_channel("reply")
        await watcher.group_send("room", {"type": "ping", "reply": reply, "n": 2})
        with anyio.fail_after(WAIT):
            assert (await watcher.receive(reply))["channel"] == survivor.channels[0]
    finally:
        await stop(survivor)


async def test_a_process_that_stops_cleanly_leaves_at_once(watcher: RedisChannelLayer, key_prefix: str) -> None:
    child = await start_child(key_prefix, 3)
    assert len(await watcher.group_members("room")) == 3
    await stop(child, signal.SIGINT)  # KeyboardInterrupt unwinds the layer's ``async with``
    assert await watcher.group_members("room") == frozenset()


async def _processes(layer: RedisChannelLayer) -> list[str]:
    run: Any = layer._run  # the registry, as `interlock layer processes` would list it
    return [owner.id for owner in await run.store.processes()]


async def test_memberships_come_back_after_redis_lost_everything(watcher: RedisChannelLayer, key_prefix: str) -> None:
    """What a restart without persistence does to the keys, without the restart (see test_redis_faults)."""
    async with RedisChannelLayer(REDIS_URL, prefix=key_prefix, lease=0.3, grace=0.3) as layer:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await delete_prefix(key_prefix)
        assert await watcher.group_members("room") == frozenset()

        async def restored() -> bool:
            return await watcher.group_members("room") == {channel}

        await eventually(restored, "the layer wrote its membership again", wait=2.0)
        await watcher.send(channel, {"type": "after"})
        with anyio.fail_after(WAIT):
            assert await layer.receive(channel) == {"type": "after"}


FORKED = """
import json, os, sys
import anyio
from interlock.layers import RedisChannelLayer

layer = RedisChannelLayer(sys.argv[2], prefix=sys.argv[1])

async def name() -> str:
    channel = await layer.new_channel()
    await layer.group_add("forks", channel)
    return channel

parent = anyio.run(name)
child = os.fork()
if child == 0:
    print(json.dumps({"child": anyio.run(name)}), flush=True)
    anyio.run(layer.close)
    os._exit(0)
os.waitpid(child, 0)
print(json.dumps({"parent": parent}), flush=True)
"""


async def test_a_forked_child_is_a_process_of_its_own(watcher: RedisChannelLayer, key_prefix: str) -> None:
    done = await anyio.run_process([sys.executable, "-c", FORKED, key_prefix, REDIS_URL])
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    child, parent = lines[0]["child"], lines[1]["parent"]
    assert child.split("!")[0].rpartition(".")[2] != parent.split("!")[0].rpartition(".")[2]
    # The child's close() removed the child's channel, not the parent's (whose process exited
    # without closing: it stays until its lease ends).
    assert await watcher.group_members("forks") == {parent}
