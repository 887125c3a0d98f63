"""The client pump: the server's events reach a layered actor's mailbox, in order, with backpressure.

On asyncio a ``receive`` known to need no task (an :class:`asyncio.Queue`'s ``get``, as
Hypercorn and Daphne pass it; uvicorn's protocols) is stepped by a
:class:`~interlock.actors._pump.ClientPump`, without a task; any other ``receive``, and
every one on trio, gets a task. The behaviour tests run on both backends: on asyncio
through a queue (the taskless pump), on trio through a memory stream (the task). The
tests of :class:`ClientPump` itself are asyncio's only: it exists only there.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest
from interlock.actors import StopActor, WebsocketActor, handler
from interlock.actors._mailbox import CLIENT, FAILED, Mailbox
from interlock.actors._pump import ClientPump, steps_without_task
from interlock.layers import InMemoryChannelLayer

SCOPE = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}


class Server:
    """One connection's events, as a server queues them: ``receive`` is what the app gets."""

    def __init__(self, backend: str) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.closed = anyio.Event()
        self.accepted = anyio.Event()
        if backend == "asyncio":
            self.queue: asyncio.Queue[dict[str, Any]] | None = asyncio.Queue()
            self.receive: Any = self.queue.get
            self._put: Any = self.queue.put_nowait
        else:  # a function: the actor's pump is a task
            self.queue = None
            self.receive, self._put = self._receive, self._append
            self._items: deque[dict[str, Any]] = deque()
            self._arrived = anyio.Event()

    async def _receive(self) -> dict[str, Any]:
        while not self._items:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        return self._items.popleft()

    def _append(self, message: dict[str, Any]) -> None:
        self._items.append(message)
        self._arrived.set()

    def put(self, message: dict[str, Any]) -> None:
        self._put(message)

    def waiting(self) -> int:
        """Events queued that the app has not taken yet (asyncio only)."""
        assert self.queue is not None
        return self.queue.qsize()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.accept":
            self.accepted.set()
        if message["type"] == "websocket.close":
            self.closed.set()

    def texts(self) -> list[str]:
        return [message["text"] for message in self.sent if message["type"] == "websocket.send"]


class Slow(WebsocketActor):
    """Echoes each frame after a pause; remembers how its connection ended."""

    mailbox_size = 2
    pause = 0.0
    endings: list[int]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "stop":
            raise StopActor
        if text_data == "boom":
            raise RuntimeError("the handler failed")
        await anyio.sleep(self.pause)
        await self.send(text_data=text_data)

    @handler
    async def note(self, event: dict[str, Any]) -> None:
        await self.send(text_data=f"layer:{event['n']}")

    async def disconnect(self, code: int) -> None:
        self.endings.append(code)


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer()


def test_only_a_receive_known_to_need_no_task_is_stepped_without_one() -> None:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol  # noqa: PLC0415
    from uvicorn.protocols.websockets.wsproto_impl import WSProtocol  # noqa: PLC0415

    class Overriding(asyncio.Queue[Any]):
        async def get(self) -> Any:  # may do anything: a task of its own
            return await super().get()

    class Inheriting(asyncio.Queue[Any]):
        pass

    async def closure() -> dict[str, Any]:
        return {}

    protocol = object.__new__(WebSocketsSansIOProtocol)
    assert steps_without_task(protocol.receive)
    assert steps_without_task(object.__new__(WSProtocol).receive)
    assert steps_without_task(asyncio.Queue().get)
    assert steps_without_task(Inheriting().get)
    assert not steps_without_task(Overriding().get)
    assert not steps_without_task(closure)
    assert not steps_without_task(Slow().dispatch)  # a bound method, but not a server's


async def test_every_frame_arrives_in_order_while_the_actor_is_slow(
    anyio_backend: str, layer: InMemoryChannelLayer
) -> None:
    server = Server(anyio_backend)
    Slow.endings = []
    app = Slow.as_asgi(channel_layer=layer, pause=0.002)
    server.put({"type": "websocket.connect"})
    for n in range(40):
        server.put({"type": "websocket.receive", "text": str(n)})
    server.put({"type": "websocket.disconnect", "code": 1000})
    with anyio.fail_after(10):
        await app(SCOPE, server.receive, server.send)
    assert server.texts() == [str(n) for n in range(40)]
    assert Slow.endings == [1000]


