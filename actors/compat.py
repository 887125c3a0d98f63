"""Django Channels' names, so a Channels consumer runs with only its imports changed.

::

    # from channels.generic.websocket import WebsocketConsumer
    # from asgiref.sync import async_to_sync
    from interlock.actors.compat import WebsocketConsumer, async_to_sync

There are no sync/async twins underneath: each pair of names is one interlock class
whose handlers may be ``def`` or ``async def``. Compatibility is a door in; new code
should use :mod:`interlock.actors` and the DSL.
"""

from __future__ import annotations

from interlock.dsl import IllegalTransition

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

AsyncConsumer = Actor
SyncConsumer = Actor
WebsocketConsumer = WebsocketActor
AsyncWebsocketConsumer = WebsocketActor
JsonWebsocketConsumer = JsonWebsocketActor
AsyncJsonWebsocketConsumer = JsonWebsocketActor
StopConsumer = StopActor
