"""RedisChannelLayer: the conformance suite on the local Redis, then what only the Redis layer promises.

Every test uses its own key prefix and deletes its keys afterwards.  Several layer instances
in one process stand for several processes where the test says so; the lease tests start
real processes.
"""

from __future__ import annotations

import gc
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import coredis
import pytest
from interlock.layers import (
    ChannelFull,
    DropCountingLayer,
    InvalidChannelName,
    LayerUnavailable,
    ListableGroupLayer,
    RedisChannelLayer,
    WatchableLayer,
)
from interlock.layers.testing import ChannelLayerConformance, LayerFactory

from .redis_support import REDIS_URL, WAIT, count_keys, delete_prefix, eventually, redis_is_up, unique_prefix


@pytest.fixture(autouse=True)
def _collect_garbage() -> Any:
    """Collect after each test, so a leak shows in the test that made it."""
    yield
    gc.collect()


# coredis leaves anyio memory streams unclosed when a connection fails (refused, reset, not
# Redis): the tests of failures ignore the ResourceWarnings their garbage raises.
coredis_leaks_on_failure = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    name = unique_prefix()
    yield name
    await delete_prefix(name)


class TestRedisConformance(ChannelLayerConformance):
    short_expiry = 0.3

    @pytest.fixture
    def layer_factory(self, key_prefix: str) -> LayerFactory:
        @asynccontextmanager
        async def make_layer(**options: Any) -> AsyncIterator[RedisChannelLayer]:
            async with RedisChannelLayer(REDIS_URL, prefix=key_prefix, **options) as layer:
                yield layer

        return make_layer

    @pytest.fixture
    async def layer(self, layer_factory: LayerFactory) -> AsyncIterator[Any]:
        async with layer_factory() as layer:
            yield layer


# -- two layer instances: what the file would call two processes -----------------------------------


@pytest.fixture
async def pair(key_prefix: str) -> AsyncIterator[tuple[RedisChannelLayer, RedisChannelLayer]]:
    async with (
        RedisChannelLayer(REDIS_URL, prefix=key_prefix, capacity=3) as one,
        RedisChannelLayer(REDIS_URL, prefix=key_prefix, capacity=3) as two,
    ):
        yield one, two


async def test_send_reaches_another_process_and_its_watcher(pair: tuple[RedisChannelLayer, RedisChannelLayer]) -> None:
    one, two = pair
    theirs = await two.new_channel()
    notified = anyio.Event()
    assert two.watch_channel(theirs, notified.set) == 0
    assert one.watch_channel(theirs, notified.set) is None  # not one's channel: it cannot watch it
    await one.send(theirs, {"type": "hello", "data": b"\x00\xff"})
    with anyio.fail_after(WAIT):
        await notified.wait()
    assert two.take_message(theirs) == {"type": "hello", "data": b"\x00\xff"}
    assert two.take_message(theirs) is None


async def test_a_remote_channel_fills_up_then_takes_again(pair: tuple[RedisChannelLayer, RedisChannelLayer]) -> None:
    """Its queue and what waits in Redis for it each hold ``capacity``: a sender hears ChannelFull after that."""
    one, two = pair
    theirs = await two.new_channel()
    sent = 0
    with pytest.raises(ChannelFull, match=re.escape(repr(theirs))):  # noqa: PT012 - sends until full
        for sent in range(7):
            await one.send(theirs, {"type": "n", "n": sent})
    assert 3 <= sent <= 6, sent
    with anyio.fail_after(WAIT):
        assert [(await two.receive(theirs))["n"] for _ in range(sent)] == list(range(sent))

    async def takes_again() -> bool:
        try:
            await one.send(theirs, {"type": "n", "n": -1})
        except ChannelFull:
            return False
        return True

    await eventually(takes_again, "the settled counts let a send through again")
    with anyio.fail_after(WAIT):
        assert await two.receive(theirs) == {"type": "n", "n": -1}


