"""The MQTT bridge: topics mirrored into a layer group, and commands from the group published back.

Theory of operation
-------------------
:class:`MqttBridge` is an :class:`~interlock.actors.mqtt.MqttActor`: every message on its
filters is sent to the layer group :meth:`~MqttBridge.group_for` names (``mqtt.readings``
by default) as ``{"type": "mqtt.message", "topic", "text" | "base64", "qos", "retain"}``
(``text`` when the payload is UTF-8, else ``base64``), so any actor in the group — a
WebSocket dashboard, an SSE feed — sees what the devices publish.

The other way, the bridge is a member of ``command_group`` (``mqtt.commands``): a message
``{"type": "mqtt.publish.request", "topic", "payload", "qos", "retain"}`` sent there is
published — **only if its topic is on the bridge's** ``allow_publish`` list
(:class:`PublishAllowList`, empty by default: nothing). A browser must not publish
anywhere: :func:`request_publish` checks the same list on the sender's side, so a
WebSocket actor can tell its client, and the bridge checks it again, because the layer is
not the place to trust (a topic refused there is logged at WARNING and dropped).
"""

from __future__ import annotations

import base64
import logging
from typing import Any, ClassVar

from interlock.layers import GroupLayer

from ._base import library_class
from ._mqtt import MqttActor
from ._mqtt_client import MqttMessage
from ._mqtt_topics import check_topic, check_topic_filter, topic_matches
from ._types import Message

__all__ = ["MqttBridge", "PublishAllowList", "TopicNotAllowed", "request_publish"]

logger = logging.getLogger("interlock.actors.mqtt")

COMMAND_TYPE = "mqtt.publish.request"


class TopicNotAllowed(PermissionError):
    """A publish to a topic outside the allow-list: names the topic and the list."""


class PublishAllowList:
    """Topic filters a bridge may publish to on others' behalf: ``PublishAllowList("devices/+/command")``.

    Empty (the default) allows nothing. Filters use MQTT's ``+`` and ``#``; the topic
    checked is a plain topic name (wildcards in it are refused).
    """

    def __init__(self, *filters: str) -> None:
        self.filters = tuple(check_topic_filter(f) for f in filters)

    def __repr__(self) -> str:
        return f"PublishAllowList({', '.join(map(repr, self.filters))})"

    def allows(self, topic: str) -> bool:
        """Whether *topic* may be published to."""
        try:
            check_topic(topic)
        except (TypeError, ValueError):
            return False
        return any(topic_matches(f, topic) for f in self.filters)

    def check(self, topic: object) -> str:
        """Return *topic* if allowed; else raise :class:`TopicNotAllowed` (or ``ValueError`` for a bad topic)."""
        text = check_topic(topic)
        if not any(topic_matches(f, text) for f in self.filters):
            allowed = ", ".join(map(repr, self.filters)) or "nothing (the allow-list is empty)"
            msg = f"publishing to {text!r} is not allowed: the bridge publishes only to {allowed}"
            raise TopicNotAllowed(msg)
        return text


async def request_publish(
    layer: GroupLayer,
    allow: PublishAllowList,
    topic: str,
    payload: str,
    *,
    qos: int = 1,
    retain: bool = False,
    group: str = "mqtt.commands",
) -> None:
    """Ask the bridge in *group* to publish: the topic is checked against *allow* first (:class:`TopicNotAllowed`)."""
    allow.check(topic)
    if not isinstance(payload, str):
        msg = f"request_publish() takes a str payload (layer messages carry text), not {type(payload).__name__}"
        raise TypeError(msg)
    if qos not in (0, 1, 2):
        msg = f"qos is 0, 1 or 2, not {qos!r}"
        raise ValueError(msg)
    await layer.group_send(
        group, {"type": COMMAND_TYPE, "topic": topic, "payload": payload, "qos": qos, "retain": retain}
    )


@library_class
class MqttBridge(MqttActor):
    """Mirror MQTT filters into a layer group, and publish allowed commands from ``command_group``.

    Subclass it with ``topics`` (what to mirror), ``group`` (where to), ``command_group``
    and ``allow_publish``; override :meth:`group_for` to spread topics over several groups.
    """

    group: ClassVar[str] = "mqtt.readings"
    """The group messages are mirrored into."""
    command_group: ClassVar[str] = "mqtt.commands"
    """The group the bridge takes publish requests from."""
    allow_publish: ClassVar[PublishAllowList] = PublishAllowList()
    """Where requests may publish (empty: nowhere)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.allow_publish, PublishAllowList):
            msg = f"{cls.__qualname__}.allow_publish must be a PublishAllowList, not {cls.allow_publish!r}"
            raise TypeError(msg)
        cls.groups = (*cls.groups, cls.command_group) if cls.command_group not in cls.groups else cls.groups

    def group_for(self, message: MqttMessage) -> str | None:
        """The group *message* goes to (None: not mirrored). Default: :attr:`group`."""
        return self.group

    def event_for(self, message: MqttMessage) -> dict[str, Any]:
        """The layer message mirroring *message*."""
        event: dict[str, Any] = {
            "type": "mqtt.message",
            "topic": message.topic,
            "qos": message.qos,
            "retain": message.retain,
        }
        try:
            event["text"] = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            event["base64"] = base64.b64encode(message.payload).decode("ascii")
        return event

    async def message(self, message: MqttMessage) -> None:
        """Mirror one message into its group."""
        group = self.group_for(message)
        if group is not None:
            await self.channel_layer.group_send(group, self.event_for(message))

    async def dispatch(self, message: Message) -> None:
        """Publish requests are the bridge's own; other layer messages go to your handlers."""
        if message.get("type") == COMMAND_TYPE:
            await self._publish_request(message)
        else:
            await super().dispatch(message)

    async def _publish_request(self, event: Message) -> None:
        """A publish request from ``command_group``: publish it if the allow-list says so."""
        topic = event.get("topic")
        try:
            self.allow_publish.check(topic)
        except (TopicNotAllowed, TypeError, ValueError) as exc:
            logger.warning("%r refused a publish request: %s", self, exc)
            return
        payload = event.get("payload", "")
        if not isinstance(payload, str):
            logger.warning("%r refused a publish request to %r: the payload is not a str", self, topic)
            return
        qos = event.get("qos", 1)
        await self.publish(str(topic), payload, qos=qos if qos in (0, 1, 2) else 1, retain=bool(event.get("retain")))
