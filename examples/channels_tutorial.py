"""Channels' tutorial chat consumer (part 3, the async one), typed, on interlock.

Only the imports differ from Channels' tutorial; the annotations are what
``mypy --strict`` asks of any code, and nothing more: ``self.channel_layer`` is a
``GroupLayer`` and ``self.channel_name`` a ``str``, so no ``assert`` is needed.
Serve it with ``uvicorn channels_tutorial:application --app-dir examples`` and open
``ws://127.0.0.1:8000/ws/chat/lobby/`` from a page on the same server: a page from
another origin is refused (403) before the consumer runs.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.actors import ProtocolTypeRouter, URLRouter, re_path
from interlock.actors.compat import AsyncWebsocketConsumer
from interlock.actors.security import SameOriginValidator
from interlock.layers import InMemoryChannelLayer


class ChatConsumer(AsyncWebsocketConsumer):
    room_name: str
    room_group_name: str

    async def connect(self) -> None:
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"

        # Join room group
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)

        await self.accept()

    async def disconnect(self, close_code: int) -> None:
        # Leave room group
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # Receive message from WebSocket
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text_data_json = json.loads(text_data or "{}")
        message = text_data_json["message"]

        # Send message to room group
        await self.channel_layer.group_send(self.room_group_name, {"type": "chat.message", "message": message})

    # Receive message from room group
    async def chat_message(self, event: dict[str, Any]) -> None:
        message = event["message"]

        # Send message to WebSocket
        await self.send(text_data=json.dumps({"message": message}))


websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi()),
]

# Channels' tutorial wraps the router in AllowedHostsOriginValidator, which reads a
# Django project's ALLOWED_HOSTS (interlock.actors.security has it too); with no
# Django project here, the same place holds a check that the page's origin is the
# server's own.
application = ProtocolTypeRouter(
    {"websocket": SameOriginValidator(URLRouter(websocket_urlpatterns))},
    channel_layer=InMemoryChannelLayer(),
)
