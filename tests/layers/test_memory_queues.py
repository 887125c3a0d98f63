"""The in-memory layer's queues: a channel's one waiting message stands without a queue.

What a user sees must not change with it (order, capacity, expiry, watch counts, each
member's own copy); the white-box checks at the end say that the common case of a group
send to idle watched members really makes no object per member.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from interlock.layers import ChannelFull, InMemoryChannelLayer


@pytest.fixture
async def layer() -> AsyncIterator[InMemoryChannelLayer]:
    async with InMemoryChannelLayer(capacity=3) as layer:
        yield layer


async def test_a_second_message_keeps_the_first_ones_turn(layer: InMemoryChannelLayer) -> None:
    await layer.send("room", {"type": "m", "n": 1})
    await layer.send("room", {"type": "m", "n": 2})
    await layer.send("room", {"type": "m", "n": 3})
    assert [(await layer.receive("room"))["n"] for _ in range(3)] == [1, 2, 3]


async def test_capacity_counts_the_message_that_stands_alone() -> None:
    async with InMemoryChannelLayer(capacity=1) as layer:
        await layer.send("room", {"type": "m", "n": 1})
        with pytest.raises(ChannelFull, match=r"channel 'room' is full \(1 undelivered messages\)"):
            await layer.send("room", {"type": "m", "n": 2})
        assert (await layer.receive("room"))["n"] == 1
        await layer.send("room", {"type": "m", "n": 3})  # room again
        assert (await layer.receive("room"))["n"] == 3


async def test_the_message_that_stands_alone_expires() -> None:
    async with InMemoryChannelLayer(expiry=0.05) as layer:
        await layer.send("room", {"type": "m"})
        layer.watch_channel("room", lambda: None)
        await anyio.sleep(0.1)
        assert layer.take_message("room") is None
        with anyio.move_on_after(0.1) as waited:
            await layer.receive("room")
        assert waited.cancelled_caught


async def test_a_receiver_waiting_gets_the_message(layer: InMemoryChannelLayer) -> None:
    got: list[dict[str, Any]] = []

    async def receive() -> None:
        got.append(await layer.receive("room"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(receive)
        await anyio.sleep(0.01)  # waiting in receive(): the message goes to a queue with its event
        await layer.send("room", {"type": "m", "n": 1})
    assert got == [{"type": "m", "n": 1}]


async def test_watch_counts_what_waits_already(layer: InMemoryChannelLayer) -> None:
    await layer.send("one", {"type": "m"})
    await layer.send("two", {"type": "m"})
    await layer.send("two", {"type": "m"})
    assert layer.watch_channel("one", lambda: None) == 1
    assert layer.watch_channel("two", lambda: None) == 2
    assert layer.watch_channel("none", lambda: None) == 0


async def test_each_member_takes_its_own_copy(layer: InMemoryChannelLayer) -> None:
    members = [await layer.new_channel() for _ in range(3)]
    notified: list[str] = []
    for channel in members:
        await layer.group_add("room", channel)
        layer.watch_channel(channel, functools.partial(notified.append, channel))
    await layer.group_send("room", {"type": "m", "items": [1, 2]})
    assert sorted(notified) == sorted(members)
    taken = [layer.take_message(channel) for channel in members]
    assert taken[0] == taken[1] == taken[2] == {"type": "m", "items": [1, 2]}
    assert taken[0] is not None
    taken[0]["items"].append(3)  # one member's handler changes its message: nobody else's
    assert taken[1] == {"type": "m", "items": [1, 2]}


async def test_closing_a_channel_drops_its_message(layer: InMemoryChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m"})
    await layer.close_channel(channel)
    assert layer.take_message(channel) is None


async def test_a_group_send_to_idle_watched_members_makes_no_object_per_member() -> None:
    async with InMemoryChannelLayer(capacity=10) as layer:
        members = [await layer.new_channel() for _ in range(1000)]
        for channel in members:
            await layer.group_add("room", channel)
            layer.watch_channel(channel, lambda: None)
        queues = layer._queues  # what the group send leaves behind is the point
        gc.collect()
        before = len(gc.get_objects())
        await layer.group_send("room", {"type": "m", "text": "hello"})
        assert len(gc.get_objects()) - before < 50  # the group send's own few, not 1,000 or 2,000
        assert not queues._queues  # no queue per member
        assert len({id(entry) for entry in queues._single.values()}) == 1  # one shared entry
        assert all(layer.take_message(channel) == {"type": "m", "text": "hello"} for channel in members)
        assert len(queues) == 0  # taken: nothing left
