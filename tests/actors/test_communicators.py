"""The test communicators: timeouts, app errors, silence, misuse, handshake and HTTP results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from interlock.actors import DenyConnection, Message, Receive, Scope, Send, WebsocketActor
from interlock.actors.testing import (
    ApplicationCommunicator,
    ApplicationFailed,
    Close,
    Handshake,
    HttpCommunicator,
    HttpResponse,
    WebsocketCommunicator,
)

# -- raw apps ----------------------------------------------------------------------------------------


async def silent(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads its input forever and never answers."""
    while True:
        await receive()


async def chatty(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every input with ``chat.reply``."""
    while True:
        message = await receive()
        await send({"type": "chat.reply", "echo": message["type"]})


async def quitter(scope: Scope, receive: Receive, send: Send) -> None:
    """Returns after its first input, sending nothing."""
    await receive()


async def crasher(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends one message, then raises."""
    await receive()
    await send({"type": "last.words"})
    raise ZeroDivisionError("boom")


async def odd_handshake(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers a handshake with something no server would accept."""
    await receive()
    await send({"type": "websocket.send", "text": "too early"})


def lifespan_scope() -> Scope:
    return {"type": "lifespan"}


# -- ApplicationCommunicator ------------------------------------------------------------------------


async def test_receive_output_times_out_with_a_clear_message() -> None:
    async with ApplicationCommunicator(silent, lifespan_scope()) as app:
        await app.send_input({"type": "anything"})
        with pytest.raises(TimeoutError, match=r"the application sent nothing within 0\.05 s"):
            await app.receive_output(timeout=0.05)


async def test_the_default_timeout_is_the_communicators() -> None:
    async with ApplicationCommunicator(silent, lifespan_scope(), timeout=0.05) as app:
        with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
            await app.receive_output()
        with pytest.raises(TimeoutError, match=r"the application did not finish within 0\.05 s"):
            await app.wait()
        assert not app.finished


async def test_receive_output_returns_messages_in_order() -> None:
    async with ApplicationCommunicator(chatty, lifespan_scope()) as app:
        await app.send_input({"type": "one"})
        await app.send_input({"type": "two"})
        assert await app.receive_output() == {"type": "chat.reply", "echo": "one"}
        assert await app.receive_output() == {"type": "chat.reply", "echo": "two"}


def assert_failed(info: pytest.ExceptionInfo[ApplicationFailed], how: str) -> None:
    """The communicator's error names the app's exception and carries it as ``__cause__``."""
    error = info.value
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert str(error.__cause__) == "boom"
    assert error.error is error.__cause__
    assert str(error) == f"the application raised ZeroDivisionError: boom{how}"
    assert "finished without sending" not in str(error)


async def test_an_app_exception_is_raised_by_receive_output_after_its_messages() -> None:
    async with ApplicationCommunicator(crasher, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        assert await app.receive_output() == {"type": "last.words"}
        with pytest.raises(ApplicationFailed) as info:
            await app.receive_output()
        assert_failed(info, " instead of sending another message")
        assert app.finished


async def test_an_app_exception_is_raised_by_wait_every_time() -> None:
    async with ApplicationCommunicator(crasher, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        for _ in range(2):
            with pytest.raises(ApplicationFailed) as info:
                await app.wait()
            assert_failed(info, "")


async def test_an_app_exception_is_raised_by_receive_nothing() -> None:
    async with ApplicationCommunicator(crasher, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        assert await app.receive_output() == {"type": "last.words"}
        with pytest.raises(ApplicationFailed) as info:
            await app.receive_nothing()
        assert_failed(info, "")


async def raises_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    """Raises before reading or sending anything."""
    raise ZeroDivisionError("boom")


async def accepts_then_raises(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts the handshake, then raises."""
    await receive()
    await send({"type": "websocket.accept"})
    raise ZeroDivisionError("boom")


async def starts_then_raises(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts an HTTP response, then raises before its body."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise ZeroDivisionError("boom")


async def test_websocket_connect_raises_the_apps_exception_as_the_cause() -> None:
    async with WebsocketCommunicator(raises_at_once, "/ws/") as ws:
        with pytest.raises(ApplicationFailed) as info:
            await ws.connect()
    assert_failed(info, " instead of sending another message")


async def test_websocket_receive_from_raises_the_apps_exception_as_the_cause() -> None:
    async with WebsocketCommunicator(accepts_then_raises, "/ws/") as ws:
        assert (await ws.connect()).accepted
        with pytest.raises(ApplicationFailed) as info:
            await ws.receive_from()
    assert_failed(info, " instead of sending another message")


@pytest.mark.parametrize("app", [raises_at_once, starts_then_raises], ids=["before sending", "after start"])
async def test_http_communicator_raises_the_apps_exception_as_the_cause(app: Any) -> None:
    async with HttpCommunicator(app, "GET", "/") as http:
        with pytest.raises(ApplicationFailed) as info:
            await http.get_response()
    assert_failed(info, " instead of sending another message")


def test_application_failed_is_a_runtime_error_naming_a_bare_exception() -> None:
    error = ApplicationFailed(KeyError())
    assert isinstance(error, RuntimeError)
    assert str(error) == "the application raised KeyError"


async def test_an_app_that_returned_has_nothing_more_to_send() -> None:
    async with ApplicationCommunicator(quitter, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        await app.wait()
        assert app.finished
        with pytest.raises(AssertionError, match="finished without sending another message"):
            await app.receive_output()
        await app.receive_nothing()


async def test_receive_nothing_passes_on_silence() -> None:
    async with ApplicationCommunicator(silent, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        await app.receive_nothing(0.05)


async def test_receive_nothing_names_the_message_it_got() -> None:
    async with ApplicationCommunicator(chatty, lifespan_scope()) as app:
        await app.send_input({"type": "go"})
        with pytest.raises(AssertionError, match="expected no output") as info:
            await app.receive_nothing(0.5)
    assert "'chat.reply'" in str(info.value)
    assert "'echo': 'go'" in str(info.value)


def operations(app: ApplicationCommunicator) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "send_input": lambda: app.send_input({"type": "x"}),
        "receive_output": app.receive_output,
        "receive_nothing": app.receive_nothing,
        "wait": app.wait,
    }


@pytest.mark.parametrize("operation", ["send_input", "receive_output", "receive_nothing", "wait"])
async def test_use_outside_async_with_is_refused(operation: str) -> None:
    app = ApplicationCommunicator(silent, lifespan_scope())
    with pytest.raises(RuntimeError, match=r"use ApplicationCommunicator as `async with"):
        await operations(app)[operation]()


async def test_websocket_communicator_outside_async_with_is_refused() -> None:
    ws = WebsocketCommunicator(silent, "/ws/")
    with pytest.raises(RuntimeError, match=r"use WebsocketCommunicator as `async with"):
        await ws.connect()


async def test_http_communicator_outside_async_with_is_refused() -> None:
    http = HttpCommunicator(silent, "GET", "/")
    with pytest.raises(RuntimeError, match=r"use HttpCommunicator as `async with"):
        await http.get_response()


# -- WebSocket handshakes ----------------------------------------------------------------------------


class Doorman(WebsocketActor):
    """Answers the handshake according to the path."""

    async def connect(self) -> None:
        where = self.scope["path"]
        if where == "/accept/":
            await self.accept(subprotocol="chat.v2", headers=[("X-Room", "red"), ("set-cookie", b"a=1")])
        elif where == "/close/":
            await self.close()
        elif where == "/close-code/":
            await self.close(code=4403)
        elif where == "/deny/":
            await self.deny(401, body="token expired", headers=[("WWW-Authenticate", "Bearer")])
        elif where == "/raise/":
            raise DenyConnection
        elif where == "/bad-subprotocol/":
            await self.accept(subprotocol="not.offered")
        else:
            await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            await self.close(code=4000, reason="bye")
        elif text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)


async def test_handshake_accept_with_subprotocol_and_headers() -> None:
    async with WebsocketCommunicator(
        Doorman.as_asgi(), "/accept/", subprotocols=["chat.v1", "chat.v2"], headers=[("Origin", "x")]
    ) as ws:
        assert ws.scope["subprotocols"] == ["chat.v1", "chat.v2"]
        assert ws.scope["headers"] == [(b"origin", b"x")]
        handshake = await ws.connect()
        assert ws.handshake is handshake
        await ws.disconnect()
    assert handshake.accepted
    assert handshake.subprotocol == "chat.v2"
    assert handshake.headers == [(b"x-room", b"red"), (b"set-cookie", b"a=1")]
    assert handshake.status is None
    assert handshake.close_code is None


async def test_handshake_accept_plain() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/") as ws:
        handshake = await ws.connect()
        await ws.disconnect()
    assert handshake == Handshake(True)


@pytest.mark.parametrize(("where", "code"), [("/close/", 1000), ("/close-code/", 4403)])
@pytest.mark.parametrize("denial_extension", [True, False])
async def test_handshake_close_before_accept(where: str, code: int, denial_extension: bool) -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), where, denial_extension=denial_extension) as ws:
        handshake = await ws.connect()
        await ws.disconnect()
    assert handshake == Handshake(False, status=403, close_code=code)


async def test_handshake_denial_response() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/deny/") as ws:
        handshake = await ws.connect()
        await ws.disconnect()
    assert not handshake.accepted
    assert handshake.status == 401
    assert handshake.body == b"token expired"
    assert (b"www-authenticate", b"Bearer") in handshake.headers
    assert (b"content-length", b"13") in handshake.headers
    assert handshake.close_code is None


async def test_handshake_denial_without_the_extension_is_a_403_close() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/deny/", denial_extension=False) as ws:
        handshake = await ws.connect()
        await ws.disconnect()
    assert handshake == Handshake(False, status=403, close_code=1000)


async def test_handshake_deny_connection_is_a_403_denial() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/raise/") as ws:
        handshake = await ws.connect()
        await ws.disconnect()
    assert (handshake.accepted, handshake.status) == (False, 403)


async def test_handshake_failure_is_a_500_denial() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/bad-subprotocol/", subprotocols=["chat"]) as ws:
        handshake = await ws.connect()
        await ws.wait()
    assert (handshake.accepted, handshake.status, handshake.body) == (False, 500, b"Internal Server Error")


async def test_connect_refuses_an_unexpected_first_message() -> None:
    async with WebsocketCommunicator(odd_handshake, "/ws/") as ws:
        with pytest.raises(AssertionError, match=r"expected websocket\.accept, websocket\.close or a denial"):
            await ws.connect()


async def test_connect_times_out() -> None:
    async with WebsocketCommunicator(silent, "/ws/") as ws:
        with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
            await ws.connect(timeout=0.05)


# -- WebSocket messages ------------------------------------------------------------------------------


async def test_send_and_receive_text_bytes_and_json() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="hi")
        assert await ws.receive_from() == "hi"
        await ws.send_to(bytes_data=b"\x00\xff")
        assert await ws.receive_from() == b"\x00\xff"
        await ws.send_json_to({"a": [1, 2]})
        assert await ws.receive_json_from() == {"a": [1, 2]}
        await ws.send_to(bytes_data=b"{}")
        with pytest.raises(AssertionError, match="expected a JSON text message, got 2 bytes"):
            await ws.receive_json_from()
        await ws.send_to(text_data="close")
        with pytest.raises(AssertionError, match=r"expected a websocket\.send message"):
            await ws.receive_from()
        await ws.disconnect()


