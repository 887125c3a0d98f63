"""A Django project in one module, with interlock actors beside Django's ASGI handler.

``application = ProtocolTypeRouter({"http": get_asgi_application(), "websocket": ...},
channel_layer=layer)``, as in the docs; settings come from ``settings.configure`` here,
with ``ROOT_URLCONF`` = :mod:`tests.integration.django_urls`.

WebSocket routes: ``ws/echo/<str:name>/`` (:class:`EchoActor`) and
``ws/chat/<str:room_name>/`` (the seed's ``RoomChatConsumer``: sync handlers calling
``async_to_sync``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.asgi import get_asgi_application

settings.configure(
    DEBUG=False,
    SECRET_KEY="interlock-integration-tests-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF="tests.integration.django_urls",
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    USE_TZ=True,
)
django_asgi_app: ASGIApp = get_asgi_application()  # type: ignore[assignment]  # the stubs' ASGIHandler is typed loosely

from interlock.actors import ASGIApp, ProtocolTypeRouter, URLRouter, path  # noqa: E402
from interlock.layers import InMemoryChannelLayer  # noqa: E402

from tests.actors.seed_consumers import RoomChatConsumer  # noqa: E402
from tests.integration.host_actors import EchoActor  # noqa: E402

layer = InMemoryChannelLayer()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(
            [
                path("ws/echo/<str:name>/", EchoActor.as_asgi()),
                path("ws/chat/<str:room_name>/", RoomChatConsumer.as_asgi()),
            ]
        ),
    },
    channel_layer=layer,
)
