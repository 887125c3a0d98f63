"""Token authentication for apps without Django: find a token, verify it, or refuse.

:class:`TokenAuthMiddleware` looks for a token where clients usually put one, in this
order, among the places it is told to look:

1. a header, by default ``Authorization: Bearer <token>`` (HTTP clients, non-browser
   WebSocket clients: a browser's ``WebSocket`` cannot set headers);
2. a query-string parameter, ``?token=<token>`` (browsers can; the token then shows
   in servers' and proxies' access logs);
3. the ``Sec-WebSocket-Protocol`` header: ``new WebSocket(url, ["bearer", token])``
   offers a marker subprotocol followed by the token. The app sees the offer without
   the token, and an ``accept()`` that picks no subprotocol answers with the marker,
   as browsers require (a browser fails a handshake that offered subprotocols and got
   none back); the token itself is never echoed.

The user's ``verify(token)`` (``def`` — run in a worker thread — or ``async def``)
returns the user, which goes into ``scope["user"]`` (or ``scope_key``), or None to
refuse; it may raise :class:`TokenRejected` to choose the status (403 for a valid token
without the right). Refusals come before the app runs, so ``connect()`` never sees an
unauthenticated scope: 401 with ``WWW-Authenticate: Bearer`` (a WebSocket gets the
denial response where the server takes one, else a close before accept, which servers
answer with 403), logged at INFO without the token or a traceback. A ``verify`` that
fails is a server fault: 500 and an ERROR with its traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import attrs

from ._asgi import DENIAL_EXTENSION, supports_denial
from ._refusal import refuse
from ._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TokenAuthMiddleware", "TokenRejected", "Verify"]

logger = logging.getLogger("interlock.actors.security")

Verify = Callable[[str], Any] | Callable[[str], Awaitable[Any]]
"""``verify(token) -> user | None``, sync or async."""


class TokenRejected(Exception):
    """Raise from ``verify`` to refuse with *status* (401 or 403) and *reason* for the client."""

    def __init__(self, reason: str = "invalid token", status: int = 401) -> None:
        if status not in (401, 403):
            msg = f"TokenRejected(status={status!r}): a token is refused with 401 or 403"
            raise ValueError(msg)
        self.reason = reason
        self.status = status
        super().__init__(reason)


@attrs.frozen
class _Found:
    token: str
    source: str
    scope_changes: dict[str, Any]


class _NoToken(Exception):
    """The request carries no usable token; the message says what was expected."""


def _is_async(fn: object) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004 - an async __call__ is what we look for


class TokenAuthMiddleware:
    """ASGI middleware: let *app* serve only requests whose token ``verify`` accepts.

    ``header`` (default ``"authorization"``, None to skip) is read as
    ``<header_scheme> <token>`` (default ``Bearer``; ``header_scheme=None`` takes the
    whole value, as for ``X-API-Key``); ``query_param`` (e.g. ``"token"``) and
    ``subprotocol`` (a marker such as ``"bearer"``) are off unless named. The user
    ``verify`` returns goes into ``scope[scope_key]``. ``lifespan`` and other scopes
    pass through unchecked.
    """

    def __init__(
        self,
        app: ASGIApp,
        verify: Verify,
        *,
        header: str | None = "authorization",
        header_scheme: str | None = "Bearer",
        query_param: str | None = None,
        subprotocol: str | None = None,
        scope_key: str = "user",
    ) -> None:
        if not callable(verify):
            msg = f"verify must be a function taking the token and returning the user, not {verify!r}"
            raise TypeError(msg)
        if header is None and query_param is None and subprotocol is None:
            msg = "TokenAuthMiddleware looks nowhere for a token: pass header=, query_param= or subprotocol="
            raise ValueError(msg)
        self.app = app
        self.verify = verify
        self.header = header.lower().encode("latin-1") if header is not None else None
        self.header_scheme = header_scheme
        self.query_param = query_param
        self.subprotocol = subprotocol
        self.scope_key = scope_key
        self._async = _is_async(verify)

    def __repr__(self) -> str:
        return f"TokenAuthMiddleware({self.app!r}, {self.verify!r}, looks in {self._places()})"

    def _places(self) -> str:
        places = []
        if self.header is not None:
            name = self.header.decode("latin-1").title()
            places.append(f"'{name}: {self.header_scheme} <token>'" if self.header_scheme else f"'{name}: <token>'")
        if self.query_param is not None:
            places.append(f"'?{self.query_param}=<token>'")
        if self.subprotocol is not None:
            places.append(f"subprotocols [{self.subprotocol!r}, <token>]")
        return " or ".join(places)

    def find_token(self, scope: Scope) -> _Found:
        """The token *scope* carries, and the scope changes that hide it from the app.

        Raises :class:`_NoToken` naming what was wrong or where a token was expected.
        """
        if self.header is not None:
            values = [v for k, v in scope.get("headers") or () if k.lower() == self.header]
            if values:
                return _Found(self._from_header(values), "header", {})
        if self.query_param is not None:
            query = bytes(scope.get("query_string") or b"").decode("latin-1")
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            tokens = [value for key, value in pairs if key == self.query_param]
            if tokens:
                if len(tokens) > 1 or not tokens[0]:
                    raise _NoToken(f"expected one non-empty '{self.query_param}' query parameter")
                rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k != self.query_param])
                return _Found(tokens[0], "query", {"query_string": rest.encode("latin-1")})
        if self.subprotocol is not None and scope["type"] == "websocket":
            offered = [str(p) for p in scope.get("subprotocols") or ()]
            if self.subprotocol in offered:
                at = offered.index(self.subprotocol)
                if at + 1 >= len(offered):
                    raise _NoToken(f"subprotocol {self.subprotocol!r} must be followed by the token")
                kept = offered[: at + 1] + offered[at + 2 :]
                return _Found(offered[at + 1], "subprotocol", {"subprotocols": kept})
        raise _NoToken(f"no token: expected {self._places()}")

    def _from_header(self, values: list[bytes]) -> str:
        name = (self.header or b"").decode("latin-1").title()
        if len(values) > 1:
            raise _NoToken(f"{len(values)} {name} headers (expected one)")
        value = values[0].decode("latin-1").strip()
        if self.header_scheme is None:
            if not value:
                raise _NoToken(f"the {name} header is empty")
            return value
        scheme, _, token = value.partition(" ")
        if scheme.lower() != self.header_scheme.lower() or not token.strip():
            raise _NoToken(f"the {name} header is not '{self.header_scheme} <token>'")
        return token.strip()

    async def _verify(self, token: str) -> Any:
        if self._async:
            return await self.verify(token)
        return await anyio.to_thread.run_sync(self.verify, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        try:
            found = self.find_token(scope)
        except _NoToken as exc:
            return await self._refuse(scope, receive, send, 401, str(exc))
        try:
            user = await self._verify(found.token)
        except TokenRejected as exc:
            return await self._refuse(scope, receive, send, exc.status, exc.reason)
        except Exception:
            logger.exception(
                "TokenAuthMiddleware: verify %r failed on the token from the %s; answered 500 to %s %s",
                self.verify,
                found.source,
                scope["type"],
                scope.get("path", ""),
            )
            await refuse(scope, receive, send, 500, "Internal Server Error")
            return None
        if user is None:
            return await self._refuse(scope, receive, send, 401, f"invalid token (from the {found.source})")
        inner = {**scope, **found.scope_changes, self.scope_key: user}
        if found.source != "subprotocol":
            return await self.app(inner, receive, send)
        if not supports_denial(scope, send):
            # The wrapped send hides the server's own: say what its denial support is.
            inner["extensions"] = {k: v for k, v in (scope.get("extensions") or {}).items() if k != DENIAL_EXTENSION}
        return await self.app(inner, receive, functools.partial(_echo_marker, send, self.subprotocol))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, reason: str) -> None:
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "unknown client"
        logger.info("refused %s %s from %s: %d %s", scope["type"], scope.get("path", ""), peer, status, reason)
        headers = [("www-authenticate", "Bearer")] if status == 401 else None
        await refuse(scope, receive, send, status, reason, headers=headers)


async def _echo_marker(send: Send, marker: str | None, message: Message) -> None:
    """Answer the client's ``[marker, token]`` offer with the marker, never the token."""
    if message["type"] == "websocket.accept" and message.get("subprotocol") is None:
        message = {**message, "subprotocol": marker}
    await send(message)
