"""A FastAPI app hosting interlock actors: served by ``test_fastapi``.

* ``/rt/ws/echo/<name>/`` - ``app.mount("/rt", ProtocolTypeRouter(..., channel_layer=layer))``.
* ``/direct/{name}`` - :class:`DirectActor` routed by FastAPI's own router with
  ``app.router.add_websocket_route``: an ``ActorApp`` is a plain ASGI callable (an
  object, not a function), so Starlette's ``WebSocketRoute`` calls it as an ASGI app.
  The layer comes from ``as_asgi(channel_layer=layer)``; the name from ``path_params``.
  (The app object itself has no ``add_websocket_route`` in FastAPI 0.165 / Starlette
  1.10: the method is the router's.)
* ``/routed/{name}`` - the same through ``app.router.routes.append(WebSocketRoute(...))``,
  the actor wrapped in a ``ProtocolTypeRouter`` to put the layer in the scope.
* ``/api-route/{name}`` - the pitfall: ``app.add_api_websocket_route`` (like
  ``@app.websocket``) takes a dependency-injected endpoint, not an ASGI app; it reads
  the ``ActorApp``'s ``scope``/``receive``/``send`` parameters as required query
  parameters, fails to validate them and closes the handshake (HTTP 403), logging nothing.
* ``GET /api/status`` and ``POST /api/notify/{group}`` - FastAPI path operations using
  the layer; ``/api/native`` - a FastAPI WebSocket endpoint next to the actors.

The layer is entered in FastAPI's lifespan (``async with layer:``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request, WebSocket
from interlock.actors import ProtocolTypeRouter, URLRouter, path
from interlock.layers import InMemoryChannelLayer
from starlette.routing import WebSocketRoute

from tests.integration.host_actors import DirectActor, EchoActor

LAYER_CLOSED = "fastapi lifespan: layer closed"

layer = InMemoryChannelLayer()
state = {"lifespan": "not run"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with layer:
        state["lifespan"] = "started"
        yield
    sys.stderr.write(LAYER_CLOSED + "\n")
    sys.stderr.flush()


app = FastAPI(lifespan=lifespan)


@app.get("/api/status")
async def status() -> dict[str, Any]:
    return {"lifespan": state["lifespan"], "groups": await layer.groups()}


@app.post("/api/notify/{group}")
async def notify(group: str, request: Request) -> dict[str, int]:
    text = (await request.body()).decode()
    members = len(await layer.group_members(group))
    await layer.group_send(group, {"type": "host.notify", "text": text})
    return {"members": members}


@app.websocket("/api/native")
async def native(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"native": True, "groups": await layer.groups()})
    await websocket.close()


app.mount(
    "/rt",
    ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/echo/<str:name>/", EchoActor.as_asgi())])},
        channel_layer=layer,
    ),
)
# add_websocket_route is annotated for `async def endpoint(websocket)`; an ActorApp is an
# ASGI app, which Starlette's WebSocketRoute accepts too (it calls any non-function as ASGI).
app.router.add_websocket_route(
    "/direct/{name}", cast(Callable[[WebSocket], Awaitable[None]], DirectActor.as_asgi(channel_layer=layer))
)
app.add_api_websocket_route("/api-route/{name}", DirectActor.as_asgi(channel_layer=layer))
app.router.routes.append(
    WebSocketRoute("/routed/{name}", ProtocolTypeRouter({"websocket": DirectActor.as_asgi()}, channel_layer=layer))
)
