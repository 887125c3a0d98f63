"""WebSocket routes (interlock's ``path``, Django's converters)."""

from interlock.actors import path

from rooms.consumers import ChatConsumer

websocket_urlpatterns = [path("ws/chat/<slug:room_name>/", ChatConsumer.as_asgi())]
