"""The generic actor: every event goes to the handler its ``type`` names.

This is the shape of Channels' ``AsyncConsumer``/``SyncConsumer`` and of background
workers served by :class:`~interlock.actors.ChannelNameRouter`: ``websocket.connect``
calls ``websocket_connect``, a layer message ``thumbnail.make`` calls
``thumbnail_make``, and ``send()`` takes raw ASGI messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import BaseActor, Flush, library_class
from ._types import Message

__all__ = ["Actor"]


@library_class
class Actor(BaseActor):
    """An actor that dispatches every event by type and sends raw ASGI messages.

    The actor stops after handling ``websocket.disconnect`` or ``http.disconnect``, or
    when a handler raises :class:`~interlock.actors.StopActor`.
    """

    def send(self, message: Mapping[str, Any]) -> Flush:
        """Send a raw ASGI message (``{"type": "websocket.accept"}`` …) to the server."""
        if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
            msg = f"send() takes an ASGI message: a mapping with a str 'type', not {message!r}"
            raise TypeError(msg)
        return self._emit(dict(message))

    async def _started(self) -> None:
        await self._join_groups()

    async def _on_client_event(self, message: Message) -> bool:
        await self.dispatch(message)
        return message.get("type") in self._terminal_events