async def test_receive_close() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="close")
        assert await ws.receive_close() == Close(4000, "bye")
        await ws.disconnect(code=4000)


async def test_receive_close_refuses_other_messages() -> None:
    async with WebsocketCommunicator(Doorman.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data="not a close")
        with pytest.raises(AssertionError, match=r"expected websocket\.close"):
            await ws.receive_close()
        await ws.disconnect()


@pytest.mark.parametrize("data", [{}, {"text_data": "a", "bytes_data": b"b"}])
async def test_send_to_takes_exactly_one_kind_of_data(data: dict[str, Any]) -> None:
    async with WebsocketCommunicator(silent, "/ws/") as ws:
        with pytest.raises(ValueError, match="exactly one of text_data and bytes_data"):
            await ws.send_to(**data)


def test_websocket_scope() -> None:
    ws = WebsocketCommunicator(silent, "/ws/caf%C3%A9/?room=red", denial_extension=False)
    assert ws.scope["type"] == "websocket"
    assert ws.scope["path"] == "/ws/café/"
    assert ws.scope["raw_path"] == b"/ws/caf%C3%A9/"
    assert ws.scope["query_string"] == b"room=red"
    assert ws.scope["extensions"] == {}
    assert WebsocketCommunicator(silent, "/").scope["extensions"] == {"websocket.http.response": {}}


