"""The SQLite layer's local queues: a lone message stands without a queue, and the pump still sees it.

As in the in-memory layer (``test_memory_queues.py``), a channel of this process whose
only waiting message was queued by this process keeps that message's entry alone; the
SQLite layer must still count it when the pump claims rows from the file for the
channel's room, and a message that fills its channel alone still gets a queue, which
follows the channel's fullness (the ``kick`` for rows waiting in the file).
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from interlock.layers import ChannelFull, SQLiteChannelLayer


@pytest.fixture
async def layer(tmp_path: Path) -> AsyncIterator[SQLiteChannelLayer]:
    async with SQLiteChannelLayer(tmp_path / "layer.db", capacity=3) as layer:
        yield layer


async def test_the_pump_counts_a_lone_message_in_the_room(layer: SQLiteChannelLayer) -> None:
    channel = await layer.new_channel()
    layer.watch_channel(channel, lambda: None)
    await layer.send(channel, {"type": "m"})
    local = layer._local  # what the pump asks before it claims rows from the file
    assert channel not in local._queues  # it stands alone
    assert local.room()(channel) == 2


async def test_a_message_from_the_file_comes_after_the_lone_one(layer: SQLiteChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m", "n": 1})
    layer._local.deliver([(channel, time.time() + 60, {"type": "m", "n": 2})])  # as the pump would
    assert [(await layer.receive(channel))["n"] for _ in range(2)] == [1, 2]


@pytest.mark.parametrize(
    "options", [{"capacity": 1}, {"channel_capacity": {"solo.*": 1}}], ids=["capacity", "channel_capacity"]
)
async def test_a_message_that_fills_its_channel_alone_has_a_queue(tmp_path: Path, options: dict[str, Any]) -> None:
    async with SQLiteChannelLayer(tmp_path / "layer.db", **options) as layer:
        channel = await layer.new_channel("solo")
        layer.watch_channel(channel, lambda: None)
        await layer.send(channel, {"type": "m", "n": 1})
        local = layer._local
        assert channel in local._queues
        assert channel in local._full
        with pytest.raises(ChannelFull, match="1 undelivered messages"):
            await layer.send(channel, {"type": "m", "n": 2})
        local.kick.clear()
        assert layer.take_message(channel) == {"type": "m", "n": 1}
        assert local.kick.is_set()  # room again: rows waiting in the file may come now
        assert channel not in local._full


async def test_a_group_send_to_idle_local_members_makes_no_queue_per_member(layer: SQLiteChannelLayer) -> None:
    members = [await layer.new_channel() for _ in range(500)]
    for channel in members:
        await layer.group_add("room", channel)
        layer.watch_channel(channel, lambda: None)
    gc.collect()
    before = len(gc.get_objects())
    await layer.group_send("room", {"type": "m", "text": "hello"})
    assert len(gc.get_objects()) - before < 200  # the send's own, not a queue and an entry per member
    assert not layer._local._queues
    assert all(layer.take_message(channel) == {"type": "m", "text": "hello"} for channel in members)


async def test_a_group_send_wakes_its_local_members_in_the_order_they_joined(layer: SQLiteChannelLayer) -> None:
    """Join order, not the channels' (random) name order: the order their actors' objects lie in memory."""
    channels = [await layer.new_channel() for _ in range(40)]
    joined = channels[1::2] + channels[::2]  # neither creation nor name order
    assert joined != sorted(joined)
    woken: list[str] = []
    for channel in joined:
        await layer.group_add("room", channel)
        layer.watch_channel(channel, lambda channel=channel: woken.append(channel))  # type: ignore[misc]
    await layer.group_send("room", {"type": "m"})
    assert woken == joined


async def test_a_group_send_holds_no_row_per_member(layer: SQLiteChannelLayer) -> None:
    """The members are read from the file a row at a time: hundreds of row tuples alive at once
    would set the collector going (and promote them all) on every send."""
    for _ in range(600):
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        layer.watch_channel(channel, lambda: None)
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    thresholds = gc.get_threshold()
    gc.set_threshold(100, 10, 10)  # 600 tuples held at once would mean six collections or more
    gc.callbacks.append(count)
    try:
        await layer.group_send("room", {"type": "m", "text": "hello"})
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
    assert len(collections) <= 2, f"{len(collections)} collections during one group send to 600 members"