async def test_a_full_mailbox_leaves_the_servers_events_with_the_server(
    anyio_backend: str, layer: InMemoryChannelLayer
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("asyncio's queue (the taskless pump) tells what the app has not taken; trio's pump is a task")
    server = Server(anyio_backend)
    Slow.endings = []
    app = Slow.as_asgi(channel_layer=layer, pause=0.2)
    server.put({"type": "websocket.connect"})
    for n in range(20):
        server.put({"type": "websocket.receive", "text": str(n)})
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app, SCOPE, server.receive, server.send)
            await anyio.sleep(0.1)  # the actor handles frame 0; its mailbox (2) fills, then the pump waits
            # taken: connect, frame 0 (handled), two in the mailbox, one held for the next room
            assert server.waiting() == 20 - 4
            server.put({"type": "websocket.disconnect", "code": 1000})
    assert server.texts() == [str(n) for n in range(20)]
    assert Slow.endings == [1000]


async def test_layer_messages_and_frames_share_one_mailbox(anyio_backend: str, layer: InMemoryChannelLayer) -> None:
    server = Server(anyio_backend)
    Slow.endings = []
    app = Slow.as_asgi(channel_layer=layer, groups=["room"])
    server.put({"type": "websocket.connect"})
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app, SCOPE, server.receive, server.send)
            await server.accepted.wait()  # and joined: the groups are joined first
            for n in range(3):
                server.put({"type": "websocket.receive", "text": f"frame:{n}"})
                await anyio.sleep(0.01)
                await layer.group_send("room", {"type": "note", "n": n})
                await anyio.sleep(0.01)
            server.put({"type": "websocket.disconnect", "code": 1001})
    assert server.texts() == ["frame:0", "layer:0", "frame:1", "layer:1", "frame:2", "layer:2"]
    assert Slow.endings == [1001]


async def test_an_actor_that_stops_takes_no_more_events(anyio_backend: str, layer: InMemoryChannelLayer) -> None:
    server = Server(anyio_backend)
    Slow.endings = []
    app = Slow.as_asgi(channel_layer=layer)
    server.put({"type": "websocket.connect"})
    server.put({"type": "websocket.receive", "text": "stop"})
    with anyio.fail_after(10):
        await app(SCOPE, server.receive, server.send)
        assert server.closed.is_set()
        if anyio_backend == "asyncio":
            # The receive() under way was cancelled: an event queued now stays with the server.
            server.put({"type": "websocket.receive", "text": "late"})
            await anyio.sleep(0.05)
            assert server.waiting() == 1
    assert Slow.endings == [1000]


async def test_a_handler_failure_ends_the_actor_once_and_the_pump_with_it(
    anyio_backend: str, layer: InMemoryChannelLayer
) -> None:
    server = Server(anyio_backend)
    Slow.endings = []
    app = Slow.as_asgi(channel_layer=layer)
    server.put({"type": "websocket.connect"})
    server.put({"type": "websocket.receive", "text": "1"})
    server.put({"type": "websocket.receive", "text": "boom"})
    server.put({"type": "websocket.receive", "text": "2"})
    with anyio.fail_after(10):
        await app(SCOPE, server.receive, server.send)
    assert server.texts() == ["1"]
    assert server.sent[-1] == {"type": "websocket.close", "code": 1011, "reason": "internal error"}
    assert Slow.endings == [1011]


# -- ClientPump itself (asyncio only: on trio the pump is a task) ------------------------------


class Host:
    """What a ClientPump needs of its actor: a mailbox and a failure hook."""

    def __init__(self, size: int = 8) -> None:
        self._mailbox: Mailbox[tuple[int, Any]] = Mailbox(size)
        self.failures: list[Exception] = []

    def _post_failure(self, exc: Exception) -> None:
        self.failures.append(exc)
        self._mailbox.put_nowait((FAILED, exc))

    def taken(self) -> list[Any]:
        items = []
        while self._mailbox:
            items.append(self._mailbox.get_nowait())
        return items


