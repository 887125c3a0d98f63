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

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from interlock.dsl import IllegalTransition

from ._asgi import Headers
from ._base import Flush, library_class
from ._errors import DenyConnection, StopActor
from ._generic import Actor
from ._http import HttpActor
from ._sync import async_to_sync, sync_to_async
from ._websocket import JsonWebsocketActor, WebsocketActor
from .security import AllowedHostsOriginValidator, OriginValidator

if TYPE_CHECKING:  # the names __getattr__ below loads on first use
    from .django import (
        AuthMiddleware,  # noqa: F401 - loaded by __getattr__
        AuthMiddlewareStack,  # noqa: F401 - loaded by __getattr__
        CookieMiddleware,  # noqa: F401 - loaded by __getattr__
        SessionMiddleware,  # noqa: F401 - loaded by __getattr__
        SessionMiddlewareStack,  # noqa: F401 - loaded by __getattr__
        database_sync_to_async,  # noqa: F401 - loaded by __getattr__
        get_channel_layer,  # noqa: F401 - loaded by __getattr__
        get_user,  # noqa: F401 - loaded by __getattr__
        login,  # noqa: F401 - loaded by __getattr__
        logout,  # noqa: F401 - loaded by __getattr__
    )

__all__ = [
    "AllowedHostsOriginValidator",
    "AsyncConsumer",
    "AsyncHttpConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "DenyConnection",
    "IllegalTransition",
    "JsonWebsocketConsumer",
    "OriginValidator",
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


@library_class
class AsyncHttpConsumer(HttpActor):
    """Channels' ``AsyncHttpConsumer``: ``handle(body)``, ``send_headers``, ``send_body``,
    ``send_response``, ``disconnect()``.

    Unlike Channels 4.3, whose consumer stops as soon as ``handle()`` returns, a
    ``handle()`` that leaves the response unfinished (``more_body=True``) keeps the
    consumer alive, fed by its mailbox: a ``group_send`` reaches ``chat_message`` and may
    finish the response. ``disconnect()`` runs once when the response is finished or the
    client leaves, and the groups are left.
    """

    implicit_handlers = True
    watch_client = True  # Channels' SSE consumers loop in handle(): the client's leaving ends them

    def handle(self, body: bytes) -> Awaitable[None] | None:
        """Answer the request (Channels' subclasses must override it)."""
        msg = "Subclasses of AsyncHttpConsumer must provide a handle() method."
        raise NotImplementedError(msg)

    def send_headers(self, *, status: int = 200, headers: Headers | None = None) -> Flush:  # type: ignore[override]
        """Start the response (Channels' keyword-only signature)."""
        return super().send_headers(status, headers)

    def send_body(self, body: bytes, *, more_body: bool = False) -> Flush:  # type: ignore[override]
        """Send a part of the body; ``more_body=False`` (the default) ends the response."""
        return super().send_body(body, more_body)

    def send_response(self, status: int, body: bytes, **kwargs: Any) -> Flush:  # type: ignore[override]
        """Send a whole response; Channels passes ``headers=`` as a keyword."""
        headers: Headers | None = kwargs.pop("headers", None)
        if kwargs:
            msg = f"send_response() got unexpected keyword arguments {sorted(kwargs)!r}; it takes headers="
            raise TypeError(msg)
        return super().send_response(status, body, headers)


SyncConsumer = AsyncConsumer
AsyncWebsocketConsumer = WebsocketConsumer
AsyncJsonWebsocketConsumer = JsonWebsocketConsumer
StopConsumer = StopActor

# Channels' Django names (channels.auth, channels.sessions, channels.db, channels.layers),
# loaded on first use so that this module imports without Django.
_DJANGO_NAMES = frozenset(
    {
        "AuthMiddleware",
        "AuthMiddlewareStack",
        "CookieMiddleware",
        "SessionMiddleware",
        "SessionMiddlewareStack",
        "database_sync_to_async",
        "get_channel_layer",
        "get_user",
        "login",
        "logout",
    }
)


def __getattr__(name: str) -> Any:
    """Channels' Django names, from :mod:`interlock.actors.django` (which needs Django)."""
    if name in _DJANGO_NAMES:
        from . import django  # noqa: PLC0415 - Django is optional: imported on first use

        return getattr(django, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
