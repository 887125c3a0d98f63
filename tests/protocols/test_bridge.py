"""The MQTT bridge: topics into a layer group, allowed commands back to the broker (Mosquitto on 1883)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from interlock.actors.mqtt import (
    MqttBridge,
    MqttConnection,
    MqttMessage,
    MqttServer,
    PublishAllowList,
    TopicNotAllowed,
    request_publish,
)
from interlock.layers import InMemoryChannelLayer

from .support import BROKER, needs_broker, unique_prefix, wait_for


def test_allow_list() -> None:
    allow = PublishAllowList("devices/+/command", "lights/#")
    assert allow.allows("devices/d1/command")
    assert allow.allows("lights/kitchen/1")
    assert not allow.allows("devices/d1/firmware")
    assert not allow.allows("devices/+/command")  # a wildcard is not a topic
    with pytest.raises(TopicNotAllowed, match=r"publishing to 'sensors/x' is not allowed: .*'devices/\+/command'"):
        allow.check("sensors/x")
    with pytest.raises(TopicNotAllowed, match=r"nothing \(the allow-list is empty\)"):
        PublishAllowList().check("a")
    with pytest.raises(ValueError, match="'#' must be a whole level"):
        PublishAllowList("a/#/b")


class Collector:
    """A plain MQTT subscriber for the test's side."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.got: list[MqttMessage] = []

    def matches(self, topic: str) -> bool:
        return topic.startswith(self.prefix)

    async def deliver(self, message: MqttMessage) -> None:
        self.got.append(message)
        await message.done()

    def connection_changed(self, connected: bool, reconnected: bool) -> None:
        pass


@asynccontextmanager
async def bridge(prefix: str, layer: InMemoryChannelLayer) -> AsyncIterator[None]:
    class Bridge(MqttBridge):
        topics = (f"{prefix}/sensors/#",)
        group = "readings"
        command_group = "commands"
        allow_publish = PublishAllowList(f"{prefix}/devices/+/command")

    async with anyio.create_task_group() as tasks:
        await tasks.start(MqttServer(Bridge.as_asgi(channel_layer=layer)).serve)
        yield
        tasks.cancel_scope.cancel()


@needs_broker
async def test_topics_reach_the_group_and_allowed_commands_the_broker(caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    layer = InMemoryChannelLayer()
    reader = await layer.new_channel()
    await layer.group_add("readings", reader)
    async with bridge(prefix, layer), MqttConnection(BROKER) as device:
        commands = Collector(f"{prefix}/devices/")
        device.attach(commands)
        await device.subscribe(f"{prefix}/devices/#", 1)

        await device.publish(f"{prefix}/sensors/t1", '{"value": 21.5}', qos=1)
        await device.publish(f"{prefix}/sensors/raw", b"\x00\xff", qos=0)
        with anyio.fail_after(5):
            first = await layer.receive(reader)
            second = await layer.receive(reader)
        assert first == {"type": "mqtt.message", "topic": f"{prefix}/sensors/t1", "qos": 1, "retain": False,
                         "text": '{"value": 21.5}'}  # fmt: skip
        assert base64.b64decode(second["base64"]) == b"\x00\xff"

        allow = PublishAllowList(f"{prefix}/devices/+/command")
        await request_publish(layer, allow, f"{prefix}/devices/d1/command", "on", group="commands")
        await wait_for(lambda: len(commands.got) == 1, what="the allowed command at the device")
        assert (commands.got[0].topic, commands.got[0].text) == (f"{prefix}/devices/d1/command", "on")

        # A sender that skips the check (or lies) is stopped by the bridge itself.
        forged: dict[str, Any] = {
            "type": "mqtt.publish.request",
            "topic": f"{prefix}/devices/d1/firmware",
            "payload": "x",
        }
        await layer.group_send("commands", forged)
        await layer.group_send("commands", {**forged, "topic": f"{prefix}/devices/+/command"})
        await layer.group_send("commands", {"type": "mqtt.publish.request", "topic": f"{prefix}/devices/d2/command",
                                            "payload": "second"})  # fmt: skip
        await wait_for(lambda: len(commands.got) == 2, what="the second allowed command")
        await anyio.sleep(0.2)
        assert [m.topic for m in commands.got] == [f"{prefix}/devices/d1/command", f"{prefix}/devices/d2/command"]
    refusals = [r.getMessage() for r in caplog.records if "refused a publish request" in r.getMessage()]
    assert len(refusals) == 2
    assert "is not allowed" in refusals[0]
    assert "wildcards, for subscriptions only" in refusals[1]


async def test_request_publish_checks_before_sending() -> None:
    layer = InMemoryChannelLayer()
    member = await layer.new_channel()
    await layer.group_add("mqtt.commands", member)
    with pytest.raises(TopicNotAllowed):
        await request_publish(layer, PublishAllowList("a/+"), "b/1", "x")
    with pytest.raises(TypeError, match="takes a str payload"):
        await request_publish(layer, PublishAllowList("a/+"), "a/1", b"x")  # type: ignore[arg-type]
    await request_publish(layer, PublishAllowList("a/+"), "a/1", "x")
    assert (await layer.receive(member))["topic"] == "a/1"