async def test_messages_beyond_a_full_queue_are_held_in_order(
    pair: tuple[RedisChannelLayer, RedisChannelLayer],
) -> None:
    one, two = pair
    theirs = await two.new_channel()
    for n in range(3):
        await two.send(theirs, {"type": "n", "n": n})  # the local queue is full
    for n in range(3, 6):
        await one.send(theirs, {"type": "n", "n": n})  # these wait outside it
    with anyio.fail_after(WAIT):
        assert [(await two.receive(theirs))["n"] for _ in range(6)] == list(range(6))


async def test_group_send_spans_processes_and_counts_remote_drops(
    pair: tuple[RedisChannelLayer, RedisChannelLayer],
) -> None:
    one, two = pair
    mine, theirs, full = await one.new_channel(), await two.new_channel(), await two.new_channel()
    told: list[int] = []
    two.watch_channel(full, lambda: None, on_drop=told.append)
    for n in range(3):
        await two.send(full, {"type": "filler", "n": n})
    for channel in (mine, theirs, full):
        await one.group_add("room", channel)
    assert await two.group_members("room") == {mine, theirs, full}
    assert await two.groups() == {"room": 3}
    for n in range(3):  # full holds its capacity: its process's pump drops each copy
        await one.group_send("room", {"type": "chat", "n": n})
    with anyio.fail_after(WAIT):
        assert [(await one.receive(mine))["n"] for _ in range(3)] == [0, 1, 2]
        assert [(await two.receive(theirs))["n"] for _ in range(3)] == [0, 1, 2]
    await eventually(lambda: _true(told == [1, 1, 1]), "the owner heard of the drops")

    async def counted() -> bool:
        return (await one.drop_counts()).get(full) == 3

    await eventually(counted, "the sender's process reads the owner's drop counts from Redis")
    assert [await two.receive(full) for _ in range(3)] == [{"type": "filler", "n": n} for n in range(3)]
    await one.group_send("room", {"type": "chat", "n": 3})  # room again: this copy arrives
    with anyio.fail_after(WAIT):
        assert await two.receive(full) == {"type": "chat", "n": 3}
    await two.close_channel(full)
    assert await one.group_members("room") == {mine, theirs}
    assert full not in await one.drop_counts()


async def test_large_messages_in_large_batches_arrive_whole_and_in_order(key_prefix: str) -> None:
    """The pump's batches of big entries come in many reads of the lean connection."""
    async with (
        RedisChannelLayer(REDIS_URL, prefix=key_prefix, capacity=1000) as one,
        RedisChannelLayer(REDIS_URL, prefix=key_prefix, capacity=1000, capacity_bytes=None) as two,
    ):
        theirs = await two.new_channel()
        await one.group_add("big", theirs)
        text = "x" * 50_000
        async with anyio.create_task_group() as tasks:  # concurrent sends: pipelined in shared writes
            for n in range(300):
                tasks.start_soon(one.send, theirs, {"type": "big", "n": n, "text": text})
        await one.group_send("big", {"type": "big", "n": 300, "text": text, "blob": b"\x00\r\n" * 1000})
        with anyio.fail_after(WAIT):
            got = [await two.receive(theirs) for _ in range(301)]
        assert sorted(message["n"] for message in got[:300]) == list(range(300))
        assert got[300] == {"type": "big", "n": 300, "text": text, "blob": b"\x00\r\n" * 1000}
        assert all(message["text"] == text for message in got)


async def _true(value: bool) -> bool:
    return value


async def test_named_channels_are_shared_by_processes(pair: tuple[RedisChannelLayer, RedisChannelLayer]) -> None:
    one, two = pair
    got: list[dict[str, Any]] = []

    async def receive() -> None:
        got.append(await two.receive("worker.thumbnails"))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            await one.send("worker.thumbnails", {"type": "job", "id": 7})
    assert got == [{"type": "job", "id": 7}]
    await one.group_add("workers", "worker.thumbnails")
    await two.close()  # a named channel's membership belongs to nobody: it stays
    assert await one.group_members("workers") == {"worker.thumbnails"}


async def test_close_removes_the_process_and_its_memberships(key_prefix: str) -> None:
    async with RedisChannelLayer(REDIS_URL, prefix=key_prefix) as watcher:
        leaving = RedisChannelLayer(REDIS_URL, prefix=key_prefix)
        channel = await leaving.new_channel()
        await leaving.group_add("room", channel)
        assert await watcher.group_members("room") == {channel}
        await leaving.close()
        assert await watcher.group_members("room") == frozenset()
        with pytest.raises(InvalidChannelName, match="belongs to layer process"):
            await watcher.receive(channel)
        await watcher.flush()
    await watcher.close()
    assert await count_keys(key_prefix) == 0


