"""The generic actor (Channels' ``AsyncConsumer``/``SyncConsumer``) and background workers."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from interlock.actors import (
    Actor,
    ChannelNameRouter,
    Message,
    ProtocolTypeRouter,
    StopActor,
    run_worker,
)
from interlock.actors.compat import AsyncConsumer, StopConsumer, SyncConsumer
from interlock.actors.testing import HttpCommunicator, WebsocketCommunicator
from interlock.layers import InMemoryChannelLayer, InvalidChannelName

# -- raw WebSocket handlers, sync and async --------------------------------------------------------


class SyncEcho(SyncConsumer):
    """Raw handlers as ``def``: they run in a worker thread and ``send()`` flushes at once."""

    events: list[str] | None = None

    def _record(self, event: str) -> None:
        assert self.events is not None
        self.events.append(event)

    def websocket_connect(self, message: Message) -> None:
        self._record("connect")
        self.send({"type": "websocket.accept", "subprotocol": None})

    def websocket_receive(self, message: Message) -> None:
        text = message.get("text")
        self._record(f"receive:{text}")
        if text == "stop":
            raise StopConsumer
        if text is None:
            self.send({"type": "websocket.send", "bytes": bytes(reversed(message["bytes"]))})
        else:
            self.send({"type": "websocket.send", "text": text.upper()})

    def websocket_disconnect(self, message: Message) -> None:
        self._record(f"disconnect:{message['code']}")


class AsyncEcho(AsyncConsumer):
    """The same handlers as ``async def``."""

    events: list[str] | None = None

    def _record(self, event: str) -> None:
        assert self.events is not None
        self.events.append(event)

    async def websocket_connect(self, message: Message) -> None:
        self._record("connect")
        await self.send({"type": "websocket.accept", "subprotocol": None})

    async def websocket_receive(self, message: Message) -> None:
        text = message.get("text")
        self._record(f"receive:{text}")
        if text == "stop":
            raise StopConsumer
        if text is None:
            await self.send({"type": "websocket.send", "bytes": bytes(reversed(message["bytes"]))})
        else:
            await self.send({"type": "websocket.send", "text": text.upper()})

    async def websocket_disconnect(self, message: Message) -> None:
        self._record(f"disconnect:{message['code']}")


ECHOES = pytest.mark.parametrize("echo", [SyncEcho, AsyncEcho], ids=["sync", "async"])


def test_compat_names_are_the_generic_actor() -> None:
    assert AsyncConsumer is Actor
    assert SyncConsumer is Actor
    assert StopConsumer is StopActor


@ECHOES
async def test_raw_websocket_handlers(echo: type[Actor]) -> None:
    events: list[str] = []
    async with WebsocketCommunicator(echo.as_asgi(events=events), "/ws/") as ws:
        handshake = await ws.connect()
        assert handshake.accepted
        assert handshake.subprotocol is None
        await ws.send_to(text_data="hello")
        assert await ws.receive_from() == "HELLO"
        await ws.send_to(bytes_data=b"\x01\x02\x03")
        assert await ws.receive_from() == b"\x03\x02\x01"
        await ws.disconnect(code=4001)
        assert ws.finished
    assert events == ["connect", "receive:hello", "receive:None", "disconnect:4001"]


@ECHOES
async def test_stop_consumer_stops_the_actor_cleanly(echo: type[Actor]) -> None:
    events: list[str] = []
    async with WebsocketCommunicator(echo.as_asgi(events=events), "/ws/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="stop")
        await ws.wait()
        assert ws.finished
        with pytest.raises(AssertionError, match="finished without sending"):
            await ws.receive_output()
    assert events == ["connect", "receive:stop"]


@ECHOES
async def test_stop_consumer_with_a_layer_closes_the_channel(echo: type[Actor]) -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": echo.as_asgi(events=[], groups=["echoes"])}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/ws/") as ws:
        assert (await ws.connect()).accepted
        assert len(await layer.group_members("echoes")) == 1
        await ws.send_to(text_data="stop")
        await ws.wait()
    assert await layer.groups() == {}


# -- send() ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [42, "websocket.accept", [("type", "websocket.accept")], {"text": "no type"}, {"type": 5}, None],
)
def test_send_refuses_what_is_not_an_asgi_message(message: Any) -> None:
    with pytest.raises(TypeError, match="send\\(\\) takes an ASGI message: a mapping with a str 'type'"):
        Actor().send(message)


async def test_send_outside_a_running_actor_says_so() -> None:
    with pytest.raises(RuntimeError, match="is not running"):
        await Actor().send({"type": "websocket.accept"})


class Careless(Actor):
    """Sends something that is not a message, and reports the error it got."""

    async def websocket_connect(self, message: Message) -> None:
        try:
            self.send(["websocket.accept"])  # type: ignore[arg-type]
        except TypeError as exc:
            await self.send({"type": "websocket.close", "code": 4000, "reason": str(exc)[:100]})

    async def websocket_disconnect(self, message: Message) -> None:
        pass


async def test_send_error_reaches_the_handler() -> None:
    async with WebsocketCommunicator(Careless.as_asgi(), "/ws/") as ws:
        handshake = await ws.connect()
    assert handshake.close_code == 4000


# -- HTTP -------------------------------------------------------------------------------------------------


class AsyncHello(Actor):
    """Answers one request, then stops."""

    async def http_request(self, message: Message) -> None:
        body = f"{self.scope['method']} {self.scope['query_string'].decode()} ".encode() + message["body"]
        await self.send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await self.send({"type": "http.response.body", "body": body})
        raise StopActor


class SyncHello(Actor):
    """The same, as ``def``; the response parts are flushed as they are sent."""

    def http_request(self, message: Message) -> None:
        body = f"{self.scope['method']} {self.scope['query_string'].decode()} ".encode() + message["body"]
        self.send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        self.send({"type": "http.response.body", "body": body[:4], "more_body": True})
        self.send({"type": "http.response.body", "body": body[4:]})
        raise StopActor


@pytest.mark.parametrize("hello", [SyncHello, AsyncHello], ids=["sync", "async"])
async def test_http_request_handler(hello: type[Actor]) -> None:
    async with HttpCommunicator(hello.as_asgi(), "post", "/hello?x=1", body=b"ada") as http:
        response = await http.get_response()
        await http.wait()
    assert response.status == 201
    assert response.body == b"POST x=1 ada"
    assert response.header("Content-Type") == "text/plain"


# -- layer messages ---------------------------------------------------------------------------------------


class Newsroom(Actor):
    """Joins ``news`` when it starts; forwards ``news.item`` messages to the client."""

    groups = ("news",)
    unhandled = "log"

    async def websocket_connect(self, message: Message) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_disconnect(self, message: Message) -> None:
        pass

    async def news_item(self, message: Message) -> None:
        await self.send({"type": "websocket.send", "text": message["headline"]})

    def news_correction(self, message: Message) -> None:
        self.send({"type": "websocket.send", "text": "correction: " + message["headline"]})


async def test_layer_messages_are_dispatched_by_type_to_group_members(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="interlock.actors")
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Newsroom.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/ws/") as a, WebsocketCommunicator(app, "/ws/") as b:
        assert (await a.connect()).accepted
        assert (await b.connect()).accepted
        assert len(await layer.group_members("news")) == 2
        await layer.group_send("news", {"type": "news.item", "headline": "rain"})
        await layer.group_send("news", {"type": "news.correction", "headline": "snow"})
        for ws in (a, b):
            assert await ws.receive_from() == "rain"
            assert await ws.receive_from() == "correction: snow"
        # With unhandled = "log", an unknown or reserved type is logged and dropped.
        await layer.group_send("news", {"type": "news.unknown"})
        await layer.group_send("news", {"type": "send", "text": "not sent"})
        await layer.group_send("news", {"type": "news.item", "headline": "sun"})
        assert await a.receive_from() == "sun"
        assert await b.receive_from() == "sun"
        for ws in (a, b):
            await ws.disconnect()
    assert await layer.groups() == {}
    dropped = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.ERROR and "cannot handle message type" in record.getMessage()
    ]
    assert len(dropped) == 4
    assert sum("news_unknown" in text for text in dropped) == 2
    assert sum("one of interlock's own methods" in text for text in dropped) == 2


# -- background workers ------------------------------------------------------------------------------------


class Worker(Actor):
    """Does jobs sent to its named channel and reports to the ``results`` channel."""

    async def report(self, message: dict[str, Any]) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.send("results", message)

    async def job_run(self, message: Message) -> None:
        await self.report({"type": "job.done", "worker": self.scope["channel"], "n": message["n"]})

    async def job_reply(self, message: Message) -> None:
        try:
            await self.send({"type": "websocket.send", "text": "hello"})
        except RuntimeError as exc:
            await self.report({"type": "job.error", "error": str(exc)})

    def job_reply_sync(self, message: Message) -> None:
        try:
            self.send({"type": "websocket.send", "text": "hello"})
        except RuntimeError as exc:
            anyio.from_thread.run(self.report, {"type": "job.error", "error": str(exc)})


def worker_app() -> ChannelNameRouter:
    return ChannelNameRouter({"worker.alpha": Worker.as_asgi(), "worker.beta": Worker.as_asgi()})


async def test_run_worker_serves_named_channels() -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha", "worker.beta"], layer)
        for n, channel in enumerate(["worker.alpha", "worker.beta", "worker.alpha"]):
            await layer.send(channel, {"type": "job.run", "n": n})
        with anyio.fail_after(2):
            results = [await layer.receive("results") for _ in range(3)]
        tasks.cancel_scope.cancel()
    assert sorted((result["n"], result["worker"]) for result in results) == [
        (0, "worker.alpha"),
        (1, "worker.beta"),
        (2, "worker.alpha"),
    ]


@pytest.mark.parametrize("job", ["job.reply", "job.reply_sync"])
async def test_a_workers_send_raises_a_clear_runtime_error(job: str) -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha"], layer)
        await layer.send("worker.alpha", {"type": job})
        await layer.send("worker.alpha", {"type": "job.run", "n": 1})  # the worker goes on
        with anyio.fail_after(2):
            error = await layer.receive("results")
            done = await layer.receive("results")
        tasks.cancel_scope.cancel()
    assert error["type"] == "job.error"
    assert "a worker has no client to send 'websocket.send' to" in error["error"]
    assert "self.channel_layer" in error["error"]
    assert done == {"type": "job.done", "worker": "worker.alpha", "n": 1}


@pytest.mark.parametrize(
    ("channels", "error", "message"),
    [
        ("worker.alpha", TypeError, "takes a list of channel names, not the str 'worker.alpha'"),
        ([], ValueError, "needs at least one channel name"),
        (["worker alpha"], InvalidChannelName, "invalid channel name 'worker alpha'"),
        (["worker.alpha", ""], InvalidChannelName, "it is empty"),
    ],
)
async def test_run_worker_argument_errors(channels: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        await run_worker(worker_app(), channels, InMemoryChannelLayer())
    assert message in str(info.value)


def test_invalid_channel_name_is_a_value_error() -> None:
    assert issubclass(InvalidChannelName, ValueError)
