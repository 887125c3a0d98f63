"""Simulated sensors: each publishes readings to the broker and obeys commands.

Run::

    python examples/iot/sensors.py --broker mqtt://127.0.0.1:1883 --sensors 3 --interval 1

Sensor ``s1`` publishes ``{"value": 21.5, "unit": "°C"}`` to ``iot/sensors/s1/temperature``
(QoS 0, as telemetry usually goes) every *interval* seconds, and listens on
``iot/devices/s1/command``: ``{"command": "blink"}`` makes it publish
``{"state": "blinking"}`` to ``iot/devices/s1/state`` (QoS 1). ``INTERLOCK_IOT_PREFIX``
replaces ``iot`` (the tests use their own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random

import anyio
from interlock.actors.mqtt import MqttConnection, MqttMessage

PREFIX = os.environ.get("INTERLOCK_IOT_PREFIX", "iot")


class Commands:
    """The sensors' side of the command topics: one subscriber for all of them."""

    def __init__(self, connection: MqttConnection) -> None:
        self.connection = connection
        self.pending: list[str] = []

    def matches(self, topic: str) -> bool:
        """Commands for any of our devices."""
        return topic.startswith(f"{PREFIX}/devices/") and topic.endswith("/command")

    async def deliver(self, message: MqttMessage) -> None:
        """A command: remember which device to answer for."""
        device = message.topic.split("/")[-2]
        try:
            command = message.json().get("command")
        except (ValueError, AttributeError):
            command = None
        if command == "blink":
            self.pending.append(device)
        await message.done()

    def connection_changed(self, connected: bool, reconnected: bool) -> None:
        """Nothing to do: the connection re-subscribes by itself."""


async def run(broker: str, sensors: int, interval: float, count: int | None) -> None:
    """Publish readings until cancelled (or *count* rounds)."""
    names = [f"s{n + 1}" for n in range(sensors)]
    async with MqttConnection(broker, retry_first_connect=True) as connection:
        commands = Commands(connection)
        connection.attach(commands)
        await connection.subscribe(f"{PREFIX}/devices/+/command", 1)
        rounds = 0
        while count is None or rounds < count:
            for index, name in enumerate(names):
                value = round(20 + 5 * math.sin(rounds / 5 + index) + random.uniform(-0.2, 0.2), 2)  # noqa: S311
                reading = json.dumps({"value": value, "unit": "°C"})
                await connection.publish(f"{PREFIX}/sensors/{name}/temperature", reading)
            while commands.pending:
                device = commands.pending.pop(0)
                await connection.publish(f"{PREFIX}/devices/{device}/state", json.dumps({"state": "blinking"}), qos=1)
            rounds += 1
            await anyio.sleep(interval)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--sensors", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--count", type=int, help="rounds of readings, then stop (default: forever)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(run, args.broker, args.sensors, args.interval, args.count)


if __name__ == "__main__":
    main()
