"""``interlock.actors.mqtt``: MQTT actors, the broker connection, the bridge to layer groups.

See ``docs/protocols.md``. Needs the ``mqtt`` extra (``pip install 'interlock[mqtt]'``).
"""

import contextlib

from ._mqtt import MqttActor, MqttRouter, MqttServer, run_mqtt
from ._mqtt_bridge import MqttBridge, PublishAllowList, TopicNotAllowed, request_publish
from ._mqtt_client import (
    DEFAULT_MAX_PAYLOAD,
    BrokerRefused,
    BrokerUnavailable,
    MalformedPayload,
    MqttAck,
    MqttConnection,
    MqttMessage,
    MqttUnavailable,
    Subscriber,
    parse_broker_url,
)
from ._mqtt_lifecycle import CLOSED, CONNECTED, CONNECTING, MQTT_LIFECYCLE, RECONNECTING
from ._mqtt_topics import check_topic, check_topic_filter, topic_matches

__all__ = [
    "CLOSED",
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_MAX_PAYLOAD",
    "MQTT_LIFECYCLE",
    "RECONNECTING",
    "BrokerRefused",
    "BrokerUnavailable",
    "MalformedPayload",
    "MqttAck",
    "MqttActor",
    "MqttBridge",
    "MqttConnection",
    "MqttMessage",
    "MqttRouter",
    "MqttServer",
    "MqttUnavailable",
    "PublishAllowList",
    "Subscriber",
    "TopicNotAllowed",
    "check_topic",
    "check_topic_filter",
    "parse_broker_url",
    "request_publish",
    "run_mqtt",
    "topic_matches",
]

for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj) and getattr(_obj, "__module__", "").startswith("interlock.actors._"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
