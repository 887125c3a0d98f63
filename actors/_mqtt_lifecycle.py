"""The lifecycle of one MQTT connection to a broker, kept as a table (the WebSocket one's sibling).

Rule 1. A connection starts in ``connecting`` (the first TCP connect and CONNECT/CONNACK
        handshake) and ends in ``closed``; ``closed`` is final.
Rule 2. The broker's CONNACK with reason code 0 moves ``connecting`` or ``reconnecting``
        to ``connected`` (``connack``); a CONNACK that refuses for good (bad credentials,
        not authorised, a banned client id …) moves it to ``closed`` (``refused``) and
        the connection raises :class:`~interlock.actors.mqtt.BrokerRefused` naming the
        broker and the reason.
Rule 3. A broker that cannot be reached on the *first* attempt is ``unreachable``:
        ``closed``, raising :class:`~interlock.actors.mqtt.BrokerUnavailable` (start-up
        mistakes show at once), unless the connection was made with
        ``retry_first_connect=True``, where it is an attempt like any other.
Rule 4. A connection that was up and is lost (EOF, a reset, a missed PINGRESP, the broker's
        DISCONNECT) is ``lost``: ``reconnecting``, which tries again with exponential
        backoff (``retry`` is one failed attempt: it stays ``reconnecting``), then
        re-subscribes every live subscription once ``connected`` again.
Rule 5. ``close`` ends the connection from any live state (a DISCONNECT is sent when
        ``connected``). Anything else is illegal and raises ``IllegalTransition``.

Theory of operation: the table is validated once by a ``transitions`` machine and
flattened into a dict (:class:`~interlock.dsl.Lifecycle`); the connection keeps its state
in one attribute. ``interlock diagram interlock.actors.mqtt:MqttConnection`` draws it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs
from interlock.dsl import Edge, FlatChart, Lifecycle, render_flat

__all__ = ["CLOSED", "CONNECTED", "CONNECTING", "MQTT_LIFECYCLE", "RECONNECTING", "render_mqtt_lifecycle"]

CONNECTING: Final = "connecting"
CONNECTED: Final = "connected"
RECONNECTING: Final = "reconnecting"
CLOSED: Final = "closed"

MQTT_STATES: Final[Sequence[str]] = (CONNECTING, CONNECTED, RECONNECTING, CLOSED)

MQTT_EDGES: Final[Sequence[Edge]] = (
    Edge("connack", CONNECTING, CONNECTED),
    Edge("refused", CONNECTING, CLOSED),
    Edge("unreachable", CONNECTING, CLOSED),
    Edge("retry", CONNECTING, RECONNECTING),  # retry_first_connect=True
    Edge("lost", CONNECTED, RECONNECTING),
    Edge("connack", RECONNECTING, CONNECTED),
    Edge("retry", RECONNECTING, None),
    Edge("refused", RECONNECTING, CLOSED),
    *(Edge("close", state, CLOSED) for state in (CONNECTING, CONNECTED, RECONNECTING)),
)

MQTT_HINTS: Final[Mapping[tuple[str, str], str]] = {
    ("close", CLOSED): "the connection is closed already",
}

MQTT_LIFECYCLE: Final = attrs.evolve(
    Lifecycle.compile(
        MQTT_STATES,
        MQTT_EDGES,
        initial=CONNECTING,
        ignored=frozenset({(CLOSED, "close")}),
        hints=MQTT_HINTS,
    ),
    internal=frozenset({"connack", "refused", "unreachable", "retry", "lost"}),
)
"""The lifecycle every :class:`~interlock.actors.mqtt.MqttConnection` follows."""

_LABELS: Final[Mapping[str, str]] = {
    "connack": "CONNACK success",
    "refused": "CONNACK refused (raises BrokerRefused)",
    "unreachable": "first connect failed (raises BrokerUnavailable)",
    "retry": "attempt failed, back off",
    "lost": "connection lost",
    "close": "close()",
}


def _edges() -> list[tuple[str, str, str]]:
    merged: dict[tuple[str, str], list[str]] = {}
    for edge in MQTT_EDGES:
        target = edge.source if edge.target is None else edge.target
        labels = merged.setdefault((edge.source, target), [])
        if _LABELS[edge.trigger] not in labels:
            labels.append(_LABELS[edge.trigger])
    return [(source, target, " / ".join(labels)) for (source, target), labels in merged.items()]


def render_mqtt_lifecycle(owner: str, fmt: str = "mermaid", highlight: str | None = None) -> str:
    """Draw the MQTT connection lifecycle as ``mermaid`` or ``dot`` text (``svg`` with Graphviz)."""
    chart = FlatChart("the MQTT lifecycle", tuple(MQTT_STATES), CONNECTING, (CLOSED,), tuple(_edges()))
    return render_flat(owner, chart, fmt, highlight)
