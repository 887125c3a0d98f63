"""IoT dashboard: sensors → Mosquitto → an MQTT actor → a layer group → WebSocket dashboards.

Run it (a broker on 127.0.0.1:1883, then the sensors, then this)::

    python examples/iot/sensors.py &          # simulated sensors
    python examples/iot/app.py                # http://127.0.0.1:8002

One process serves both sides here (uvicorn and the MQTT connection, one event loop, an
in-memory layer). They can be split, on a layer both reach (``INTERLOCK_IOT_LAYER=sqlite``)::

    interlock mqtt app:mqtt_app --broker mqtt://127.0.0.1:1883   # from examples/iot/
    uvicorn app:asgi_app --app-dir examples/iot --port 8002

* :class:`Aggregator` (an :class:`~interlock.actors.mqtt.MqttBridge`) subscribes
  ``iot/sensors/+/+`` and ``iot/devices/+/state``, keeps each sensor's latest value, count,
  minimum and maximum, and sends each reading to the group ``iot.dashboard``. A reading
  that is not JSON with a number ``value`` is logged and skipped.
* :class:`Dashboard` (a WebSocket actor) joins ``iot.dashboard`` and passes the readings
  on to the page. The page may send ``{"topic": ..., "payload": ...}``: published only if
  the topic is on :data:`ALLOW` (``iot/devices/+/command``); anything else gets
  ``{"error": ...}`` naming the allowed filters. The aggregator checks the list again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from interlock.actors import (
    JsonWebsocketActor,
    ProtocolTypeRouter,
    Receive,
    Scope,
    Send,
    URLRouter,
    handler,
    path,
)
from interlock.actors.mqtt import (
    MqttBridge,
    MqttMessage,
    MqttServer,
    PublishAllowList,
    TopicNotAllowed,
    request_publish,
)
from interlock.actors.security import SameOriginValidator
from interlock.layers import GroupLayer, InMemoryChannelLayer, SQLiteChannelLayer

HERE = Path(__file__).resolve().parent
PREFIX = os.environ.get("INTERLOCK_IOT_PREFIX", "iot")
ALLOW = PublishAllowList(f"{PREFIX}/devices/+/command")
"""Where a browser may publish: device command topics, nothing else."""
COMMANDS = "iot.commands"
DASHBOARD = "iot.dashboard"

logger = logging.getLogger("iot")


def make_layer() -> GroupLayer:
    """``INTERLOCK_IOT_LAYER``: ``memory`` (the default, one process) or ``sqlite`` (a file both processes open)."""
    kind = os.environ.get("INTERLOCK_IOT_LAYER", "memory")
    if kind == "sqlite":
        return SQLiteChannelLayer(os.environ.get("INTERLOCK_IOT_DB", str(HERE / "iot.sqlite3")))
    if kind == "memory":
        return InMemoryChannelLayer()
    msg = f"INTERLOCK_IOT_LAYER={kind!r}: expected 'memory' or 'sqlite'"
    raise SystemExit(msg)


class Aggregator(MqttBridge):
    """Every reading, aggregated per sensor, mirrored to the dashboards; allowed commands published."""

    topics = (f"{PREFIX}/sensors/+/+", f"{PREFIX}/devices/+/state")
    group = DASHBOARD
    command_group = COMMANDS
    allow_publish = ALLOW
    stats: dict[str, dict[str, float]]

    async def connected(self, reconnected: bool) -> None:
        """Start (or keep) the statistics."""
        if not hasattr(self, "stats"):
            self.stats = {}

    async def message(self, message: MqttMessage) -> None:
        """A reading or a device's state: to the dashboards, with the sensor's statistics."""
        parts = message.topic.split("/")
        if parts[1] == "devices":
            await self.channel_layer.group_send(
                DASHBOARD, {"type": "iot.state", "device": parts[2], "state": message.text}
            )
            return
        try:
            value = message.json()["value"]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(value)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning('skipped a reading on %r: expected JSON {"value": number}: %s', message.topic, exc)
            return
        sensor, kind = parts[2], parts[3]
        stats = self.stats.setdefault(f"{sensor}/{kind}", {"count": 0, "min": value, "max": value})
        stats["count"] += 1
        stats["min"] = min(stats["min"], value)
        stats["max"] = max(stats["max"], value)
        await self.channel_layer.group_send(
            DASHBOARD, {"type": "iot.reading", "sensor": sensor, "kind": kind, "value": value, **stats}
        )


class Dashboard(JsonWebsocketActor):
    """One dashboard page: readings in, allowed commands out."""

    groups = (DASHBOARD,)

    async def receive_json(self, content: Any) -> None:
        """``{"topic", "payload"}``: publish through the aggregator, if the allow-list says so."""
        if not isinstance(content, dict) or not isinstance(content.get("topic"), str):
            await self.send_json({"error": 'send {"topic": "...", "payload": "..."}'})
            return
        payload = content.get("payload", "")
        try:
            await request_publish(self.channel_layer, ALLOW, content["topic"], str(payload), group=COMMANDS)
        except (TopicNotAllowed, ValueError) as exc:
            await self.send_json({"error": str(exc)})
            return
        await self.send_json({"sent": content["topic"]})

    @handler
    async def iot_reading(self, event: dict[str, Any]) -> None:
        """A reading: to the page."""
        await self.send_json({key: value for key, value in event.items() if key != "type"} | {"event": "reading"})

    @handler
    async def iot_state(self, event: dict[str, Any]) -> None:
        """A device's state: to the page."""
        await self.send_json({"event": "state", "device": event["device"], "state": event["state"]})


async def _page(scope: Scope, receive: Receive, send: Send) -> None:
    page = (
        (HERE / "dashboard.html")
        .read_bytes()
        .replace(b'let prefix = "iot";', f"let prefix = {json.dumps(PREFIX)};".encode())
    )
    body = page if scope["path"] == "/" else b"Not Found"
    status = 200 if scope["path"] == "/" else 404
    kind = b"text/html; charset=utf-8" if status == 200 else b"text/plain"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


layer = make_layer()
asgi_app = ProtocolTypeRouter(
    {
        "http": _page,
        "websocket": SameOriginValidator(URLRouter([path("ws/dashboard/", Dashboard.as_asgi())])),
    },
    channel_layer=layer,
)
mqtt_app = Aggregator.as_asgi(channel_layer=layer)
"""The MQTT side: ``interlock mqtt app:mqtt_app`` (one Aggregator for both of its class's filters)."""


async def serve(broker: str, host: str, port: int) -> None:
    """Both sides in one event loop: the MQTT connection first, then uvicorn."""
    server = uvicorn.Server(uvicorn.Config(asgi_app, host=host, port=port, log_level="info"))
    async with anyio.create_task_group() as tasks:
        await tasks.start(MqttServer(mqtt_app, broker, retry_first_connect=True).serve)
        await server.serve()
        tasks.cancel_scope.cancel()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"iot: open http://{args.host}:{args.port}/")  # noqa: T201
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the SIGINT it caught again, once stopped
        anyio.run(serve, args.broker, args.host, args.port)


if __name__ == "__main__":
    main()