# -- HTTP ------------------------------------------------------------------------------------------------


async def teapot(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with 418 in two body parts, echoing the method, query and body."""
    request: Message = await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 418,
            "headers": [(b"content-type", b"text/plain"), (b"x-tea", b"green"), (b"X-Tea", b"black")],
        }
    )
    await send({"type": "http.response.body", "body": scope["method"].encode() + b" ", "more_body": True})
    await send({"type": "http.response.body", "body": scope["query_string"] + b" " + request["body"]})


async def test_http_communicator_collects_the_response() -> None:
    async with HttpCommunicator(teapot, "patch", "/pot?size=2", body=b"please") as http:
        response = await http.get_response()
        await http.wait()
    assert response.status == 418
    assert response.body == b"PATCH size=2 please"
    assert response.header("Content-Type") == "text/plain"
    assert response.header("X-TEA") == "green"  # the first of repeated headers
    assert response.header("missing") is None


def test_http_response_header_lookup() -> None:
    response = HttpResponse(200, [(b"Content-Length", b"3"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")], b"abc")
    assert response.header("content-length") == "3"
    assert response.header("Set-Cookie") == "a=1"
    assert response.header("etag") is None


async def test_http_communicator_refuses_a_non_http_answer() -> None:
    async with HttpCommunicator(chatty, "GET", "/") as http:
        with pytest.raises(AssertionError, match=r"expected http\.response\.start"):
            await http.get_response()
