"""The sync/async bridge: ``async_to_sync``, ``sync_to_async`` and sync handlers' sends."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest
from interlock.actors import ProtocolTypeRouter, async_to_sync, sync_to_async
from interlock.actors.compat import WebsocketConsumer
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import InMemoryChannelLayer, ListableGroupLayer


async def double_in_thread(value: int) -> tuple[int, int]:
    """Return twice *value* and the thread the coroutine ran in."""
    await anyio.lowlevel.checkpoint()
    return value * 2, threading.get_ident()


# -- async_to_sync -----------------------------------------------------------------------------------


class Lobby(WebsocketConsumer):
    """A sync consumer that uses the layer through ``async_to_sync``."""

    def connect(self) -> None:
        layer = self.channel_layer
        assert isinstance(layer, ListableGroupLayer)
        async_to_sync(layer.group_add)("lobby", self.channel_name)
        members = async_to_sync(layer.group_members)("lobby")
        self.accept()
        self.send(text_data=f"{len(members)} in the lobby")

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert text_data is not None
        async_to_sync(self.channel_layer.group_send)("lobby", {"type": "lobby.message", "text": text_data})

    def lobby_message(self, message: dict[str, str]) -> None:
        self.send(text_data=message["text"])

    def disconnect(self, code: int) -> None:
        async_to_sync(self.channel_layer.group_discard)("lobby", self.channel_name)


async def test_async_to_sync_from_a_sync_handler_calls_the_layer() -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Lobby.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/ws/") as a, WebsocketCommunicator(app, "/ws/") as b:
        assert (await a.connect()).accepted
        assert await a.receive_from() == "1 in the lobby"
        assert (await b.connect()).accepted
        assert await b.receive_from() == "2 in the lobby"
        await b.send_to(text_data="hi all")
        assert await a.receive_from() == "hi all"
        assert await b.receive_from() == "hi all"
        await a.disconnect()
        assert len(await layer.group_members("lobby")) == 1
        await b.disconnect()
    assert await layer.groups() == {}


def test_async_to_sync_without_an_event_loop_runs_the_coroutine_here() -> None:
    assert async_to_sync(double_in_thread)(21) == (42, threading.get_ident())


def test_async_to_sync_in_a_plain_thread_runs_the_coroutine_in_that_thread() -> None:
    results: list[tuple[tuple[int, int], int]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append((async_to_sync(double_in_thread)(4), threading.get_ident()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(5)
    assert not errors
    [((value, coroutine_thread), caller_thread)] = results
    assert value == 8
    assert coroutine_thread == caller_thread != threading.get_ident()


def test_async_to_sync_keeps_the_wrapped_name() -> None:
    assert async_to_sync(double_in_thread).__name__ == "double_in_thread"


async def test_async_to_sync_on_the_event_loop_thread_says_to_await() -> None:
    with pytest.raises(RuntimeError, match="await the coroutine instead") as info:
        async_to_sync(double_in_thread)(1)
    assert "double_in_thread" in str(info.value)
    assert "event loop thread" in str(info.value)


async def test_async_to_sync_in_a_worker_thread_runs_on_the_event_loop() -> None:
    loop_thread = threading.get_ident()

    def in_worker() -> tuple[tuple[int, int], int]:
        return async_to_sync(double_in_thread)(5), threading.get_ident()

    (value, coroutine_thread), worker_thread = await anyio.to_thread.run_sync(in_worker)
    assert value == 10
    assert coroutine_thread == loop_thread != worker_thread


async def test_async_to_sync_passes_exceptions_through() -> None:
    async def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await anyio.to_thread.run_sync(async_to_sync(fail))


# -- sync_to_async -----------------------------------------------------------------------------------


async def test_sync_to_async_runs_in_a_worker_thread() -> None:
    def where(label: str, *, suffix: str) -> tuple[str, int]:
        return label + suffix, threading.get_ident()

    wrapped = sync_to_async(where)
    assert wrapped.__name__ == "where"
    text, thread = await wrapped("a", suffix="b")
    assert text == "ab"
    assert thread != threading.get_ident()


async def test_sync_to_async_passes_exceptions_through() -> None:
    def fail() -> None:
        raise LookupError("missing")

    with pytest.raises(LookupError, match="missing"):
        await sync_to_async(fail)()


# -- sends from sync handlers ---------------------------------------------------------------------------


class Gated(WebsocketConsumer):
    """Sends, then blocks its worker thread until the test has seen the first message."""

    gate: threading.Event | None = None

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.gate is not None
        self.send(text_data="first")
        released = self.gate.wait(timeout=5)
        self.send(text_data="second" if released else "gate timed out")


async def test_a_sync_handlers_send_is_flushed_immediately() -> None:
    gate = threading.Event()
    async with WebsocketCommunicator(Gated.as_asgi(gate=gate), "/ws/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="go")
        # The handler is still running (blocked on the gate): "first" is already out.
        assert await ws.receive_from() == "first"
        await ws.receive_nothing(0.05)
        gate.set()
        assert await ws.receive_from() == "second"
        await ws.disconnect()


class Ordered(WebsocketConsumer):
    """Mixes its own sends with a ``group_send`` to a group it belongs to."""

    groups = ("room",)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data="1")
        async_to_sync(self.channel_layer.group_send)("room", {"type": "room.message", "text": "2"})
        self.send(text_data="3")

    def room_message(self, message: dict[str, str]) -> None:
        self.send(text_data=message["text"])


async def test_sends_keep_their_order_around_async_to_sync_group_send() -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Ordered.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/ws/") as a, WebsocketCommunicator(app, "/ws/") as b:
        assert (await a.connect()).accepted
        assert (await b.connect()).accepted
        await a.send_to(text_data="go")
        # The sender's own sends come first, in order; the group message is handled after.
        assert [await a.receive_from() for _ in range(3)] == ["1", "3", "2"]
        assert await b.receive_from() == "2"
        await a.receive_nothing(0.05)
        await b.receive_nothing(0.05)
        await a.disconnect()
        await b.disconnect()
