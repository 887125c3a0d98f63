"""The broadcast apps compared by ``bench/scale.py``, as uvicorn factories.

Every app serves WebSockets on any path; every connection is a member of one group, and a
text frame a client sends is broadcast, unchanged, to every connection (the sender too):

* ``make_raw``: plain ASGI, connections in a set, ``send`` to each in a loop (the limit);
* ``make_memory``: an interlock ``WebsocketActor`` in the group ``all`` on an
  ``InMemoryChannelLayer``; a frame becomes one ``group_send``;
* ``make_sqlite``: the same actor on a ``SQLiteChannelLayer`` in the file ``SCALE_DB``;
* ``make_channels``: a Channels ``AsyncWebsocketConsumer`` on Channels' ``InMemoryChannelLayer``.

The layers get a capacity of 1,000 messages per channel and a day's expiry, so a burst
measures delivery, not what a layer drops.
"""

# Imports live inside the factories: an app whose packages are missing fails alone.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

GROUP = "all"
CAPACITY = 1000


def make_raw() -> Any:
    """uvicorn factory: the raw ASGI broadcast."""
    members: set[Send] = set()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                for member in list(members):
                    try:
                        await member({"type": "websocket.send", "text": text})
                    except Exception:  # a member that left meanwhile
                        members.discard(member)
            elif kind == "websocket.connect":
                await send({"type": "websocket.accept"})
                members.add(send)
            elif kind == "websocket.disconnect":
                members.discard(send)
                return

    return app


def _interlock(layer: Any) -> Any:
    from interlock.actors import WebsocketActor, handler

    class Broadcast(WebsocketActor):
        groups = (GROUP,)

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.channel_layer.group_send(GROUP, {"type": "bcast", "text": text_data})

        @handler
        async def bcast(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return Broadcast.as_asgi(channel_layer=layer)


def make_memory() -> Any:
    """uvicorn factory: the interlock actor on the in-memory layer."""
    from interlock.layers import InMemoryChannelLayer

    return _interlock(InMemoryChannelLayer(capacity=CAPACITY, expiry=86400.0))


def make_sqlite() -> Any:
    """uvicorn factory: the interlock actor on the SQLite layer in ``SCALE_DB``."""
    from interlock.layers import SQLiteChannelLayer

    return _interlock(SQLiteChannelLayer(os.environ["SCALE_DB"], capacity=CAPACITY, expiry=86400.0))


def make_channels() -> Any:
    """uvicorn factory: a Channels consumer on Channels' in-memory layer."""
    from echo_apps import configure_django

    configure_django(
        CHANNEL_LAYERS={
            "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": CAPACITY}}
        }
    )
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter

    class BroadcastConsumer(AsyncWebsocketConsumer):  # type: ignore[misc,unused-ignore]
        groups = [GROUP]  # noqa: RUF012 - Channels' own attribute

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.channel_layer.group_send(GROUP, {"type": "bcast", "text": text_data})

        async def bcast(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return ProtocolTypeRouter({"websocket": BroadcastConsumer.as_asgi()})
