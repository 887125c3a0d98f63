"""Origin checks in process: the pattern grammar, the rules for odd headers, the answers.

End-to-end runs with real servers and a browser are in test_origin_e2e.py; Django's
ALLOWED_HOSTS (a settings module per process) in test_allowed_hosts.py.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from interlock.actors import ASGIApp, Receive, Scope, Send, WebsocketActor
from interlock.actors.security import (
    Origin,
    OriginPattern,
    OriginValidator,
    SameOriginValidator,
    parse_origin,
)
from interlock.actors.testing import HttpCommunicator, WebsocketCommunicator


class Hello(WebsocketActor):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data="hello")


async def hello_http(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def handshake(app: ASGIApp, *headers: tuple[str, str], denial: bool = True) -> tuple[bool, int | None, bytes]:
    async with WebsocketCommunicator(app, "/ws/", headers=list(headers), denial_extension=denial) as ws:
        result = await ws.connect()
        if result.accepted:
            assert await ws.receive_from() == "hello"
            await ws.disconnect()
        return result.accepted, result.status, result.body


# -- the grammar -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        ("https://example.com", "https://example.com", True),
        ("https://example.com", "https://example.com:443", True),
        ("https://example.com", "https://example.com:8443", False),
        ("https://example.com", "http://example.com", False),
        ("https://example.com", "https://www.example.com", False),
        ("HTTPS://Example.COM", "https://example.com", True),
        ("https://example.com:8443", "https://example.com:8443", True),
        ("https://example.com:*", "https://example.com:8443", True),
        ("example.com", "http://example.com:8000", True),
        ("example.com", "https://example.com", True),
        ("example.com", "https://example.com.evil.example", False),
        ("example.com:8000", "http://example.com:8000", True),
        ("example.com:8000", "http://example.com:8001", False),
        ("example.com:80", "http://example.com", True),
        ("*.example.com", "https://chat.example.com", True),
        ("*.example.com", "https://a.b.example.com", True),
        ("*.example.com", "https://example.com", False),
        ("*.example.com", "https://evilexample.com", False),
        (".example.com", "https://example.com", True),
        (".example.com", "https://chat.example.com", True),
        (".example.com", "https://evilexample.com", False),
        ("https://*.example.com", "http://chat.example.com", False),
        ("http://*", "http://anything.test", True),
        ("http://*", "http://anything.test:8000", False),
        ("http://*:*", "http://anything.test:8000", True),
        ("*:8000", "http://anything.test:8000", True),
        ("127.0.0.1", "http://127.0.0.1:5000", True),
        ("[::1]", "http://[::1]:5000", True),
        ("http://[::1]:5000", "http://[::1]:5000", True),
        ("localhost", "http://localhost.:8000", True),
    ],
)
def test_pattern_grammar(pattern: str, origin: str, allowed: bool) -> None:
    parsed = parse_origin(origin)
    assert parsed is not None
    assert OriginPattern.parse(pattern).matches(parsed) is allowed


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("https://example.com/", "an origin has no path: write 'https://example.com'"),
        ("https://example.com/chat/", "an origin has no path: write 'https://example.com'"),
        ("example.com/", "an origin has no path: write 'example.com'"),
        ("exa mple.com", "expected [scheme://]host[:port]"),
        ("https://", "expected [scheme://]host[:port]"),
        ("https://example.com:99999", "port 99999 is over 65535"),
        ("https://ex*ample.com", "expected [scheme://]host[:port]"),
        ("https://user@example.com", "expected [scheme://]host[:port]"),
        ("bücher.example", "expected [scheme://]host[:port]"),
    ],
)
def test_bad_patterns_are_named(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="is not an origin pattern") as caught:
        OriginPattern.parse(pattern)
    assert repr(pattern) in str(caught.value)
    assert message in str(caught.value)


def test_construction_errors() -> None:
    with pytest.raises(ValueError, match=r"allows no origin at all: pass allowed_origins .* or same_origin=True"):
        OriginValidator(Hello.as_asgi())
    with pytest.raises(TypeError, match=re.escape("must be a list of patterns, not the str 'https://a.test'")):
        OriginValidator(Hello.as_asgi(), "https://a.test")
    with pytest.raises(TypeError, match="must be a str, not int"):
        OriginValidator(Hello.as_asgi(), [80])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "value",
    [
        "example.com",
        "https://example.com/",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com:99999",
        "https://exa mple.com",
        "https://",
        "https://bücher.example",
        "",
        "null",
    ],
)
def test_not_origins(value: str) -> None:
    assert parse_origin(value) is None


def test_origin_is_normalised() -> None:
    assert parse_origin("HTTPS://Chat.Example.COM.:8443") == Origin("https", "chat.example.com", 8443)
    assert parse_origin("http://[::1]") == Origin("http", "[::1]", None)
    assert Origin("https", "a", None).effective_port == 443
    assert Origin("ftp", "a", None).effective_port is None


# -- the rules -------------------------------------------------------------------------

ALLOWED = ["https://chat.example.com"]


def validator(**kwargs: Any) -> OriginValidator:
    return OriginValidator(Hello.as_asgi(), kwargs.pop("allowed", ALLOWED), **kwargs)


async def test_allowed_origin_reaches_the_actor() -> None:
    assert await handshake(validator(), ("Origin", "https://chat.example.com")) == (True, None, b"")


async def test_foreign_origin_is_refused_with_403(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "interlock.actors.security")
    accepted, status, body = await handshake(validator(), ("Origin", "http://evil.example"), ("Host", "a.test"))
    assert (accepted, status) == (False, 403)
    assert body == b"Forbidden: Origin 'http://evil.example' is not allowed"
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    text = record.getMessage()
    assert "refused websocket /ws/ from 127.0.0.1:50000 (Host 'a.test')" in text
    assert "Origin 'http://evil.example' is not allowed; allowed: ['https://chat.example.com']" in text


async def test_refusal_without_the_denial_extension_is_a_close() -> None:
    accepted, status, body = await handshake(validator(), ("Origin", "http://evil.example"), denial=False)
    assert (accepted, status, body) == (False, 403, b"")


async def test_missing_origin_passes_by_default() -> None:
    assert (await handshake(validator()))[0] is True


async def test_missing_origin_refused_when_required() -> None:
    accepted, status, body = await handshake(validator(allow_missing=False))
    assert (accepted, status) == (False, 403)
    assert body == b"Forbidden: no Origin header (this app requires one)"


async def test_null_origin_is_refused_unless_listed() -> None:
    accepted, status, body = await handshake(validator(), ("Origin", "null"))
    assert (accepted, status, body) == (False, 403, b"Forbidden: Origin 'null' is not allowed")
    assert (await handshake(validator(allowed=[*ALLOWED, "null"]), ("Origin", "null")))[0] is True


@pytest.mark.parametrize(
    "value", ["chat.example.com", "https://chat.example.com/", "https://chat.example.com/x", "\xe9", "*"]
)
async def test_malformed_origin_is_refused(value: str) -> None:
    accepted, status, body = await handshake(validator(), ("Origin", value))
    assert (accepted, status) == (False, 403)
    assert body.startswith(b"Forbidden: malformed Origin ")


async def test_two_origin_headers_are_refused() -> None:
    accepted, status, body = await handshake(
        validator(), ("Origin", "https://chat.example.com"), ("Origin", "https://chat.example.com")
    )
    assert (accepted, status, body) == (False, 403, b"Forbidden: 2 Origin headers (expected one)")


async def test_star_turns_the_check_off() -> None:
    for value in ["http://evil.example", "null", "nonsense"]:
        assert (await handshake(validator(allowed=["*"], allow_missing=False), ("Origin", value)))[0] is True
    assert (await handshake(validator(allowed=["*"], allow_missing=False)))[0] is True


# -- same origin -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        ("http://localhost:8000", "localhost:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("https://example.com", "example.com", True),
        ("https://example.com", "example.com:443", True),
        ("http://example.com:80", "example.com", True),
        ("http://example.com", "example.com:80", True),
        ("https://example.com", "example.com:80", False),  # the origin's scheme decides the default
        ("http://127.0.0.1:8000", "localhost:8000", False),
        ("http://localhost:8001", "localhost:8000", False),
        ("http://evil.example", "example.com", False),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://localhost:8000", "localhost:bad", False),
        ("http://localhost:8000", "", False),
    ],
)
async def test_same_origin_compares_host_and_port(origin: str, host: str, allowed: bool) -> None:
    accepted, _, body = await handshake(SameOriginValidator(Hello.as_asgi()), ("Origin", origin), ("Host", host))
    assert accepted is allowed, body


async def test_same_origin_without_host_is_refused() -> None:
    result = await handshake(SameOriginValidator(Hello.as_asgi()), ("Origin", "http://localhost"))
    assert result == (False, 403, b"Forbidden: Origin 'http://localhost' is not allowed")


async def test_same_origin_with_extra_patterns() -> None:
    app = SameOriginValidator(Hello.as_asgi(), ["https://*.example.com"])
    assert (await handshake(app, ("Origin", "https://app.example.com"), ("Host", "api.example.com")))[0]
    assert (await handshake(app, ("Origin", "http://localhost:1"), ("Host", "localhost:1")))[0]
    assert not (await handshake(app, ("Origin", "http://localhost:2"), ("Host", "localhost:1")))[0]
    assert "the request's own origin or ['https://*.example.com']" in repr(app)


# -- other scopes ----------------------------------------------------------------------


async def test_http_is_checked_too() -> None:
    app = OriginValidator(hello_http, ALLOWED)
    async with HttpCommunicator(app, "POST", "/", headers=[("Origin", "http://evil.example")]) as http:
        response = await http.get_response()
    assert response.status == 403
    assert response.body == b"Forbidden: Origin 'http://evil.example' is not allowed"
    assert response.header("content-type") == "text/plain; charset=utf-8"
    async with HttpCommunicator(app, "POST", "/", headers=[("Origin", "https://chat.example.com")]) as http:
        assert (await http.get_response()).body == b"ok"
    async with HttpCommunicator(app, "GET", "/") as http:  # a navigation carries no Origin
        assert (await http.get_response()).body == b"ok"


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    app = OriginValidator(inner, ALLOWED, allow_missing=False)
    for kind in ("lifespan", "channel"):
        await app({"type": kind, "headers": [(b"origin", b"http://evil.example")]}, _never, _discard)
    assert seen == ["lifespan", "channel"]


async def test_a_client_gone_before_the_handshake_gets_nothing() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1001}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [(b"origin", b"http://evil.example")]}
    await validator()(scope, receive, send)
    assert sent == []


async def _never() -> dict[str, Any]:
    raise AssertionError("not expected to receive")


async def _discard(message: Any) -> None:
    raise AssertionError(f"not expected to send {message!r}")
