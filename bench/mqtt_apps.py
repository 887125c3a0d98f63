"""The two MQTT → group → WebSocket stacks compared by ``bench/mqtt_bridge.py``.

Each is two processes on Redis (127.0.0.1:6379, keys under ``MQTT_BENCH_PREFIX``): an MQTT
side that mirrors ``bench/<stack>/#`` into the group ``bench``, and a uvicorn side whose
WebSocket members join ``bench`` and pass each message on as text.

* interlock: ``interlock mqtt mqtt_apps:interlock_mqtt`` (an ``MqttBridge``) and
  ``uvicorn --factory mqtt_apps:interlock_ws`` (a ``WebsocketActor``), on interlock's
  ``RedisChannelLayer``;
* Channels: ``mqttasgi mqtt_apps:channels_mqtt`` (an ``MqttConsumer`` doing
  ``group_send``) and ``uvicorn --factory mqtt_apps:channels_ws`` (an
  ``AsyncWebsocketConsumer``), on channels_redis' ``RedisChannelLayer``.
"""

# Imports live inside the factories: a stack whose packages are missing fails alone.
# ruff: noqa: PLC0415

from __future__ import annotations

import os
from typing import Any

GROUP = "bench"


def _prefix() -> str:
    return os.environ.get("MQTT_BENCH_PREFIX", "mqtt-bench")


def _interlock_layer() -> Any:
    from interlock.layers import RedisChannelLayer

    return RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=_prefix(), capacity=100_000)


def _make_interlock_mqtt() -> Any:
    from interlock.actors.mqtt import MqttBridge

    class Bridge(MqttBridge):
        topics = ("bench/interlock/#",)
        group = GROUP
        qos = 0

        def event_for(self, message: Any) -> dict[str, Any]:
            return {"type": "bench.reading", "text": message.payload.decode()}

    return Bridge.as_asgi(channel_layer=_interlock_layer())


def interlock_ws() -> Any:
    """uvicorn factory: WebSocket members of the group, on interlock."""
    from interlock.actors import WebsocketActor, handler

    class Member(WebsocketActor):
        groups = (GROUP,)

        @handler
        async def bench_reading(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return Member.as_asgi(channel_layer=_interlock_layer())


def _configure_channels() -> None:
    from echo_apps import configure_django

    configure_django(
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis-py 8 times a blocking read out at its socket timeout: longer than BZPOPMIN's 5 s
                    "hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 30}],
                    "prefix": _prefix(),
                    "capacity": 100_000,
                },
            }
        }
    )


def channels_ws() -> Any:
    """uvicorn factory: WebSocket members of the group, on Django Channels."""
    _configure_channels()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter

    class Member(AsyncWebsocketConsumer):  # type: ignore[misc,unused-ignore]
        async def connect(self) -> None:
            await self.channel_layer.group_add(GROUP, self.channel_name)
            await self.accept()

        async def disconnect(self, code: int) -> None:
            await self.channel_layer.group_discard(GROUP, self.channel_name)

        async def bench_reading(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    return ProtocolTypeRouter({"websocket": Member.as_asgi()})


def _make_channels_mqtt() -> Any:
    _configure_channels()
    from mqttasgi.consumers import MqttConsumer

    class Bridge(MqttConsumer):  # type: ignore[misc]
        async def connect(self) -> None:
            await self.subscribe("bench/channels/#", 0)

        async def receive(self, mqtt_message: dict[str, Any]) -> None:
            text = mqtt_message["payload"].decode()
            await self.channel_layer.group_send(GROUP, {"type": "bench.reading", "text": text})

        async def disconnect(self) -> None:
            pass

    return Bridge


def __getattr__(name: str) -> Any:
    # The MQTT apps are built when their command imports them, not when uvicorn imports this module.
    if name == "interlock_mqtt":
        return _make_interlock_mqtt()
    if name == "channels_mqtt":
        return _make_channels_mqtt()
    raise AttributeError(name)
