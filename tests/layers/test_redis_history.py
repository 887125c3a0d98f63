"""Group histories on Redis, shared by layer instances (processes, as far as Redis knows).

Two instances on one prefix send to one group at once: every offset is handed out once
and both read the same history, in offset order; a Redis that lost the group's keys (a
restart with persistence off, or their expiry) starts a new epoch, so old positions
cannot be recovered.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from interlock.layers import POSITION, GroupHistory, RedisChannelLayer

from tests.actors.test_ask import redis_is_up

pytestmark = pytest.mark.skipif(not redis_is_up(), reason="needs Redis on 127.0.0.1:6379")
HISTORY = GroupHistory(count=1000, age=300.0, groups=("room.*",))
URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RedisChannelLayer, RedisChannelLayer]]:
    prefix = f"interlock-test:{secrets.token_hex(6)}"
    async with (
        RedisChannelLayer(URL, prefix=prefix, history=HISTORY, capacity=1000) as one,
        RedisChannelLayer(URL, prefix=prefix, history=HISTORY, capacity=1000) as two,
    ):
        yield one, two
        await one.flush()


async def test_two_instances_share_one_numbering_and_one_history(pair: tuple[Any, Any]) -> None:
    one, two = pair
    member = await one.new_channel()
    await one.group_add("room.r", member)

    async def send(layer: RedisChannelLayer, who: str) -> None:
        for n in range(100):
            await layer.group_send("room.r", {"type": "m", "who": who, "n": n})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(send, one, "one")
        tasks.start_soon(send, two, "two")
    received: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        while len(received) < 200:
            received.append(await one.receive(member))
    assert sorted(m[POSITION]["offset"] for m in received) == list(range(1, 201))
    for who in ("one", "two"):
        assert [m["n"] for m in received if m["who"] == who] == list(range(100))
    page_one, page_two = await one.group_history("room.r"), await two.group_history("room.r")
    assert page_one == page_two
    assert [m[POSITION]["offset"] for m in page_one.messages] == list(range(1, 201))


async def test_a_group_whose_keys_redis_lost_starts_a_new_epoch(pair: tuple[Any, Any]) -> None:
    one, two = pair
    await one.group_send("room.lost", {"type": "m"})
    before = await two.group_history("room.lost")
    await one.flush()  # as a Redis restarted empty would
    await one.group_send("room.lost", {"type": "m"})
    after = await two.group_history("room.lost", since=before.offset, epoch=before.epoch)
    assert after.epoch != before.epoch
    assert not after.complete
    assert after.offset == 1
