"""The ASGI vocabulary every other module speaks. Imports nothing from interlock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = ["LAYER_KEY", "ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LAYER_KEY: Final = "interlock.channel_layer"
"""Scope key under which :class:`~interlock.actors.ProtocolTypeRouter` passes its layer down."""
