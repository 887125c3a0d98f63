"""The ASGI application: Django's views, the chat's WebSocket actor, the archive worker.

Serve it with ``uvicorn django_chat.asgi:application`` or ``daphne django_chat.asgi:application``;
run the worker with ``python manage.py runworker chat-archive``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_chat.settings")
django_asgi_app = get_asgi_application()  # set Django up before importing models

from interlock.actors import ASGIApp, ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from interlock.actors.django import AuthMiddlewareStack, get_channel_layer  # noqa: E402
from interlock.actors.security import AllowedHostsOriginValidator  # noqa: E402
from rooms.routing import websocket_urlpatterns  # noqa: E402
from rooms.workers import ARCHIVE_CHANNEL, Archiver  # noqa: E402

# Only pages served from ALLOWED_HOSTS may open a socket: a page on another site would
# otherwise open one with the user's cookies (cross-site WebSocket hijacking).
websocket: ASGIApp = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,  # type: ignore[dict-item]  # the stubs type ASGIHandler's receive/send loosely
        "websocket": websocket,
        "channel": ChannelNameRouter({ARCHIVE_CHANNEL: Archiver.as_asgi()}),
    },
    channel_layer=get_channel_layer(),
)
