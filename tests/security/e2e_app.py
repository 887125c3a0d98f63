"""The security middleware behind real servers: served by test_security_e2e.

* ``GET /`` - a blank page; the browser test runs its script from it, so the page's
  origin is the server's own (``http://127.0.0.1:PORT``).
* ``/ws/same/`` - :class:`Echo` behind ``SameOriginValidator``.
* ``/ws/listed/`` - :class:`Echo` behind ``OriginValidator`` allowing
  ``http://localhost:*`` and ``https://*.example.com``.
* ``/ws/token/`` - :class:`WhoAmI` behind ``TokenAuthMiddleware`` (header, ``?token=``
  or ``["bearer", token]`` subprotocols); tokens are :data:`USERS`.
"""

from __future__ import annotations

from interlock.actors import ProtocolTypeRouter, Receive, Scope, Send, URLRouter, WebsocketActor, path
from interlock.actors.security import OriginValidator, SameOriginValidator, TokenAuthMiddleware

USERS = {"t0ken": "alice", "s3cret": "bob"}
PAGE = b"<!doctype html><meta charset=utf-8><title>security e2e</title><p>blank"


class Echo(WebsocketActor):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"echo {text_data}")


class WhoAmI(WebsocketActor):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=f"hello {self.scope['user']}")


async def verify(token: str) -> str | None:
    return USERS.get(token)


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    found = scope["path"] == "/"
    body = PAGE if found else b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 200 if found else 404,
            "headers": [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = ProtocolTypeRouter(
    {
        "http": SameOriginValidator(page),
        "websocket": URLRouter(
            [
                path("ws/same/", SameOriginValidator(Echo.as_asgi())),
                path("ws/listed/", OriginValidator(Echo.as_asgi(), ["http://localhost:*", "https://*.example.com"])),
                path(
                    "ws/token/",
                    TokenAuthMiddleware(WhoAmI.as_asgi(), verify, query_param="token", subprotocol="bearer"),
                ),
            ]
        ),
    }
)
