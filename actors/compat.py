"""Django Channels' names, so a Channels consumer runs with only its imports changed.

::

    # from channels.generic.websocket import WebsocketConsumer
    # from asgiref.sync import async_to_sync
    from interlock.actors.compat import WebsocketConsumer, async_to_sync

There are no sync/async twins underneath: each pair of names is one interlock class
whose handlers may be ``def`` or ``async def``. One rule differs from interlock's own
classes, as Channels code needs: every public method a consumer defines receives layer
messages of its type (``chat.message`` calls ``chat_message``), where interlock's
classes take only methods marked :func:`~interlock.actors.handler`. Compatibility is a
door in; new code should use :mod:`interlock.actors` and the DSL.
"""

from __future__ import annotations

from interlock.dsl import IllegalTransition

from ._base import library_class
from ._errors import DenyConnection, StopActor
from ._generic import Actor
from ._sync import async_to_sync, sync_to_async
from ._websocket import JsonWebsocketActor, WebsocketActor

__all__ = [
    "AsyncConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "DenyConnection",
    "IllegalTransition",
    "JsonWebsocketConsumer",
    "StopConsumer",
    "SyncConsumer",
    "WebsocketConsumer",
    "async_to_sync",
    "sync_to_async",
]

# Channels' rule for layer messages: every public method the consumer defines is a
# handler (interlock's own classes take only methods marked @handler).


@library_class
class AsyncConsumer(Actor):
    """Channels' ``AsyncConsumer`` (and ``SyncConsumer``): the generic :class:`Actor`."""

    implicit_handlers = True


@library_class
class WebsocketConsumer(WebsocketActor):
    """Channels' ``WebsocketConsumer`` and ``AsyncWebsocketConsumer``: a :class:`WebsocketActor`."""

    implicit_handlers = True


@library_class
class JsonWebsocketConsumer(JsonWebsocketActor):
    """Channels' ``JsonWebsocketConsumer`` and ``AsyncJsonWebsocketConsumer``."""

    implicit_handlers = True


SyncConsumer = AsyncConsumer
AsyncWebsocketConsumer = WebsocketConsumer
AsyncJsonWebsocketConsumer = JsonWebsocketConsumer
StopConsumer = StopActor
