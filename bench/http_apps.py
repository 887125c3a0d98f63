"""The apps of the HTTP benchmarks (``http_sse.py``, ``http_json.py``), one factory each.

SSE fan-out: ``GET /events`` opens a stream that says ``: ready`` once subscribed;
``POST /publish`` (body: the event's text) sends one event to every open stream.

* ``raw_sse`` - plain ASGI: a set of ``asyncio.Queue``, one per stream; publish puts to each.
* ``interlock_sse`` - an :class:`~interlock.actors.SseActor` in group ``bench`` on the
  in-memory layer; publish is one ``group_send`` of an ``sse.event``.
* ``starlette_sse`` - sse-starlette's ``EventSourceResponse`` fed by the same queue hub as raw.

JSON: ``GET /json`` answers ``{"hello": "world"}``.

* ``raw_json`` - plain ASGI; ``interlock_json`` - an :class:`~interlock.actors.HttpActor`
  calling ``send_json``; ``starlette_json`` - a Starlette route returning ``JSONResponse``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from interlock.actors import (
    ASGIApp,
    HttpActor,
    ProtocolTypeRouter,
    Receive,
    Scope,
    Send,
    SseActor,
    URLRouter,
    path,
    sse_message,
)
from interlock.layers import InMemoryChannelLayer

_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_JSON_BODY = json.dumps({"hello": "world"}).encode()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- SSE ---------------------------------------------------------------------------------------


def _hub_publish(hub: set[asyncio.Queue[bytes]], data: bytes) -> None:
    for queue in hub:
        queue.put_nowait(data)


def make_raw_sse() -> ASGIApp:
    hub: set[asyncio.Queue[bytes]] = set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["path"] == "/publish":
            _hub_publish(hub, await _read_body(receive))
            await _respond(send, 202, b"")
            return
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        hub.add(queue)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            await send({"type": "http.response.body", "body": b": ready\n\n", "more_body": True})
            while True:
                data = await queue.get()
                await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True})
        finally:
            hub.discard(queue)

    return app


class _Feed(SseActor):
    groups = ("bench",)

    async def handle(self, body: bytes) -> None:
        await self.start_stream()
        await self.send_comment("ready")


class _Publish(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.channel_layer.group_send("bench", sse_message(body.decode()))
        await self.send_response(202, b"")


def make_interlock_sse() -> ASGIApp:
    routes = URLRouter([path("events", _Feed.as_asgi()), path("publish", _Publish.as_asgi())])
    return ProtocolTypeRouter({"http": routes}, channel_layer=InMemoryChannelLayer(capacity=1000))


def make_starlette_sse() -> ASGIApp:
    from sse_starlette.sse import EventSourceResponse  # noqa: PLC0415 - the bench extra
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.requests import Request  # noqa: PLC0415
    from starlette.responses import Response  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    hub: set[asyncio.Queue[bytes]] = set()

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        hub.add(queue)

        async def stream() -> AsyncIterator[dict[str, Any]]:
            try:
                yield {"comment": "ready"}
                while True:
                    yield {"data": (await queue.get()).decode()}
            finally:
                hub.discard(queue)

        return EventSourceResponse(stream())

    async def publish(request: Request) -> Response:
        _hub_publish(hub, await request.body())
        return Response(status_code=202)

    app: ASGIApp = Starlette(routes=[Route("/events", events), Route("/publish", publish, methods=["POST"])])
    return app


# -- JSON ----------------------------------------------------------------------------------------


def make_raw_json() -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await _read_body(receive)
        await _respond(send, 200, _JSON_BODY, b"application/json")

    return app


class _Json(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_json({"hello": "world"})


def make_interlock_json() -> ASGIApp:
    return _Json.as_asgi()


def make_starlette_json() -> ASGIApp:
    from starlette.applications import Starlette  # noqa: PLC0415 - the bench extra
    from starlette.requests import Request  # noqa: PLC0415
    from starlette.responses import JSONResponse  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    app: ASGIApp = Starlette(routes=[Route("/json", hello)])
    return app
