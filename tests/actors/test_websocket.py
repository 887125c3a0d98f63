"""WebsocketActor and JsonWebsocketActor through communicators: lifecycle, misuse, dispatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
from interlock.actors import (
    DenyConnection,
    IllegalTransition,
    JsonWebsocketActor,
    ProtocolTypeRouter,
    WebsocketActor,
    handler,
)
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import LIFECYCLE
from interlock.layers import InMemoryChannelLayer


class Echo(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


async def test_echo_text_and_bytes_and_states() -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="héllo")
        assert await ws.receive_from() == "héllo"
        await ws.send_to(bytes_data=b"\x00\xff")
        assert await ws.receive_from() == b"\x00\xff"
        await ws.disconnect(4001)


class Recorder(WebsocketActor):
    """Runs a scripted misuse in connect or receive and reports the error text."""

    script: str = ""
    states: list[str]

    async def connect(self) -> None:
        if self.script == "send-before-accept":
            try:
                await self.send(text_data="too early")
            except IllegalTransition as exc:
                await self.accept()
                await self.send(text_data=f"error: {exc}")
                return
        if self.script == "deny":
            raise DenyConnection
        await self.accept()
        if self.script == "accept-twice":
            try:
                await self.accept()
            except IllegalTransition as exc:
                await self.send(text_data=f"error: {exc}")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close-then-send":
            await self.close(4000, "bye")
            await self.close()  # closing twice is harmless
            try:
                await self.send(text_data="after close")
            except IllegalTransition as exc:
                assert exc.state == "closing"
                assert exc.operation == "send"
                raise


async def test_send_before_accept_names_state_and_fix() -> None:
    async with WebsocketCommunicator(Recorder.as_asgi(script="send-before-accept"), "/") as ws:
        assert (await ws.connect()).accepted
        text = await ws.receive_from()
        assert isinstance(text, str)
        assert "send() is not allowed in state 'connecting'" in text
        assert "call accept() first" in text
        assert "accept()" in text.split("allowed in 'connecting':")[1]


async def test_accept_twice_is_refused() -> None:
    async with WebsocketCommunicator(Recorder.as_asgi(script="accept-twice"), "/") as ws:
        assert (await ws.connect()).accepted
        assert "accept() was already called" in str(await ws.receive_from())


async def test_send_after_close_fails_the_handler_but_close_was_sent(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(Recorder.as_asgi(), "/") as ws:
        assert (await ws.connect()).accepted
        with caplog.at_level(logging.ERROR, "interlock.actors"):
            await ws.send_to(text_data="close-then-send")
            close = await ws.receive_close()
            assert (close.code, close.reason) == (4000, "bye")
            await ws.wait()
        assert "send() is not allowed in state 'closing'" in caplog.text
        assert "Recorder" in caplog.text


async def test_deny_connection_refuses_with_403() -> None:
    async with WebsocketCommunicator(Recorder.as_asgi(script="deny"), "/") as ws:
        handshake = await ws.connect()
        assert not handshake.accepted
        assert handshake.status == 403


async def test_deny_without_extension_falls_back_to_close() -> None:
    async with WebsocketCommunicator(Recorder.as_asgi(script="deny"), "/", denial_extension=False) as ws:
        handshake = await ws.connect()
        assert not handshake.accepted
        assert handshake.close_code == 1000


class Denier(WebsocketActor):
    async def connect(self) -> None:
        await self.deny(401, "who are you?", headers={"www-authenticate": "Bearer"})


async def test_deny_sends_status_body_and_headers() -> None:
    async with WebsocketCommunicator(Denier.as_asgi(), "/") as ws:
        handshake = await ws.connect()
        assert (handshake.status, handshake.body) == (401, b"who are you?")
        assert (b"www-authenticate", b"Bearer") in handshake.headers
        await ws.disconnect()


@pytest.mark.parametrize("status", [200, 302, 600])
async def test_deny_rejects_non_error_statuses(status: int) -> None:
    class BadDenier(WebsocketActor):
        async def connect(self) -> None:
            try:
                self.deny(status)
            except ValueError as exc:
                await self.accept()
                await self.send(text_data=str(exc))

    async with WebsocketCommunicator(BadDenier.as_asgi(), "/") as ws:
        await ws.connect()
        assert "400 to 599" in str(await ws.receive_from())


class Subprotocols(WebsocketActor):
    async def connect(self) -> None:
        await self.accept("chat.v2", headers=[("x-server", "interlock")])


async def test_accept_with_subprotocol_and_headers() -> None:
    async with WebsocketCommunicator(Subprotocols.as_asgi(), "/", subprotocols=["chat.v1", "chat.v2"]) as ws:
        handshake = await ws.connect()
        assert handshake.subprotocol == "chat.v2"
        assert (b"x-server", b"interlock") in handshake.headers


async def test_accept_with_a_subprotocol_not_offered_fails_with_500(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(Subprotocols.as_asgi(), "/", subprotocols=["other"]) as ws:
        with caplog.at_level(logging.ERROR, "interlock.actors"):
            handshake = await ws.connect()
        assert handshake.status == 500
        assert "the client offered ['other']" in caplog.text


class BadSender(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        errors = []
        calls: list[Callable[[], object]] = [
            lambda: self.send(text_data=b"bytes as text"),  # type: ignore[arg-type]
            lambda: self.send(bytes_data="text as bytes"),  # type: ignore[arg-type]
            lambda: self.send(text_data="a", bytes_data=b"b"),
            self.send,
        ]
        for call in calls:
            try:
                call()
            except (TypeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        await self.send(text_data="\n".join(errors))


async def test_bad_send_arguments_raise_clear_errors() -> None:
    async with WebsocketCommunicator(BadSender.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="go")
        errors = str(await ws.receive_from()).splitlines()
        assert errors == [
            "TypeError: send(text_data=...) takes a str, not bytes",
            "TypeError: send(bytes_data=...) takes bytes, not str",
            "ValueError: send() takes text_data or bytes_data, not both",
            "ValueError: send() needs text_data or bytes_data",
        ]


class SendAndClose(WebsocketActor):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data="last words", close=4002)


async def test_sync_send_with_close_code() -> None:
    async with WebsocketCommunicator(SendAndClose.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="x")
        assert await ws.receive_from() == "last words"
        assert (await ws.receive_close()).code == 4002


class Forgetful(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data="one")  # not awaited: flushed after the handler, in order
        await self.send(text_data="two")
        self.send(text_data="three")


async def test_unawaited_sends_are_flushed_in_order() -> None:
    async with WebsocketCommunicator(Forgetful.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="x")
        assert [await ws.receive_from() for _ in range(3)] == ["one", "two", "three"]


class Room(WebsocketActor):
    groups = ("room",)
    seen: list[str]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send("room", {"type": "room.say", "text": text_data})

    @handler
    async def room_say(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])

    def is_admin(self) -> bool:  # a helper: no layer message may call it
        raise AssertionError("a layer message reached a helper")


async def test_groups_are_joined_on_connect_and_left_on_disconnect() -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Room.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as a, WebsocketCommunicator(app, "/") as b:
        await a.connect()
        await b.connect()
        assert len(await layer.group_members("room")) == 2
        await a.send_to(text_data="hi")
        assert await a.receive_from() == "hi"
        assert await b.receive_from() == "hi"
        await a.disconnect()
        assert len(await layer.group_members("room")) == 1
        await b.disconnect()
    assert await layer.groups() == {}


@pytest.mark.parametrize(
    ("message_type", "reason"),
    [
        ("close", "one of interlock's own methods"),
        ("send", "one of interlock's own methods"),
        ("accept", "one of interlock's own methods"),
        ("websocket.receive", "define a method named 'websocket_receive'"),
        ("_room.say", "private"),
        ("nothing.here", "define a method named 'nothing_here', marked @handler"),
        ("is_admin", "'is_admin' is not marked as a handler; decorate it with @handler"),
        ("is.admin", "'is_admin' is not marked as a handler"),
    ],
)
async def test_layer_messages_reach_only_declared_handlers(
    message_type: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Room.as_asgi(unhandled="raise")}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as ws:
        await ws.connect()
        with caplog.at_level(logging.ERROR, "interlock.actors"):
            await layer.group_send("room", {"type": message_type})
            close = await ws.receive_close()
        assert close.code == 1011  # policy "raise": the actor fails, nothing else runs
        assert f"cannot handle message type {message_type!r}" in caplog.text
        assert reason in caplog.text
        await ws.wait()
    assert await layer.group_members("room") == frozenset()


async def test_by_default_one_bad_message_fails_no_member(caplog: pytest.LogCaptureFixture) -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": Room.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as a, WebsocketCommunicator(app, "/") as b:
        await a.connect()
        await b.connect()
        for bad in ("close", "is_admin", "nothing.here"):
            await layer.group_send("room", {"type": bad})
        await a.send_to(text_data="still here")
        assert await a.receive_from() == "still here"
        assert await b.receive_from() == "still here"
        await a.disconnect()
        await b.disconnect()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "dropped an event" in r.getMessage()]
    assert len(warnings) == 3  # one line per type for the class, not one per member
    assert all(r.exc_info is None for r in warnings)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_handler_mark_on_a_private_or_own_method_is_refused() -> None:
    with pytest.raises(TypeError, match=r"Bad\.close is marked @handler but is one of interlock's own methods"):

        class Bad(WebsocketActor):
            @handler
            def close(self, code: int | None = None, reason: str | None = None) -> Any: ...

    with pytest.raises(TypeError, match=r"Hidden\._secret is marked @handler but is private"):

        class Hidden(WebsocketActor):
            @handler
            def _secret(self, event: dict[str, Any]) -> None: ...


class LenientRoom(Room):
    unhandled = "log"


async def test_unhandled_log_policy_keeps_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": LenientRoom.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as ws:
        await ws.connect()
        with caplog.at_level(logging.DEBUG, "interlock.actors"):
            await layer.group_send("room", {"type": "close"})
            await layer.group_send("room", {"type": "room.say", "text": "still open"})
            assert await ws.receive_from() == "still open"
        assert "cannot handle message type 'close'" in caplog.text
        await ws.disconnect()


class Chat(JsonWebsocketActor):
    def receive_json(self, content: Any) -> None:  # a sync handler under the async runtime
        self.send_json({"echo": content})


async def test_json_round_trip_with_sync_handler() -> None:
    async with WebsocketCommunicator(Chat.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_json_to({"a": [1, 2, "ü"]})
        assert await ws.receive_json_from() == {"echo": {"a": [1, 2, "ü"]}}


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ({"text_data": "{nope"}, 1007, "malformed JSON"),
        ({"bytes_data": b"\x01\x02"}, 1003, "binary frame of 2 bytes"),
    ],
)
async def test_json_actor_closes_on_bad_frames(
    frame: dict[str, Any], code: int, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with WebsocketCommunicator(Chat.as_asgi(), "/") as ws:
        await ws.connect()
        with caplog.at_level(logging.WARNING, "interlock.actors"):
            await ws.send_to(**frame)
            close = await ws.receive_close()
        assert close.code == code
        assert words in close.reason
        assert "the client sent malformed data" in caplog.text


class Broken(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raise KeyError("boom")


async def test_handler_exception_closes_with_1011_and_logs_identity(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(Broken.as_asgi(), "/some/path") as ws:
        await ws.connect()
        with caplog.at_level(logging.ERROR, "interlock.actors"):
            await ws.send_to(text_data="x")
            assert (await ws.receive_close()).code == 1011
            await ws.wait()
        assert "Broken path=/some/path client=127.0.0.1:50000" in caplog.text
        assert "KeyError" in caplog.text


async def test_messages_after_close_are_ignored() -> None:
    class Closer(WebsocketActor):
        count = 0

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            type(self).count += 1
            await self.close()

    async with WebsocketCommunicator(Closer.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="1")
        await ws.send_to(text_data="2")
        assert (await ws.receive_close()).code == 1000
        await ws.receive_nothing()
        await ws.disconnect()
    assert Closer.count == 1


def test_lifecycle_table_matches_the_rules() -> None:
    assert LIFECYCLE.initial == "connecting"
    assert LIFECYCLE.next("connecting", "accept") == "open"
    assert LIFECYCLE.next("open", "send") == "open"
    assert LIFECYCLE.next("open", "close") == "closing"
    assert LIFECYCLE.next("closing", "close") == "closing"
    assert LIFECYCLE.next("closing", "disconnect") == "closed"
    for state in LIFECYCLE.states:
        if state != "closed":
            assert LIFECYCLE.can(state, "disconnect")
    assert not any(source == "closed" for source, _ in LIFECYCLE.table)
    with pytest.raises(IllegalTransition, match="allowed in 'closed': close"):
        LIFECYCLE.next("closed", "send")


def test_groups_attribute_must_be_a_sequence() -> None:
    with pytest.raises(TypeError, match="groups must be a list or tuple"):

        class Bad(WebsocketActor):
            groups = "room"


class EchoInRoom(Echo):
    groups = ("room",)


async def test_a_failing_server_receive_fails_the_actor_after_what_came_before(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()  # with a layer, a task of the actor's pumps the client's events
    app = ProtocolTypeRouter({"websocket": EchoInRoom.as_asgi()}, channel_layer=layer)
    incoming: list[dict[str, Any]] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "before the failure"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        raise ConnectionResetError("the server lost the socket")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/room", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 5)}
    with caplog.at_level(logging.ERROR, "interlock.actors"):
        await app(scope, receive, send)  # the actor's failure is its own: the app returns
    assert sent[0] == {"type": "websocket.accept", "subprotocol": None}
    assert {"type": "websocket.send", "text": "before the failure"} in sent
    assert sent[-1]["type"] == "websocket.close"
    assert sent[-1]["code"] == 1011
    assert "EchoInRoom channel=" in caplog.text
    assert "ConnectionResetError: the server lost the socket" in caplog.text
    assert await layer.groups() == {}
