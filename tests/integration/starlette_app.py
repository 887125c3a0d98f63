"""A Starlette app hosting interlock actors: served by ``test_starlette``.

* ``/rt/ws/echo/<name>/`` - a ``ProtocolTypeRouter(..., channel_layer=layer)`` mounted at
  ``/rt``; its ``URLRouter`` routes are written relative to the mount point.
* ``/outer/inner/ws/echo/<name>/`` - the same router under two nested mounts.
* ``/bare/ws/echo/<name>/`` - a bare ``URLRouter`` mounted at ``/bare``, its actor given
  the same layer with ``as_asgi(channel_layer=layer)`` (the docs' Starlette example).
* ``GET /api/status`` - Starlette's own route: ``{"lifespan": ..., "groups": {...}}``.
* ``POST /api/notify/{group}`` - ``group_send`` the body to a group as ``host.notify``.

The layer is entered in Starlette's lifespan (``async with layer:``); its exit writes
``LAYER_CLOSED`` to stderr so a test can see the shutdown happen.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from interlock.actors import ProtocolTypeRouter, URLRouter, path
from interlock.layers import InMemoryChannelLayer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tests.integration.host_actors import EchoActor

LAYER_CLOSED = "starlette lifespan: layer closed"

layer = InMemoryChannelLayer()
state = {"lifespan": "not run"}

interlock_app = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/echo/<str:name>/", EchoActor.as_asgi())])},
    channel_layer=layer,
)
bare_router = URLRouter([path("ws/echo/<str:name>/", EchoActor.as_asgi(channel_layer=layer))])


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with layer:
        state["lifespan"] = "started"
        yield
    sys.stderr.write(LAYER_CLOSED + "\n")
    sys.stderr.flush()


async def status(request: Request) -> JSONResponse:
    return JSONResponse({"lifespan": state["lifespan"], "groups": await layer.groups()})


async def notify(request: Request) -> JSONResponse:
    group = request.path_params["group"]
    text = (await request.body()).decode()
    members = len(await layer.group_members(group))
    await layer.group_send(group, {"type": "host.notify", "text": text})
    return JSONResponse({"members": members})


app = Starlette(
    routes=[
        Route("/api/status", status),
        Route("/api/notify/{group}", notify, methods=["POST"]),
        Mount("/rt", app=interlock_app),
        Mount("/outer", routes=[Mount("/inner", app=interlock_app)]),
        Mount("/bare", app=bare_router),
    ],
    lifespan=lifespan,
)
