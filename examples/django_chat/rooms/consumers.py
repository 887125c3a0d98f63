"""The chat actor: logged-in users only; each message goes to the room and to the archive worker."""

from typing import Any

from interlock.actors import JsonWebsocketActor, handler

from rooms.models import MAX_ROOM_NAME
from rooms.workers import ARCHIVE_CHANNEL

MAX_MESSAGE = 1000  # characters


class ChatConsumer(JsonWebsocketActor):
    """Channels' tutorial consumer, on interlock, with Django's user in ``self.scope["user"]``."""

    handshake_timeout = 10.0
    idle_timeout = 300.0

    room_group_name: str
    username: str

    async def connect(self) -> None:
        """Refuse anonymous users (403) and overlong room names (400); join the room's group and accept."""
        user = self.scope["user"]  # resolved by AuthMiddlewareStack, off the event loop
        if not user.is_authenticated:
            await self.deny(403, "log in first")
            return
        self.username = user.get_username()
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        if len(self.room_name) > MAX_ROOM_NAME:  # the client's mistake: refused, not a server error
            await self.deny(400, f"room names have at most {MAX_ROOM_NAME} characters")
            return
        self.room_group_name = f"chat_{self.room_name}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def receive_json(self, content: Any) -> None:
        """``{"message": text}``: to everyone in the room, and to the archive."""
        message = content.get("message") if isinstance(content, dict) else None
        if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE:
            await self.close(4400, f'send {{"message": text}} with 1 to {MAX_MESSAGE} characters')
            return
        event = {"type": "chat.message", "message": message, "user": self.username}
        await self.channel_layer.group_send(self.room_group_name, event)
        await self.channel_layer.send(
            ARCHIVE_CHANNEL,
            {"type": "archive.message", "room": self.room_name, "user_id": self.scope["user"].pk, "text": message},
        )

    @handler
    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message said in the room (type ``chat.message``)."""
        await self.send_json({"message": event["message"], "user": event["user"]})