# -- bad addresses --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@coredis_leaks_on_failure
async def test_nothing_listening_is_a_clear_error_at_start() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    layer = RedisChannelLayer(url, timeout=1)
    with anyio.fail_after(WAIT), pytest.raises(LayerUnavailable, match=re.escape(url)) as caught:
        await layer.start()
    assert isinstance(caught.value, ConnectionError)
    with anyio.fail_after(WAIT), pytest.raises(LayerUnavailable, match=re.escape(url)):
        await layer.send("anywhere", {"type": "t"})  # every call says so, and none hangs


@coredis_leaks_on_failure
async def test_a_server_that_is_not_redis_is_a_clear_error_at_start() -> None:
    async def not_redis(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"SSH-2.0-OpenSSH_9.2\r\n")

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, not_redis)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        url = f"redis://127.0.0.1:{port}/0"
        with anyio.fail_after(WAIT), pytest.raises(LayerUnavailable, match=re.escape(url)):
            await RedisChannelLayer(url, timeout=1).start()
        tasks.cancel_scope.cancel()


@coredis_leaks_on_failure
async def test_a_silent_server_times_out_at_start() -> None:
    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep(30)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, silent)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        url = f"redis://127.0.0.1:{port}/0"
        with anyio.fail_after(WAIT), pytest.raises(LayerUnavailable, match=re.escape(url)):
            await RedisChannelLayer(url, timeout=0.5).start()
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("url", "shown"),
    [("http://127.0.0.1:6379", "not a Redis URL: 'http://127.0.0.1:6379'"), ("127.0.0.1:6379", "not a Redis URL")],
)
def test_a_url_that_is_not_redis_is_refused_at_once(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match=re.escape(shown)):
        RedisChannelLayer(url)


@pytest.mark.parametrize("prefix", ["", "has{brace}", "x" * 65, "sp ace"])
def test_a_bad_key_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix must be"):
        RedisChannelLayer(REDIS_URL, prefix=prefix)


def test_public_module_path_and_protocols() -> None:
    layer = RedisChannelLayer()
    assert RedisChannelLayer.__module__ == "interlock.layers"
    assert LayerUnavailable.__module__ == "interlock.layers"
    for protocol in (ListableGroupLayer, WatchableLayer, DropCountingLayer):
        assert isinstance(layer, protocol)


async def test_a_client_can_be_given_instead_of_a_url(key_prefix: str) -> None:
    """The layer enters the client when it starts and leaves it when it closes, as often as needed."""
    layer = RedisChannelLayer(coredis.Redis("127.0.0.1", 6379), prefix=key_prefix)
    assert "127.0.0.1:6379" in repr(layer)
    for _ in range(2):
        async with layer:
            channel = await layer.new_channel()
            await layer.group_add("room", channel)
            await layer.group_send("room", {"type": "t"})
            assert await layer.receive(channel) == {"type": "t"}


async def test_a_watched_channel_notifies_once_per_message_and_hands_them_over(key_prefix: str) -> None:
    """WatchableLayer, as the actor runtime uses it: local and remote messages alike, in order."""
    async with (
        RedisChannelLayer(REDIS_URL, prefix=key_prefix, capacity=3) as layer,
        RedisChannelLayer(REDIS_URL, prefix=key_prefix) as other,
    ):
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "early"})
        notified: list[int] = []
        arrived = anyio.Event()

        def note() -> None:
            notified.append(1)
            if len(notified) == 2:  # the message waiting before the watch is counted by its return value
                arrived.set()

        assert layer.watch_channel(channel, note) == 1  # one was waiting
        await layer.group_add("g", channel)
        await layer.group_send("g", {"type": "later", "n": 1})
        await other.send(channel, {"type": "later", "n": 2})  # through Redis and the pump
        with anyio.fail_after(WAIT):
            await arrived.wait()
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
