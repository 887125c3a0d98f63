"""InMemoryChannelLayer: the conformance suite, then what only the in-memory layer promises."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from interlock.layers import (
    MAX_NAME_LENGTH,
    ChannelFull,
    DropCountingLayer,
    InMemoryChannelLayer,
    InvalidChannelName,
    ListableGroupLayer,
    WatchableLayer,
)
from interlock.layers.testing import ChannelLayerConformance, LayerFactory


@asynccontextmanager
async def make_layer(**options: Any) -> AsyncIterator[InMemoryChannelLayer]:
    async with InMemoryChannelLayer(**options) as layer:
        await layer.start()
        yield layer


class TestInMemoryConformance(ChannelLayerConformance):
    @pytest.fixture
    async def layer(self) -> AsyncIterator[InMemoryChannelLayer]:
        async with make_layer() as layer:
            yield layer

    @pytest.fixture
    def layer_factory(self) -> LayerFactory:
        return make_layer


# -- constructor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        pytest.param({"capacity": 0}, "0", id="zero-capacity"),
        pytest.param({"capacity": -3}, "-3", id="negative-capacity"),
        pytest.param({"expiry": 0}, "0", id="zero-expiry"),
        pytest.param({"expiry": -1.5}, "-1.5", id="negative-expiry"),
        pytest.param({"group_expiry": 0}, "0", id="zero-group-expiry"),
        pytest.param({"group_expiry": -2}, "-2", id="negative-group-expiry"),
        pytest.param(
            {"channel_capacity": {"http.*": 0}},
            "0",
            id="zero-channel-capacity",
        ),
        pytest.param(
            {"expiry": math.nan},
            "nan",
            id="nan-expiry",
        ),
    ],
)
def test_constructor_rejects_bad_arguments(options: dict[str, Any], shown: str) -> None:
    with pytest.raises(ValueError, match="must be") as caught:
        InMemoryChannelLayer(**options)
    assert shown in str(caught.value)


def test_constructor_takes_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        InMemoryChannelLayer(10)  # type: ignore[call-arg]


def test_constructor_keeps_its_settings() -> None:
    layer = InMemoryChannelLayer(capacity=7, expiry=2.5, group_expiry=30)
    assert (layer.capacity, layer.expiry, layer.group_expiry) == (7, 2.5, 30)


# -- channel_capacity ------------------------------------------------------------------------------


async def fill(layer: InMemoryChannelLayer, channel: str) -> int:
    """Send until the channel is full; return how many messages it took."""
    for sent in range(1000):
        try:
            await layer.send(channel, {"type": "fill", "n": sent})
        except ChannelFull:
            return sent
    pytest.fail(f"{channel!r} never filled up")


@pytest.mark.parametrize(
    ("channel", "capacity"),
    [
        ("http.request", 2),
        ("http.response.body", 2),
        ("http.abc123!x9", 2),
        ("chat.room", 4),
        ("chat.lobby", 5),
        ("chat.r", 3),
        ("websocket.receive", 3),
        ("http", 3),
    ],
)
async def test_channel_capacity_glob_patterns(channel: str, capacity: int) -> None:
    patterns = {"http.*": 2, "chat.roo?": 4, "chat.[a-q]*": 5}
    layer = InMemoryChannelLayer(capacity=3, channel_capacity=patterns)
    assert await fill(layer, channel) == capacity


async def test_channel_capacity_first_matching_pattern_wins() -> None:
    layer = InMemoryChannelLayer(channel_capacity={"http.*": 1, "http.request": 6})
    assert await fill(layer, "http.request") == 1


async def test_channel_capacity_pattern_matches_the_whole_name() -> None:
    layer = InMemoryChannelLayer(capacity=2, channel_capacity={"http": 1})
    assert await fill(layer, "http.request") == 2
    assert await fill(layer, "http") == 1


async def test_group_send_to_full_member_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    layer = InMemoryChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "first"})
    await layer.group_add("room", channel)
    with caplog.at_level(logging.WARNING, logger="interlock.layers"):
        await layer.group_send("room", {"type": "second"})
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "'room'" in caplog.text
    assert repr(channel) in caplog.text


# -- repr, protocols, async with ---------------------------------------------------------------------


async def test_repr_shows_size_and_settings() -> None:
    layer = InMemoryChannelLayer(capacity=7, expiry=2.5)
    assert repr(layer) == "<InMemoryChannelLayer channels=0 groups=0 capacity=7 expiry=2.5>"
    await layer.send("a", {"type": "t"})
    await layer.group_add("g", "a")
    assert "channels=1 groups=1" in repr(layer)


async def test_drained_channels_are_forgotten() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("a", {"type": "t"})
    await layer.receive("a")
    assert "channels=0" in repr(layer)


def test_public_module_path() -> None:
    assert InMemoryChannelLayer.__module__ == "interlock.layers"


def test_is_a_listable_group_layer() -> None:
    assert isinstance(InMemoryChannelLayer(), ListableGroupLayer)


async def test_async_with_returns_the_layer_and_closes_it() -> None:
    async with InMemoryChannelLayer() as layer:
        assert isinstance(layer, InMemoryChannelLayer)
        await layer.send("a", {"type": "t"})
        await layer.group_add("g", "a")
    assert "channels=0 groups=0" in repr(layer)
    assert await layer.groups() == {}


async def test_async_with_closes_on_error() -> None:
    layer = InMemoryChannelLayer()

    async def fail_inside() -> None:
        async with layer:
            await layer.send("a", {"type": "t"})
            raise KeyError("boom")

    with pytest.raises(KeyError):
        await fail_inside()
    assert "channels=0" in repr(layer)


async def test_start_is_a_no_op() -> None:
    layer = InMemoryChannelLayer()
    await layer.start()
    await layer.send("a", {"type": "t"})
    await layer.start()
    assert await layer.receive("a") == {"type": "t"}


async def test_new_channel_names_are_prefix_process_token() -> None:
    layer, other = InMemoryChannelLayer(), InMemoryChannelLayer()
    names = [await layer.new_channel("chat") for _ in range(3)]
    shape = re.compile(r"chat\.([0-9a-f]{12})![0-9a-f]{16}")
    matches = [shape.fullmatch(name) for name in names]
    processes = {match.group(1) for match in matches if match}
    assert len([match for match in matches if match]) == len(names)
    assert len(processes) == 1
    assert (await other.new_channel("chat")).split("!")[0] != names[0].split("!")[0]


async def test_longest_prefix_that_fits() -> None:
    layer = InMemoryChannelLayer()
    prefix = "p" * (MAX_NAME_LENGTH - len(".0123456789ab!0123456789abcdef"))
    assert len(await layer.new_channel(prefix)) == MAX_NAME_LENGTH
    with pytest.raises(InvalidChannelName):
        await layer.new_channel(prefix + "p")


@pytest.mark.parametrize("reset", ["flush", "close"])
async def test_receive_keeps_waiting_across_flush_and_close(reset: str) -> None:
    layer = InMemoryChannelLayer()
    received: list[dict[str, Any]] = []

    async def receiver() -> None:
        received.append(await layer.receive("inbox"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
            await getattr(layer, reset)()
            await anyio.wait_all_tasks_blocked()
            assert received == []
            await layer.send("inbox", {"type": "after"})
    assert received == [{"type": "after"}]


async def test_send_after_close_channel_starts_an_empty_channel() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.send("inbox", {"type": "before"})
    await layer.close_channel("inbox")
    await layer.send("inbox", {"type": "after"})
    assert await layer.receive("inbox") == {"type": "after"}


# -- scale (correctness only: timings live in bench/) ----------------------------------------------


async def test_group_send_to_a_thousand_members_then_drain() -> None:
    layer = InMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(1000)]
    for channel in members:
        await layer.group_add("crowd", channel)
    assert await layer.groups() == {"crowd": 1000}
    await layer.group_send("crowd", {"type": "hello", "payload": [1, 2]})
    for channel in members:
        assert await layer.receive(channel) == {"type": "hello", "payload": [1, 2]}
    assert "channels=0" in repr(layer)
    for channel in members[:500]:
        await layer.close_channel(channel)
    assert await layer.group_members("crowd") == frozenset(members[500:])


async def test_a_watched_channel_notifies_once_per_message_and_hands_them_over() -> None:
    layer = InMemoryChannelLayer(capacity=3)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "early"})
    notified: list[int] = []
    assert layer.watch_channel(channel, lambda: notified.append(1)) == 1  # one was waiting
    await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "later", "n": 1})
    await layer.send(channel, {"type": "later", "n": 2})
    assert len(notified) == 2
    with pytest.raises(ChannelFull):  # the capacity still holds for a watched channel
        await layer.send(channel, {"type": "too.many"})
    assert [layer.take_message(channel) for _ in range(4)] == [
        {"type": "early"},
        {"type": "later", "n": 1},
        {"type": "later", "n": 2},
        None,
    ]
    await layer.close_channel(channel)  # the watch ends with the channel
    await layer.send(channel, {"type": "after"})
    assert len(notified) == 2
    assert isinstance(layer, WatchableLayer)


# -- drops -----------------------------------------------------------------------------------


async def test_a_drop_storm_is_logged_once_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    """A regression: every dropped message logged a WARNING of its own (20,904 lines in one run)."""
    layer = InMemoryChannelLayer(capacity=1)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "first"})
    await layer.group_add("room", channel)
    with caplog.at_level(logging.WARNING, logger="interlock.layers"):
        for n in range(1000):
            await layer.group_send("room", {"type": "more", "n": n})
        assert len(caplog.records) == 1
        await layer.close_channel(channel)  # the drops not logged yet are logged now, with their count
    assert len(caplog.records) == 2
    assert "999 more messages dropped" in caplog.records[1].getMessage()
    assert repr(channel) in caplog.records[1].getMessage()


async def test_drop_counts_and_the_on_drop_hook() -> None:
    layer = InMemoryChannelLayer(capacity=2)
    watched, other = await layer.new_channel(), await layer.new_channel()
    told: list[int] = []
    assert layer.watch_channel(watched, lambda: None, on_drop=told.append) == 0
    for channel in (watched, other):
        await layer.group_add("room", channel)
    for n in range(5):
        await layer.group_send("room", {"type": "n", "n": n})
    assert await layer.drop_counts() == {watched: 3, other: 3}
    assert told == [1, 1, 1]
    assert layer.take_message(watched) == {"type": "n", "n": 0}
    await layer.group_send("room", {"type": "n", "n": 5})  # room again for the watched one
    assert told == [1, 1, 1]
    assert await layer.drop_counts() == {watched: 3, other: 4}
    assert isinstance(layer, DropCountingLayer)
    await layer.flush()
    assert await layer.drop_counts() == {}


async def test_watch_channel_without_on_drop_still_works() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    channel = await layer.new_channel()
    notified: list[int] = []
    layer.watch_channel(channel, lambda: notified.append(1))
    await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "a"})
    await layer.group_send("room", {"type": "b"})
    assert notified == [1]
    assert await layer.drop_counts() == {channel: 1}
