"""The generic actor (Channels' ``AsyncConsumer``/``SyncConsumer``); workers are in test_worker.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from interlock.actors import (
    Actor,
    Message,
    ProtocolTypeRouter,
    StopActor,
    handler,
)
from interlock.actors.compat import AsyncConsumer, StopConsumer, SyncConsumer
from interlock.actors.testing import HttpCommunicator, WebsocketCommunicator
from interlock.layers import InMemoryChannelLayer

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
    assert issubclass(AsyncConsumer, Actor)
    assert SyncConsumer is AsyncConsumer
    assert AsyncConsumer.implicit_handlers  # Channels' rule: every public method is a handler
    assert not Actor.implicit_handlers
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

    @handler
    async def news_item(self, message: Message) -> None:
        await self.send({"type": "websocket.send", "text": message["headline"]})

    @handler
    def news_correction(self, message: Message) -> None:
        self.send({"type": "websocket.send", "text": "correction: " + message["headline"]})


async def test_layer_messages_are_dispatched_by_type_to_group_members(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="interlock.actors")
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
        if record.levelno == logging.WARNING and "cannot handle message type" in record.getMessage()
    ]
    assert len(dropped) == 2  # one line per class and type, not one per member
    assert sum("news_unknown" in text for text in dropped) == 1
    assert sum("one of interlock's own methods" in text for text in dropped) == 1
