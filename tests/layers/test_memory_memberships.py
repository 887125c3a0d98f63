"""InMemoryChannelLayer: a channel's memberships, kept as one name for one group and a set for more."""

from __future__ import annotations

import pytest
from interlock.layers import InMemoryChannelLayer


@pytest.mark.anyio
async def test_one_group_then_more_then_one_again() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("a", "inbox")
    await layer.group_add("a", "inbox")  # a renewal stays one membership
    assert await layer.groups() == {"a": 1}
    await layer.group_add("b", "inbox")
    await layer.group_add("c", "inbox")
    assert await layer.groups() == {"a": 1, "b": 1, "c": 1}
    await layer.group_discard("b", "inbox")
    await layer.group_discard("c", "inbox")
    await layer.group_add("d", "inbox")  # after shrinking back to one group, a second one still counts
    await layer.close_channel("inbox")  # every membership goes with the channel
    assert await layer.groups() == {}


@pytest.mark.anyio
async def test_discard_of_another_group_keeps_the_one_membership() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("a", "inbox")
    await layer.group_discard("b", "inbox")  # not a member of b: nothing changes
    await layer.group_send("a", {"type": "hi"})
    assert await layer.receive("inbox") == {"type": "hi"}
    await layer.group_discard("a", "inbox")
    assert await layer.groups() == {}
    await layer.group_add("a", "inbox")
    await layer.close_channel("inbox")
    assert await layer.group_members("a") == frozenset()


@pytest.mark.anyio
async def test_closing_one_member_of_a_shared_group_keeps_the_others() -> None:
    layer = InMemoryChannelLayer()
    for channel in ("x", "y"):
        await layer.group_add("a", channel)
        await layer.group_add("b", channel)
    await layer.close_channel("x")
    assert await layer.group_members("a") == frozenset({"y"})
    assert await layer.group_members("b") == frozenset({"y"})
    await layer.group_discard("a", "y")
    await layer.close_channel("y")
    assert await layer.groups() == {}
