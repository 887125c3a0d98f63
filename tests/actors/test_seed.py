"""The seed's consumers run unchanged (but for imports), sync handlers, both backends."""

from __future__ import annotations

import json

from interlock.actors import ProtocolTypeRouter, URLRouter, path
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import InMemoryChannelLayer

from .seed_consumers import ChatConsumer, RoomChatConsumer


async def test_chat_consumer_welcomes_and_renames() -> None:
    async with WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/") as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_from() == "[Welcome Anonymous!]"
        await ws.send_to(text_data="hello")
        assert await ws.receive_from() == "Anonymous: hello"
        await ws.send_to(text_data="/name  Ada ")
        assert await ws.receive_from() == "[set your username to Ada]"
        await ws.send_to(text_data="hi")
        assert await ws.receive_from() == "Ada: hi"
        await ws.disconnect()


def room_app(layer: InMemoryChannelLayer) -> ProtocolTypeRouter:
    return ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/chat/<str:room_name>/", RoomChatConsumer.as_asgi())])},
        channel_layer=layer,
    )


async def test_room_chat_consumer_reaches_exactly_its_room() -> None:
    layer = InMemoryChannelLayer()
    app = room_app(layer)
    async with (
        WebsocketCommunicator(app, "/ws/chat/red/") as a,
        WebsocketCommunicator(app, "/ws/chat/red/") as b,
        WebsocketCommunicator(app, "/ws/chat/blue/") as c,
    ):
        for ws in (a, b, c):
            assert (await ws.connect()).accepted
        assert len(await layer.group_members("chat_red")) == 2
        await a.send_to(text_data=json.dumps({"message": "hello red"}))
        assert await a.receive_json_from() == {"message": "hello red"}
        assert await b.receive_json_from() == {"message": "hello red"}
        await c.receive_nothing()
        for ws in (a, b, c):
            await ws.disconnect()
    assert await layer.groups() == {}


async def test_room_chat_consumer_leaves_group_even_when_receive_fails() -> None:
    layer = InMemoryChannelLayer()
    async with WebsocketCommunicator(room_app(layer), "/ws/chat/red/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="not json")
        close = await ws.receive_close()
        assert close.code == 1011
        await ws.wait()
    assert await layer.group_members("chat_red") == frozenset()
