"""The byte bound of a channel (``capacity_bytes``), on both layers and across processes.

A channel whose waiting messages hold ``capacity_bytes`` or more takes no more: a send
raises ``ChannelFull`` naming the bytes, a group send drops (and counts) the message for
that member. Below the bound it takes one message of any size. On the SQLite layer,
messages from another process wait in the file while their channel is at its bound, and
arrive, all of them and in order, once it drains.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from interlock.layers import ChannelFull, InMemoryChannelLayer, SQLiteChannelLayer

KB = "k" * 1_000


@asynccontextmanager
async def make(kind: str, tmp_path: Path, **options: Any) -> AsyncIterator[Any]:
    if kind == "memory":
        yield InMemoryChannelLayer(**options)
        return
    async with SQLiteChannelLayer(tmp_path / "bytes.sqlite3", **options) as layer:
        yield layer


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_send_beyond_the_byte_bound_is_refused_and_names_it(kind: str, tmp_path: Path) -> None:
    async with make(kind, tmp_path, capacity_bytes=3_500) as layer:
        channel = await layer.new_channel()
        for n in range(4):  # 1,0xx bytes each: the fourth reaches the bound, and is taken
            await layer.send(channel, {"type": "t", "n": n, "text": KB})
        with pytest.raises(ChannelFull, match=r"hold [\d,]+ bytes, capacity_bytes is 3,500"):
            await layer.send(channel, {"type": "t", "text": "x"})
        assert (await layer.receive(channel))["n"] == 0  # taking one frees its bytes
        await layer.send(channel, {"type": "t", "n": 4, "text": KB})
        assert [(await layer.receive(channel))["n"] for _ in range(4)] == [1, 2, 3, 4]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_one_message_larger_than_the_bound_still_fits_an_empty_channel(kind: str, tmp_path: Path) -> None:
    async with make(kind, tmp_path, capacity_bytes=1_000) as layer:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "big", "text": KB * 5})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "small"})
        assert (await layer.receive(channel))["type"] == "big"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_group_send_drops_for_the_member_at_its_bound_only(kind: str, tmp_path: Path) -> None:
    async with make(kind, tmp_path, capacity_bytes=2_500) as layer:
        slow, fast = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("room", slow)
        await layer.group_add("room", fast)
        for n in range(5):
            await layer.group_send("room", {"type": "t", "n": n, "text": KB})
            assert (await layer.receive(fast))["n"] == n
        assert (await layer.drop_counts()).get(slow) == 2  # three fit (the third reaches 2,500)
        assert fast not in await layer.drop_counts()
        assert [(await layer.receive(slow))["n"] for _ in range(3)] == [0, 1, 2]


async def test_none_means_no_byte_bound(tmp_path: Path) -> None:
    layer = InMemoryChannelLayer(capacity_bytes=None)
    channel = await layer.new_channel()
    for _ in range(20):
        await layer.send(channel, {"type": "t", "text": KB * 100})


@pytest.mark.parametrize("bad", [0, -1, 1.5, "8MiB"])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_bad_capacity_bytes_is_refused(kind: str, bad: object, tmp_path: Path) -> None:
    def build() -> object:
        if kind == "memory":
            return InMemoryChannelLayer(capacity_bytes=bad)  # type: ignore[arg-type]
        return SQLiteChannelLayer(tmp_path / "x.sqlite3", capacity_bytes=bad)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="capacity_bytes must be an int of at least 1"):
        build()


async def test_messages_from_another_process_wait_in_the_file_at_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    # Two layers on one file are two processes to each other: each has its own channels.
    async with (
        SQLiteChannelLayer(path, capacity_bytes=2_500) as receiver,
        SQLiteChannelLayer(path) as sender,
    ):
        channel = await receiver.new_channel()
        for n in range(8):
            await sender.send(channel, {"type": "t", "n": n, "text": KB})
        first = await receiver.receive(channel)  # the pump claims what the bound allows
        queue = receiver._local._queues.get(channel)
        held = 0 if queue is None else queue.size
        assert held < 2_500 + 1_100, f"the local queue holds {held} bytes: the claim ignored the bound"
        rest = [first["n"]]
        with anyio.fail_after(10):
            while len(rest) < 8:
                rest.append((await receiver.receive(channel))["n"])
        assert rest == list(range(8)), "every message arrives, in order"
        assert channel not in await receiver.drop_counts()
