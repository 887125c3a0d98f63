"""HTTP actors served by real servers in ``test_http_e2e`` (uvicorn; hypercorn on trio).

Routes (``<tag>`` makes a request's actor recognisable in ``/ended``):

* ``json`` - ``{"ok": true}``; ``upload`` - the body's length (``max_body_size`` 1 KiB).
* ``sse/<room>/<tag>`` - an :class:`SseActor` in group ``room.<room>`` (heartbeat 0.2 s):
  the first event says ``hello`` and the ``Last-Event-ID`` it got.
* ``poll/<room>/<tag>`` - a :class:`LongPollActor` in group ``room.<room>`` (1 s).
* ``statepoll/<room>/<tag>`` - the same long-poll as an :class:`HttpStateActor` (a state
  with a 1 s timeout); its exit hook records into ``ended`` under ``<tag>-exit``.
* ``publish/<room>`` - POSTed JSON ``{"data", "id"}`` goes to the room as an ``sse.event``.
* ``flood/<room>?n=N&size=S`` - N events of S bytes to the room (the slow-reader test).
* ``compat/sse/<room>/<tag>``, ``compat/poll/<room>/<tag>`` - Channels' SSE and long-poll
  consumers with only their imports changed.
* ``fail/before/<tag>``, ``fail/after/<tag>`` - a handler that raises before / after the
  headers went out.
* ``groups/<room>`` - how many streams are in the room's group.
* ``ended`` - ``{tag: [causes...]}``: the ``disconnect()`` calls seen so far.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from interlock.actors import (
    HttpActor,
    HttpStateActor,
    LongPollActor,
    Message,
    ProtocolTypeRouter,
    SseActor,
    URLRouter,
    handler,
    path,
    sse_message,
)
from interlock.actors.compat import AsyncHttpConsumer
from interlock.dsl import State, Timeout, on
from interlock.layers import InMemoryChannelLayer

ENDED: dict[str, list[str]] = defaultdict(list)


def _record(actor: HttpActor | HttpStateActor) -> None:
    tag = actor.scope["url_route"]["kwargs"].get("tag")
    if tag is not None and actor.ending is not None:
        ENDED[tag].append(actor.ending.cause)


class Json(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_json({"ok": True})


class Upload(HttpActor):
    max_body_size = 1024

    async def handle(self, body: bytes) -> None:
        await self.send_json({"size": len(body)})


class Room(SseActor):
    heartbeat = 0.2

    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(f"room.{room}", self.channel_name)
        await self.start_stream()
        await self.send_event({"hello": room, "last_event_id": self.last_event_id}, event="hello")

    async def disconnect(self) -> None:
        _record(self)


class Poll(LongPollActor):
    poll_timeout = 1.0

    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(f"room.{room}", self.channel_name)

    def poll_item(self, message: Message) -> Any:
        return message.get("data")

    async def disconnect(self) -> None:
        _record(self)


class StatePoll(HttpStateActor):
    """The long-poll as a state machine: a state with a timeout, left by the first message."""

    waiting = State(initial=True, timeout=1.0)

    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(f"room.{room}", self.channel_name)

    @on.message("sse.event", source=waiting)
    async def news(self, message: dict[str, Any]) -> None:
        await self.send_json({"messages": [message["data"]]})

    @on.timeout(waiting)
    async def quiet(self, event: Timeout) -> None:
        await self.send_response(204, b"")

    @waiting.exit
    async def stop_waiting(self) -> None:
        tag = self.scope["url_route"]["kwargs"]["tag"]
        ENDED[f"{tag}-exit"].append(self.ending.cause if self.ending else "transition")

    async def disconnect(self, code: int | None = None) -> None:
        _record(self)


class Publish(HttpActor):
    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        content = json.loads(body)
        await self.channel_layer.group_send(f"room.{room}", sse_message(content["data"], id=content.get("id")))
        await self.send_response(202, b"")


class Flood(HttpActor):
    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        query = dict(part.split("=") for part in self.scope["query_string"].decode().split("&") if part)
        data = "x" * int(query.get("size", "1024"))
        for n in range(int(query.get("n", "100"))):
            await self.channel_layer.group_send(f"room.{room}", sse_message(data, id=n))
        await self.send_response(202, b"")


class Groups(HttpActor):
    async def handle(self, body: bytes) -> None:
        group = f"room.{self.scope['url_route']['kwargs']['room']}"
        members = await self.channel_layer.group_members(group)  # type: ignore[attr-defined]
        await self.send_json(len(members))


class Ended(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_json(ENDED)


# -- Channels' consumers, imports changed (django/channels docs, "AsyncHttpConsumer") --------------


class ServerSentEventsConsumer(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(f"room.{room}", self.channel_name)
        await self.send_headers(
            headers=[
                (b"Cache-Control", b"no-cache"),
                (b"Content-Type", b"text/event-stream"),
                (b"Transfer-Encoding", b"chunked"),
            ]
        )
        await self.send_body(b"data: open\n\n", more_body=True)

    async def sse_event(self, event: dict[str, Any]) -> None:
        await self.send_body(f"data: {event['data']}\n\n".encode(), more_body=True)

    async def disconnect(self) -> None:
        _record(self)


class LongPollConsumer(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        room = self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(f"room.{room}", self.channel_name)
        await self.send_headers(headers=[(b"Content-Type", b"application/json")])
        # Headers are only sent after the first body event.
        # Set "more_body" to tell the interface server to not finish the response yet:
        await self.send_body(b"", more_body=True)

    async def sse_event(self, event: dict[str, Any]) -> None:
        # Send JSON and finish the response:
        await self.send_body(json.dumps(event).encode("utf-8"))

    async def disconnect(self) -> None:
        _record(self)


class Fails(HttpActor):
    async def handle(self, body: bytes) -> None:
        if self.scope["url_route"]["kwargs"]["when"] == "after":
            await self.send_headers(200, {"content-type": "text/plain"})
            await self.send_body(b"partial", more_body=True)
            await self.channel_layer.send(self.channel_name, {"type": "explode"})
            return
        raise RuntimeError("handler broke before the headers")

    @handler
    async def explode(self, message: dict[str, Any]) -> None:
        raise RuntimeError("handler broke after the headers")

    async def disconnect(self) -> None:
        _record(self)


routes = URLRouter(
    [
        path("json", Json.as_asgi()),
        path("upload", Upload.as_asgi()),
        path("sse/<str:room>/<str:tag>", Room.as_asgi()),
        path("poll/<str:room>/<str:tag>", Poll.as_asgi()),
        path("statepoll/<str:room>/<str:tag>", StatePoll.as_asgi()),
        path("publish/<str:room>", Publish.as_asgi()),
        path("flood/<str:room>", Flood.as_asgi()),
        path("compat/sse/<str:room>/<str:tag>", ServerSentEventsConsumer.as_asgi()),
        path("compat/poll/<str:room>/<str:tag>", LongPollConsumer.as_asgi()),
        path("fail/<str:when>/<str:tag>", Fails.as_asgi()),
        path("groups/<str:room>", Groups.as_asgi()),
        path("ended", Ended.as_asgi()),
    ]
)

app = ProtocolTypeRouter({"http": routes}, channel_layer=InMemoryChannelLayer())