TERMINAL = frozenset({"websocket.disconnect"})
REQUEST = contextvars.ContextVar("REQUEST", default="none")


def _pump(host: Host, receive: Any) -> ClientPump:
    return ClientPump(host, receive, TERMINAL)  # type: ignore[arg-type]  # a stand-in for the actor


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_pump_steps_receive_as_a_task_would() -> None:
    host = Host()
    seen: list[tuple[str, asyncio.Task[Any] | None]] = []
    events = iter([{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "x"}])
    REQUEST.set("r-1")

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0)  # a bare yield: stepped again on the loop's next round
        await asyncio.sleep(0.001)  # a future: stepped from its done callback
        seen.append((REQUEST.get(), asyncio.current_task()))
        return next(events, {"type": "websocket.disconnect", "code": 1000})

    pump = _pump(host, receive)
    pump.start()
    await asyncio.sleep(0.1)
    assert [payload["type"] for _, payload in host.taken()] == [
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
    ]
    assert seen == [("r-1", None)] * 3  # the actor's context; no task
    pump.stop()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_stopping_cancels_the_receive_under_way() -> None:
    host = Host()
    cancelled = asyncio.Event()

    async def receive() -> dict[str, Any]:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await asyncio.sleep(0.001)  # cleanup that waits, as a task's would
            raise
        return {}

    pump = _pump(host, receive)
    pump.start()
    await asyncio.sleep(0.01)
    pump.stop()
    pump.stop()  # once is enough
    await asyncio.wait_for(cancelled.wait(), 1)
    await asyncio.sleep(0.01)
    assert host.taken() == []
    assert host.failures == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_stopping_during_a_bare_yield_cancels_at_the_next_step() -> None:
    host = Host()
    steps: list[str] = []

    async def receive() -> dict[str, Any]:
        steps.append("in")
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("resumed")
        return {"type": "websocket.receive", "text": "x"}

    pump = _pump(host, receive)
    pump.start()
    await asyncio.sleep(0)  # the first step runs: receive() yields bare
    assert steps == ["in"]
    pump.stop()
    await asyncio.sleep(0.01)
    assert steps == ["in", "cancelled"]
    assert host.taken() == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_held_event_waits_for_room_and_is_dropped_on_stop() -> None:
    host = Host(size=1)
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for n in range(4):
        queue.put_nowait({"type": "websocket.receive", "text": str(n)})
    pump = _pump(host, queue.get)
    pump.start()
    await asyncio.sleep(0.01)
    assert queue.qsize() == 2  # one in the mailbox, one held
    assert host._mailbox.get_nowait()[1]["text"] == "0"  # room: the held one goes in
    await asyncio.sleep(0.01)
    assert [payload["text"] for _, payload in host.taken()] == ["1"]
    await asyncio.sleep(0.01)
    assert queue.qsize() == 0  # "2" went in, "3" is held
    pump.stop()
    await asyncio.sleep(0.01)
    assert [payload["text"] for _, payload in host.taken()] == ["2"]  # "3", held, is dropped


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_receive_that_fails_or_yields_garbage_fails_the_actor() -> None:
    host = Host()

    async def failing() -> dict[str, Any]:
        raise OSError("the server broke")

    class Garbage:
        def __await__(self) -> Any:
            yield "not a future"

    async def garbage() -> dict[str, Any]:
        await Garbage()
        return {}

    _pump(host, failing).start()
    _pump(host, garbage).start()
    await asyncio.sleep(0.01)
    kinds = [kind for kind, _ in host.taken()]
    assert kinds == [FAILED, FAILED]
    assert isinstance(host.failures[0], OSError)
    assert isinstance(host.failures[1], RuntimeError)
    assert "not an asyncio future" in str(host.failures[1])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_pump_ends_after_the_last_event() -> None:
    host = Host()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    queue.put_nowait({"type": "websocket.receive", "text": "after"})
    _pump(host, queue.get).start()
    await asyncio.sleep(0.01)
    assert [(kind, payload["type"]) for kind, payload in host.taken()] == [(CLIENT, "websocket.disconnect")]
    assert queue.qsize() == 1
