"""TokenAuthMiddleware in process: where tokens are found, what verify decides, the answers."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from interlock.actors import Receive, Scope, Send, WebsocketActor
from interlock.actors.security import TokenAuthMiddleware, TokenRejected
from interlock.actors.testing import HttpCommunicator, WebsocketCommunicator

USERS = {"t0ken": "alice", "s3cret": "bob"}
connects: list[dict[str, Any]] = []


class WhoAmI(WebsocketActor):
    async def connect(self) -> None:
        connects.append(
            {
                "user": self.scope["user"],
                "subprotocols": self.scope.get("subprotocols"),
                "query": self.scope.get("query_string"),
            }
        )
        if "chat.v1" in (self.scope.get("subprotocols") or []):
            await self.accept("chat.v1")
        else:
            await self.accept()
        await self.send(text_data=f"hello {self.scope['user']}")


def verify(token: str) -> str | None:
    assert threading.current_thread() is not threading.main_thread()  # sync verify runs in a thread
    return USERS.get(token)


async def averify(token: str) -> str | None:
    if token == "banned":
        raise TokenRejected("this account is suspended", status=403)
    return USERS.get(token)


@pytest.fixture(autouse=True)
def _clear() -> None:
    connects.clear()


async def attempt(app: Any, path: str = "/ws/", headers: Any = (), subprotocols: Any = (), denial: bool = True) -> Any:
    async with WebsocketCommunicator(
        app, path, headers=list(headers), subprotocols=subprotocols, denial_extension=denial
    ) as ws:
        result = await ws.connect()
        if result.accepted:
            greeting = await ws.receive_from()
            await ws.disconnect()
            return result, greeting
        return result, None


@pytest.mark.parametrize("check", [verify, averify], ids=["def", "async def"])
async def test_bearer_header(check: Any) -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), check)
    result, greeting = await attempt(app, headers=[("Authorization", "Bearer t0ken")])
    assert result.accepted
    assert greeting == "hello alice"
    result, _ = await attempt(app, headers=[("Authorization", "bearer   s3cret ")])
    assert result.accepted


async def test_missing_token_is_401_before_connect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "interlock.actors.security")
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify, query_param="token")
    result, _ = await attempt(app)
    assert (result.accepted, result.status) == (False, 401)
    assert result.body == b"no token: expected 'Authorization: Bearer <token>' or '?token=<token>'"
    assert (b"www-authenticate", b"Bearer") in result.headers
    assert connects == []
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "refused websocket /ws/ from 127.0.0.1:50000: 401 no token" in record.getMessage()


async def test_invalid_token_is_401_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify)
    result, _ = await attempt(app, headers=[("Authorization", "Bearer wrong-secret")])
    assert (result.status, result.body) == (401, b"invalid token (from the header)")
    assert "wrong-secret" not in caplog.text
    assert connects == []


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ("Basic dXNlcjpwYXNz", b"the Authorization header is not 'Bearer <token>'"),
        ("Bearer", b"the Authorization header is not 'Bearer <token>'"),
        ("Bearer   ", b"the Authorization header is not 'Bearer <token>'"),
        ("t0ken", b"the Authorization header is not 'Bearer <token>'"),
    ],
)
async def test_malformed_header_is_401(value: str, body: bytes) -> None:
    result, _ = await attempt(TokenAuthMiddleware(WhoAmI.as_asgi(), verify), headers=[("Authorization", value)])
    assert (result.status, result.body) == (401, body)


async def test_two_headers_are_401() -> None:
    headers = [("Authorization", "Bearer t0ken"), ("Authorization", "Bearer s3cret")]
    result, _ = await attempt(TokenAuthMiddleware(WhoAmI.as_asgi(), verify), headers=headers)
    assert (result.status, result.body) == (401, b"2 Authorization headers (expected one)")


async def test_raw_header_without_scheme() -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify, header="X-API-Key", header_scheme=None)
    result, greeting = await attempt(app, headers=[("X-API-Key", "s3cret")])
    assert greeting == "hello bob"
    result, _ = await attempt(app, headers=[("X-API-Key", " ")])
    assert (result.status, result.body) == (401, b"the X-Api-Key header is empty")


async def test_rejected_with_403() -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), averify)
    result, _ = await attempt(app, headers=[("Authorization", "Bearer banned")])
    assert (result.status, result.body) == (403, b"this account is suspended")
    assert not any(name == b"www-authenticate" for name, _ in result.headers)


async def test_query_parameter_is_removed_from_the_app_scope() -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify, header=None, query_param="token")
    result, greeting = await attempt(app, "/ws/?room=lobby&token=t0ken&x=%C3%A9")
    assert greeting == "hello alice"
    assert connects[0]["query"] == b"room=lobby&x=%C3%A9"
    for query in ["token=", "token=t0ken&token=s3cret"]:
        result, _ = await attempt(app, f"/ws/?{query}")
        assert (result.status, result.body) == (401, b"expected one non-empty 'token' query parameter")


async def test_subprotocol_token_is_hidden_and_the_marker_echoed() -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify, header=None, subprotocol="bearer")
    result, greeting = await attempt(app, subprotocols=["bearer", "t0ken"])
    assert greeting == "hello alice"
    assert result.subprotocol == "bearer"  # accept() chose none: the marker, never the token
    assert connects[-1]["subprotocols"] == ["bearer"]
    result, _ = await attempt(app, subprotocols=["chat.v1", "bearer", "s3cret"])
    assert result.subprotocol == "chat.v1"  # the app's own choice stands
    assert connects[-1]["subprotocols"] == ["chat.v1", "bearer"]


async def test_subprotocol_marker_without_token() -> None:
    app = TokenAuthMiddleware(WhoAmI.as_asgi(), verify, header=None, subprotocol="bearer")
    result, _ = await attempt(app, subprotocols=["chat.v1", "bearer"])
    assert (result.status, result.body) == (401, b"subprotocol 'bearer' must be followed by the token")
    result, _ = await attempt(app, subprotocols=["chat.v1"])
    assert (result.status, result.body) == (401, b"no token: expected subprotocols ['bearer', <token>]")


async def test_without_the_denial_extension_a_refusal_is_a_close() -> None:
    result, _ = await attempt(TokenAuthMiddleware(WhoAmI.as_asgi(), verify), denial=False)
    assert (result.accepted, result.status, result.close_code) == (False, 403, 1000)


async def test_a_failing_verify_is_a_500_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def broken(token: str) -> str:
        raise ConnectionError("user database unreachable")

    result, _ = await attempt(TokenAuthMiddleware(WhoAmI.as_asgi(), broken), headers=[("Authorization", "Bearer x")])
    assert (result.status, result.body) == (500, b"Internal Server Error")
    [record] = [r for r in caplog.records if r.name == "interlock.actors.security"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "verify" in record.getMessage()
    assert "from the header" in record.getMessage()


async def test_http_and_a_custom_scope_key() -> None:
    seen: list[Any] = []

    async def view(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["account"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = TokenAuthMiddleware(view, averify, scope_key="account")
    async with HttpCommunicator(app, "GET", "/", headers=[("Authorization", "Bearer t0ken")]) as http:
        assert (await http.get_response()).status == 204
    async with HttpCommunicator(app, "GET", "/") as http:
        response = await http.get_response()
    assert response.status == 401
    assert response.header("www-authenticate") == "Bearer"
    assert seen == ["alice"]


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def never() -> dict[str, Any]:
        raise AssertionError

    async def discard(message: Any) -> None:
        raise AssertionError

    await TokenAuthMiddleware(inner, verify)({"type": "lifespan"}, never, discard)
    assert seen == ["lifespan"]


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match="looks nowhere for a token"):
        TokenAuthMiddleware(WhoAmI.as_asgi(), verify, header=None)
    with pytest.raises(TypeError, match="verify must be a function"):
        TokenAuthMiddleware(WhoAmI.as_asgi(), "secret")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refused with 401 or 403"):
        TokenRejected("x", status=500)
