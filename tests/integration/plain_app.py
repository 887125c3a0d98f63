"""A hand-written ASGI app that dispatches by path to interlock and to its own HTTP code.

* ``/ws/...`` WebSocket scopes go to an interlock ``ProtocolTypeRouter`` (with the layer);
  ``/actor/<name>`` goes straight to an ``ActorApp`` given the layer with ``as_asgi``.
* ``GET /health`` - ``{"ok": true, "groups": {...}}``, answered by this module.
* ``POST /notify/<group>`` - ``group_send`` the body to the group as ``host.notify``.
* anything else over HTTP - 404 from this module; other WebSocket paths - refused (403).
* ``lifespan`` - handled here: startup starts the layer, shutdown closes it and writes
  ``LAYER_CLOSED`` to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from interlock.actors import Message, ProtocolTypeRouter, Receive, Scope, Send, URLRouter, path
from interlock.layers import InMemoryChannelLayer

from tests.integration.host_actors import EchoActor

LAYER_CLOSED = "plain lifespan: layer closed"

layer = InMemoryChannelLayer()
interlock_app = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/echo/<str:name>/", EchoActor.as_asgi())])},
    channel_layer=layer,
)


class NamedActor(EchoActor):
    """:class:`EchoActor` whose name is the last path segment (no URLRouter on the way)."""

    def route_name(self) -> str:
        """The connection's name, from the path this app dispatched on."""
        return str(self.scope["path"]).rsplit("/", 1)[-1]


actor_app = NamedActor.as_asgi(channel_layer=layer)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Dispatch a scope by type and path."""
    kind = scope["type"]
    route = str(scope.get("path", ""))
    if kind == "lifespan":
        await lifespan(receive, send)
    elif kind == "websocket" and route.startswith("/ws/"):
        await interlock_app(scope, receive, send)
    elif kind == "websocket" and route.startswith("/actor/"):
        await actor_app(scope, receive, send)
    elif kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1000})
    elif kind == "http":
        await http(scope, receive, send)


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await layer.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await layer.close()
            sys.stderr.write(LAYER_CLOSED + "\n")
            sys.stderr.flush()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return body
        body += bytes(message.get("body", b""))
        if not message.get("more_body", False):
            return body


async def respond(send: Send, status: int, content: Any) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    route = str(scope["path"])
    method = scope["method"]
    body = await read_body(receive)
    if method == "GET" and route == "/health":
        await respond(send, 200, {"ok": True, "groups": await layer.groups()})
    elif method == "POST" and route.startswith("/notify/"):
        group = route.removeprefix("/notify/")
        members = len(await layer.group_members(group))
        await layer.group_send(group, {"type": "host.notify", "text": body.decode()})
        await respond(send, 200, {"members": members})
    else:
        await respond(send, 404, {"error": f"no route for {method} {route}"})
