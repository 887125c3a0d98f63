"""The two room chats compared by ``bench/chat_fanout.py``, as uvicorn factories.

Both speak the protocol of ``examples/chat.py``: connect to ``/ws/chat/<room>/?name=N``,
send ``{"message": "..."}``, and every member of the room, the sender included,
receives ``{"room", "from", "message"}``.

* ``make_interlock``: the example itself (``examples/chat.py``), on a
  ``SQLiteChannelLayer`` in the file ``CHAT_BENCH_DB``;
* ``make_interlock_redis``: the example on a ``RedisChannelLayer`` on 127.0.0.1:6379
  under the key prefix ``CHAT_BENCH_PREFIX``;
* ``make_channels``: the same chat as a Django Channels ``AsyncJsonWebsocketConsumer``
  (the seed's chat consumer, async), on channels_redis' ``RedisChannelLayer`` on
  127.0.0.1:6379 under the key prefix ``CHAT_BENCH_PREFIX``.

Both layers get a capacity of ``CHAT_BENCH_CAPACITY`` messages per channel, so that a
burst measures throughput, not what each layer drops when a member falls behind.
"""

# Imports live inside the factories: a stack whose packages are missing fails alone.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _capacity() -> int:
    return int(os.environ.get("CHAT_BENCH_CAPACITY", "100000"))


def make_interlock() -> Any:
    """uvicorn factory: ``examples/chat.py`` on the SQLite layer in ``CHAT_BENCH_DB``."""
    from interlock.layers import SQLiteChannelLayer

    sys.path.insert(0, str(EXAMPLES))
    import chat

    return chat.make_app(SQLiteChannelLayer(os.environ["CHAT_BENCH_DB"], capacity=_capacity()))


def make_interlock_redis() -> Any:
    """uvicorn factory: ``examples/chat.py`` on the Redis layer, keys under ``CHAT_BENCH_PREFIX``."""
    from interlock.layers import RedisChannelLayer

    sys.path.insert(0, str(EXAMPLES))
    import chat

    layer = RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=os.environ["CHAT_BENCH_PREFIX"], capacity=_capacity())
    return chat.make_app(layer)


def make_channels() -> Any:
    """uvicorn factory: the same chat on Django Channels and channels_redis."""
    from echo_apps import configure_django

    configure_django(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [("127.0.0.1", 6379)],
                    "prefix": os.environ["CHAT_BENCH_PREFIX"],
                    "capacity": _capacity(),
                },
            }
        }
    )
    from urllib.parse import parse_qs

    from channels.generic.websocket import AsyncJsonWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc,unused-ignore]
        async def connect(self) -> None:
            self.room = self.scope["url_route"]["kwargs"]["room"]
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            self.name = query.get("name", ["anonymous"])[0][:32]
            self.group = f"chat.{self.room}"
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            message = content.get("message") if isinstance(content, dict) else None
            if not isinstance(message, str) or not message.strip():
                await self.send_json({"error": 'send {"message": "some text"}'})
                return
            await self.channel_layer.group_send(
                self.group, {"type": "chat.message", "from": self.name, "message": message}
            )

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send_json({"room": self.room, "from": event["from"], "message": event["message"]})

    return ProtocolTypeRouter({"websocket": URLRouter([path("ws/chat/<str:room>/", ChatConsumer.as_asgi())])})
