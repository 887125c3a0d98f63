"""Django for actors: sessions, users, the ORM from handlers, the layer setting, workers.

What Channels users rely on, for interlock actors and any ASGI app in a Django project::

    from interlock.actors.django import AuthMiddlewareStack, get_channel_layer

    application = ProtocolTypeRouter(
        {"http": get_asgi_application(), "websocket": AuthMiddlewareStack(URLRouter(routes))},
        channel_layer=get_channel_layer(),
    )

* :func:`AuthMiddlewareStack` (cookies, session, user in the scope) and its parts,
  :class:`CookieMiddleware`, :class:`SessionMiddleware`, :class:`AuthMiddleware`;
* :func:`login`, :func:`logout`, :func:`get_user`, for ``def`` and ``async def`` handlers;
* :func:`database_sync_to_async`: the ORM from async code, with connections closed as
  Django's request cycle closes them (sync handlers of actors get that without asking);
* :func:`get_channel_layer` from ``INTERLOCK_CHANNEL_LAYERS`` (or ``CHANNEL_LAYERS``);
* the app ``"interlock.actors.django"`` for ``INSTALLED_APPS``: ``manage.py runworker CHANNEL...``.

Importing this module needs Django installed, not configured: settings are read when
used. ``import interlock.actors`` never imports it.
"""

from ._auth import AuthMiddleware, AuthMiddlewareStack, get_user, login, logout
from ._db import close_old_connections, database_sync_to_async
from ._sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from ._settings import DEFAULT_CHANNEL_LAYER, get_channel_layer

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "CookieMiddleware",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "close_old_connections",
    "database_sync_to_async",
    "get_channel_layer",
    "get_user",
    "login",
    "logout",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("interlock.actors.django._"):
        _obj.__module__ = __name__
del _name, _obj
