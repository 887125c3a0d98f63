"""Actors that refuse their handshake, behind Starlette's session middleware (which wraps ``send``)."""

from __future__ import annotations

from interlock.actors import WebsocketActor
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import WebSocketRoute


class Refusing(WebsocketActor):
    """Refuses every handshake with 401 and a body."""

    async def connect(self) -> None:
        await self.deny(401, "who are you?")


class Failing(WebsocketActor):
    """Fails in ``connect()``: 500 for the handshake."""

    async def connect(self) -> None:
        raise RuntimeError("boom in connect")


app = Starlette(
    routes=[WebSocketRoute("/ws/deny", Refusing.as_asgi()), WebSocketRoute("/ws/fail", Failing.as_asgi())],
    middleware=[Middleware(SessionMiddleware, secret_key="not-a-secret")],
)
