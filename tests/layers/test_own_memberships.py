"""The stores' record of their own channels' groups: a channel in one group keeps its name alone."""

from __future__ import annotations

import random

from interlock.layers._core import OwnMemberships


def test_memberships_follow_adds_and_discards_like_a_set_per_channel() -> None:
    rng = random.Random(17)
    own = OwnMemberships()
    model: dict[str, set[str]] = {}
    for _ in range(5000):
        channel, group = f"c{rng.randrange(6)}", f"g{rng.randrange(4)}"
        action = rng.random()
        if action < 0.5:
            own.add(group, channel)
            model.setdefault(channel, set()).add(group)
        elif action < 0.9:
            own.discard(group, channel)
            model.get(channel, set()).discard(group)
        else:
            own.drop(channel)
            model.pop(channel, None)
        expected = sorted((g, c) for c, groups in model.items() for g in groups)
        assert sorted(own.snapshot()) == expected


def test_a_channel_in_one_group_holds_no_set() -> None:
    own = OwnMemberships()
    own.add("room", "c1")
    own.add("room", "c1")  # twice is once
    assert own._groups == {"c1": "room"}
    own.add("lobby", "c1")
    assert own._groups == {"c1": {"room", "lobby"}}
    own.discard("room", "c1")
    assert own._groups == {"c1": "lobby"}  # back to the name alone
    own.discard("other", "c1")  # not a member: nothing changes
    assert own._groups == {"c1": "lobby"}
    own.discard("lobby", "c1")
    assert own._groups == {}
    own.add("room", "c2")
    own.clear()
    assert own.snapshot() == []
