"""One MQTT v5 connection to a broker: connect, reconnect, subscribe, publish, acknowledge.

The client library, and why
---------------------------
The protocol (packet codec, packet ids, the QoS 1/2 handshakes) is moat-lib-mqtt's sans-IO
``MQTTClientStateMachine``; the I/O is ours, on anyio, so it runs on asyncio *and* trio.
Checked against Mosquitto 2.0 here. The others on PyPI: aiomqtt and gmqtt are asyncio
only; paho-mqtt owns its socket loop (a thread per connection, callbacks on it); amqtt is
asyncio only. moat-lib-mqtt's own ``AsyncMQTTClient`` is anyio too, but it never
reconnects (``MQTTConnectionLost`` ends it), retries the first connect for 45 s through
``stamina`` before a refused port shows, acknowledges QoS 1/2 messages as they arrive
(before anyone handled them) and buffers 5 messages per subscription. Driving the state
machine ourselves gives the lifecycle of ``_mqtt_lifecycle.py``, acknowledgement after
handling, and back-pressure from the actors' mailboxes to the broker's socket.
Two private corners of the state machine are used, pinned by ``moat-lib-mqtt<0.9``: the
``_auto_ack_publishes`` switch (off: we acknowledge) and the CONNECT encoding (to send
the Maximum Packet Size property, so the broker never sends us more than ``max_payload``).

Theory of operation
-------------------
* **The reader never waits.** One task reads, feeds bytes to the state machine, settles
  acknowledgements at once and queues each PUBLISH for a second task, the dispatcher, which
  routes it to the subscribers whose filters match its topic: ``await
  subscriber.deliver(message)`` waits while a mailbox is full. (Were the reader to wait
  there, an actor awaiting the PUBACK of its own publish, behind a full mailbox, would
  wait forever.) The queue is bounded all the same: QoS 1/2 messages by the broker, told
  ``receive_maximum`` (100) in CONNECT, since each stays unacknowledged until handled;
  QoS 0 messages by ``max_queued`` (10,000), past which they are dropped, counted in
  ``dropped`` and logged (at most once, the QoS 0 contract).
* **QoS 1/2 are acknowledged once handled**: each delivered message carries an
  :class:`MqttAck` counting the subscribers it went to; the PUBACK (QoS 1) or PUBREC
  (QoS 2) goes out when the last one is done. A QoS 2 message's repeat (same packet id
  before its PUBREL) is not delivered again. Payloads that break the limits are
  acknowledged with the MQTT v5 reason code that says why (0x99 payload format invalid,
  0x95 packet too large) and never delivered.
* **Reconnect**: a lost connection moves to ``reconnecting`` and tries again with
  exponential backoff (``backoff``: first and longest delay), a clean session each time,
  then re-subscribes every live filter and tells the subscribers (``connection_changed``).
  Messages the broker had for a lost session are gone (clean start); a ``publish`` with
  QoS 1/2 whose acknowledgement did not come before the loss is sent again on the next
  connection (at least once), and a ``publish`` made while reconnecting waits for the
  connection, up to ``publish_timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc
import attrs

try:
    import moat.lib.mqtt  # noqa: F401 - only to say what is missing
except ImportError as exc:  # pragma: no cover - the test environment has the extra
    msg = "interlock.actors.mqtt needs the mqtt extra: pip install 'interlock[mqtt]'"
    raise ImportError(msg) from exc
from moat.lib.mqtt import (
    MQTTConnAckPacket,
    MQTTConnectPacket,
    MQTTDisconnectPacket,
    MQTTException,
    MQTTPacket,
    MQTTPingResponsePacket,
    MQTTPublishAckPacket,
    MQTTPublishCompletePacket,
    MQTTPublishPacket,
    MQTTPublishReceivePacket,
    MQTTPublishReleasePacket,
    MQTTSubscribeAckPacket,
    MQTTUnsubscribeAckPacket,
    Pattern,
    PropertyType,
    QoS,
    ReasonCode,
    Subscription,
)
from moat.lib.mqtt._base_client_state_machine import MQTTClientState
from moat.lib.mqtt.client_state_machine import MQTTClientStateMachine

from ._mqtt_lifecycle import CLOSED, CONNECTED, CONNECTING, MQTT_LIFECYCLE, RECONNECTING, render_mqtt_lifecycle
from ._mqtt_topics import check_topic, check_topic_filter, topic_matches

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "BrokerRefused",
    "BrokerUnavailable",
    "MalformedPayload",
    "MqttAck",
    "MqttConnection",
    "MqttMessage",
    "MqttUnavailable",
    "Subscriber",
    "parse_broker_url",
]

logger = logging.getLogger("interlock.actors.mqtt")

DEFAULT_MAX_PAYLOAD: Final = 256 * 1024
"""Bytes a payload may hold, either way, unless the connection says otherwise."""

_PERMANENT_REFUSALS: Final = frozenset(
    {
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
        ReasonCode.BAD_USERNAME_OR_PASSWORD,
        ReasonCode.NOT_AUTHORIZED,
        ReasonCode.BANNED,
        ReasonCode.BAD_AUTHENTICATION_METHOD,
    }
)
_SUBSCRIBE_TIMEOUT: Final = 10.0


class BrokerUnavailable(ConnectionError):
    """The broker could not be reached (first connect, unless ``retry_first_connect``)."""

    def __init__(self, broker: str, reason: str) -> None:
        self.broker = broker
        super().__init__(f"MQTT broker {broker} is unavailable: {reason}")


class BrokerRefused(ConnectionError):
    """The broker answered CONNECT with a refusal (``reason_code``); the connection is closed."""

    def __init__(self, broker: str, reason_code: int) -> None:
        self.broker = broker
        self.reason_code = reason_code
        try:
            name = ReasonCode(reason_code).name.lower().replace("_", " ")
        except ValueError:
            name = "unknown reason"
        super().__init__(f"MQTT broker {broker} refused the connection: {name} (reason code 0x{reason_code:02x})")


class MqttUnavailable(RuntimeError):
    """A publish, subscribe or unsubscribe could not be done: not connected in time, or closed.

    Not an ``OSError``: inside an actor it is the handler's error to catch, not "the peer is gone".
    """


class MalformedPayload(ValueError):
    """A payload read as text is not UTF-8 (or as JSON is not JSON): names the topic."""


class Subscriber(Protocol):
    """What the connection delivers to: an MQTT actor's side of the server, or your own."""

    def matches(self, topic: str) -> bool:
        """Whether a message on *topic* is for this subscriber."""
        ...

    async def deliver(self, message: MqttMessage) -> None:
        """Take *message* (waiting while full); call ``message.ack.done()`` once handled."""
        ...

    def connection_changed(self, connected: bool, reconnected: bool) -> None:
        """The connection came up (*reconnected*: not the first time) or was lost."""
        ...


@attrs.define(eq=False)
class MqttAck:
    """Counts the subscribers a QoS 1/2 message went to; the last ``done()`` acknowledges it."""

    _connection: MqttConnection
    _generation: int
    _packet_id: int
    pending: int
    reason: int = 0

    async def done(self) -> None:
        """One subscriber handled the message (well or not): acknowledge it after the last."""
        self.pending -= 1
        if self.pending == 0:
            await self._connection._acknowledge(self._generation, self._packet_id, self.reason)


async def _no_ack() -> None:
    return None


@attrs.frozen
class MqttMessage:
    """A message the broker delivered: topic, payload bytes, QoS, retain flag and v5 properties.

    ``properties`` maps lower-case names (``content_type``, ``payload_format_indicator``,
    ``response_topic``, ``correlation_data``, ``message_expiry_interval``) to values;
    ``user_properties`` is the v5 user property dict.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Mapping[str, Any] = attrs.field(factory=dict)
    user_properties: Mapping[str, str] = attrs.field(factory=dict)
    duplicate: bool = False
    ack: MqttAck | None = attrs.field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8; :class:`MalformedPayload` (a ``ValueError``) if it is not."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = (
                f"the payload on topic {self.topic!r} is not UTF-8 text: byte 0x{self.payload[exc.start]:02x} "
                f"at offset {exc.start} ({len(self.payload)} bytes); expected UTF-8 text"
            )
            raise MalformedPayload(msg) from exc

    def json(self) -> Any:
        """The payload parsed as JSON; :class:`MalformedPayload` if it is not UTF-8 JSON."""
        import json  # noqa: PLC0415 - only for this call

        text = self.text
        try:
            return json.loads(text)
        except ValueError as exc:
            msg = f"the payload on topic {self.topic!r} is not JSON: {exc}"
            raise MalformedPayload(msg) from exc

    async def done(self) -> None:
        """Acknowledge this subscriber's share of a QoS 1/2 message (nothing for QoS 0)."""
        if self.ack is not None:
            await self.ack.done()


def parse_broker_url(url: str) -> tuple[str, int, str | None, str | None]:
    """``mqtt://[user[:password]@]host[:port]`` → ``(host, port, user, password)``; port 1883 by default."""
    if not isinstance(url, str):
        msg = f"a broker URL is a str like 'mqtt://127.0.0.1:1883', not {url!r}"
        raise TypeError(msg)
    parts = urlsplit(url)
    if parts.scheme in {"mqtts", "ssl", "wss", "ws"}:
        msg = f"broker URL {url!r}: {parts.scheme}:// is not supported yet; use mqtt://host:port (plain TCP)"
        raise ValueError(msg)
    if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
        msg = f"broker URL {url!r}: expected mqtt://host[:port] (e.g. mqtt://127.0.0.1:1883)"
        raise ValueError(msg)
    try:
        port = parts.port or 1883
    except ValueError as exc:
        msg = f"broker URL {url!r}: the port must be a number from 1 to 65535"
        raise ValueError(msg) from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, user, password


class _Machine(MQTTClientStateMachine):
    """moat-lib-mqtt's client state machine, acknowledging nothing itself, sending Maximum Packet Size."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id)
        self._auto_ack_publishes = False

    def connect_with(
        self, *, username: str | None, password: str | None, keep_alive: int, max_packet: int, receive_maximum: int
    ) -> None:
        self._out_require_state(MQTTClientState.DISCONNECTED)
        packet = MQTTConnectPacket(
            client_id=self.client_id, username=username, password=password, clean_start=True, keep_alive=keep_alive
        )
        packet.properties[PropertyType.MAXIMUM_PACKET_SIZE] = max_packet
        packet.properties[PropertyType.RECEIVE_MAXIMUM] = receive_maximum
        self.keep_alive = keep_alive
        packet.encode(self._out_buffer)
        self._state = MQTTClientState.CONNECTING


@attrs.define(eq=False)
class _Waiter:
    event: anyio.Event = attrs.field(factory=anyio.Event)
    reason: int = 0
    lost: bool = False


class _Lost(Exception):
    """The connection in use went away (internal: the operation is tried again)."""


def _props(packet: MQTTPublishPacket) -> dict[str, Any]:
    return {key.name.lower(): value for key, value in packet.properties.items()}


class MqttConnection:
    """One connection to an MQTT broker, kept up until closed (see the module's *Theory*).

    Use it as ``async with MqttConnection("mqtt://127.0.0.1:1883") as mqtt:`` (connected on
    entry, or :class:`BrokerUnavailable`/:class:`BrokerRefused`), then ``publish`` and
    ``subscribe``. ``state`` is its lifecycle state; :meth:`diagram` draws the lifecycle.
    """

    lifecycle = MQTT_LIFECYCLE

    def __init__(
        self,
        broker: str = "mqtt://127.0.0.1:1883",
        *,
        client_id: str | None = None,
        keep_alive: int = 30,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        connect_timeout: float = 5.0,
        publish_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        retry_first_connect: bool = False,
        receive_maximum: int = 100,
        max_queued: int = 10_000,
    ) -> None:
        self.host, self.port, self.username, self.password = parse_broker_url(broker)
        self.broker = f"mqtt://{self.host}:{self.port}"
        self.client_id = client_id or f"interlock-{secrets.token_hex(6)}"
        if not (isinstance(keep_alive, int) and 0 <= keep_alive <= 65535):
            msg = f"keep_alive is whole seconds from 0 (off) to 65535, not {keep_alive!r}"
            raise ValueError(msg)
        if not (isinstance(max_payload, int) and 0 < max_payload < 2**28):
            msg = f"max_payload is a number of bytes from 1 to 268435455, not {max_payload!r}"
            raise ValueError(msg)
        if not (0 < backoff[0] <= backoff[1]):
            msg = f"backoff is (first delay, longest delay) in seconds, 0 < first <= longest, not {backoff!r}"
            raise ValueError(msg)
        self.keep_alive = keep_alive
        self.max_payload = max_payload
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.backoff = backoff
        self.retry_first_connect = retry_first_connect
        if not (isinstance(receive_maximum, int) and 1 <= receive_maximum <= 65535):
            msg = f"receive_maximum is 1 to 65535 unacknowledged QoS 1/2 messages, not {receive_maximum!r}"
            raise ValueError(msg)
        self.receive_maximum = receive_maximum
        self.max_queued = max_queued
        self.dropped = 0
        """QoS 0 messages dropped because the subscribers did not keep up (``max_queued``)."""
        self._dropped_logged = -math.inf
        self._inbox: deque[tuple[int, MQTTPublishPacket]] = deque()
        self._inbox_ready = anyio.Event()
        self.state: str = CONNECTING
        self.reconnects = 0
        """How many times the connection came back after a loss."""
        self.transitions: list[tuple[str, str, str]] = []
        """Every move as ``(source, trigger, target)``, the latest 100."""
        self._machine: _Machine | None = None
        self._stream: anyio.abc.ByteStream | None = None
        self._write_lock = anyio.Lock()
        self._connected = anyio.Event()
        self._generation = 0
        self._waiters: dict[int, _Waiter] = {}
        self._qos2_in: set[int] = set()
        self._subscribers: list[Subscriber] = []
        self._filters: dict[str, dict[int, int]] = {}  # filter -> {id(subscriber): qos}
        self._closing = False
        self._conn_scope: anyio.CancelScope | None = None
        self._ping_pending = False
        self._tasks: anyio.abc.TaskGroup | None = None
        self._on_state: list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"<MqttConnection {self.broker} client_id={self.client_id} state={self.state}>"

    @classmethod
    def diagram(cls, fmt: str = "mermaid") -> str:
        """Draw the connection lifecycle (``mermaid``, ``dot`` or ``svg``)."""
        return render_mqtt_lifecycle(cls.__qualname__, fmt)

    # -- lifecycle ---------------------------------------------------------------------------

    def _move(self, trigger: str) -> None:
        source = self.state
        self.state = self.lifecycle.next(source, trigger)
        self.transitions.append((source, trigger, self.state))
        del self.transitions[:-100]
        if self.state != source:
            logger.info("%s: %s -> %s (%s)", self.broker, source, self.state, trigger)
            for callback in self._on_state:
                callback(self.state)

    def on_state(self, callback: Callable[[str], None]) -> None:
        """Call *callback(state)* on every change of state (from the connection's task; must not block)."""
        self._on_state.append(callback)

    async def __aenter__(self) -> MqttConnection:
        self._exit = anyio.create_task_group()
        self._tasks = await self._exit.__aenter__()
        try:
            await self._tasks.start(self._serve)
        except BaseException as exc:  # the first connect failed: raise its error alone, not in a group
            self._tasks.cancel_scope.cancel()
            with contextlib.suppress(BaseException):
                await self._exit.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
        assert self._tasks is not None
        await self._exit.__aexit__(None, None, None)

    async def close(self) -> None:
        """Send DISCONNECT (if connected) and stop; pending operations raise :class:`MqttUnavailable`."""
        if self._closing:
            return
        self._closing = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            if self.state == CONNECTED and self._machine is not None:
                self._machine.disconnect()
                await self._write()
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()
        if self.state != CLOSED:
            self._move("close")
        self._connected = anyio.Event()
        for waiter in self._waiters.values():
            waiter.lost = True
            waiter.event.set()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and keep the connection up until cancelled (``tasks.start(mqtt.serve)``)."""
        async with anyio.create_task_group() as self._tasks:
            await self._tasks.start(self._serve)
            task_status.started()

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self._tasks is not None
        self._tasks.start_soon(self._dispatch)  # in the connection's task group: cancelled with it
        await self._keep_connected(task_status)

    async def _keep_connected(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        attempt = 0
        started = False
        while not self._closing:
            try:
                stream = await self._open()
            except BrokerUnavailable:
                if not started and not self.retry_first_connect:
                    self._move("unreachable")
                    raise
                if self.state == CONNECTING:
                    self._move("retry")
                    started = True
                    task_status.started()
                else:
                    self._move("retry")
                await anyio.sleep(self._delay(attempt))
                attempt += 1
                continue
            try:
                connack = await self._handshake(stream)
                if connack is None:  # a refusal worth trying again (server busy …)
                    await anyio.sleep(self._delay(attempt))
                    attempt += 1
                    continue
                reconnected = self.state == RECONNECTING
                self._move("connack")
                if reconnected:
                    self.reconnects += 1
                attempt = 0
                await self._run_connected(stream, reconnected, task_status if not started else None)
                started = True
            finally:
                await self._drop_connection()
            if self._closing:
                return
            self._move("lost")
            for subscriber in list(self._subscribers):
                subscriber.connection_changed(False, False)

    def _delay(self, attempt: int) -> float:
        first, longest = self.backoff
        base = min(longest, first * 2.0 ** min(attempt, 30))
        return float(base * (0.75 + secrets.randbelow(500) / 1000))  # ±25 % jitter: restarted clients spread out

    async def _open(self) -> anyio.abc.ByteStream:
        try:
            with anyio.fail_after(self.connect_timeout):
                return await anyio.connect_tcp(self.host, self.port)
        except TimeoutError:
            reason = f"no TCP connection within connect_timeout ({self.connect_timeout:g} s)"
            raise BrokerUnavailable(self.broker, reason) from None
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc  # anyio wraps the last attempt's
            raise BrokerUnavailable(self.broker, cause.strerror or str(cause)) from exc

    async def _handshake(self, stream: anyio.abc.ByteStream) -> MQTTConnAckPacket | None:
        machine = _Machine(self.client_id)
        machine.connect_with(
            username=self.username,
            password=self.password,
            keep_alive=self.keep_alive,
            max_packet=self.max_payload + 4096,
            receive_maximum=self.receive_maximum,
        )
        self._stream = stream
        self._machine = machine
        try:
            with anyio.fail_after(self.connect_timeout):
                await stream.send(bytes(machine.get_outbound_data()))
                while True:
                    chunk = await stream.receive()
                    for packet in machine.feed_bytes(chunk):
                        if isinstance(packet, MQTTConnAckPacket):
                            return self._connack(packet)
        except (BrokerRefused, BrokerUnavailable):
            raise
        except TimeoutError:
            if self.state == CONNECTING and not self.retry_first_connect:
                self._move("unreachable")
                reason = f"no CONNACK within connect_timeout ({self.connect_timeout:g} s): is it an MQTT v5 broker?"
                raise BrokerUnavailable(self.broker, reason) from None
            self._move("retry")
            return None
        except MQTTException as exc:  # it answered, but not in MQTT v5
            if self.state == CONNECTING and not self.retry_first_connect:
                self._move("unreachable")
                reason = f"its answer to CONNECT is not MQTT v5 ({type(exc).__name__}: {exc}): is it an MQTT v5 broker?"
                raise BrokerUnavailable(self.broker, reason) from exc
            self._move("retry")
            return None
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            if self.state == CONNECTING and not self.retry_first_connect:
                self._move("unreachable")
                reason = f"the connection closed during the MQTT handshake ({exc!r}): is it an MQTT v5 broker?"
                raise BrokerUnavailable(self.broker, reason) from exc
            self._move("retry")
            return None

    def _connack(self, packet: MQTTConnAckPacket) -> MQTTConnAckPacket | None:
        code = int(packet.reason_code)
        if code == 0:
            return packet
        if code in _PERMANENT_REFUSALS:
            self._move("refused")
            raise BrokerRefused(self.broker, code)
        logger.warning("%s", BrokerRefused(self.broker, code))
        if self.state == CONNECTING and not self.retry_first_connect:
            self._move("refused")
            raise BrokerRefused(self.broker, code)
        self._move("retry")
        return None

    async def _run_connected(
        self, stream: anyio.abc.ByteStream, reconnected: bool, task_status: anyio.abc.TaskStatus[None] | None
    ) -> None:
        self._generation += 1
        self._qos2_in.clear()
        self._ping_pending = False
        async with anyio.create_task_group() as tasks:
            self._conn_scope = tasks.cancel_scope
            tasks.start_soon(self._read, stream, tasks.cancel_scope)
            if self.keep_alive:
                tasks.start_soon(self._keep_alive, tasks.cancel_scope)
            await self._resubscribe()
            self._connected.set()
            for subscriber in list(self._subscribers):
                subscriber.connection_changed(True, reconnected)
            if task_status is not None:
                task_status.started()

    async def _drop_connection(self) -> None:
        self._connected = anyio.Event()
        self._conn_scope = None
        stream, self._stream = self._stream, None
        self._machine = None
        for waiter in self._waiters.values():
            waiter.lost = True
            waiter.event.set()
        self._waiters.clear()
        if stream is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await stream.aclose()

    async def _keep_alive(self, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self.keep_alive)
            machine = self._machine
            if self._ping_pending or machine is None:
                logger.warning(
                    "%s: no PINGRESP within keep_alive (%d s): the connection is lost", self.broker, self.keep_alive
                )
                scope.cancel()
                return
            machine.ping()
            self._ping_pending = True
            await self._write()

    async def _write(self) -> None:
        machine, stream = self._machine, self._stream
        if machine is None or stream is None:
            raise _Lost
        async with self._write_lock:
            data = machine.get_outbound_data()
            if not data:
                return
            try:
                await stream.send(bytes(data))
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                if self._conn_scope is not None:
                    self._conn_scope.cancel()
                raise _Lost from exc

    # -- reading -----------------------------------------------------------------------------

    async def _read(self, stream: anyio.abc.ByteStream, scope: anyio.CancelScope) -> None:
        machine = self._machine
        assert machine is not None
        try:
            while True:
                chunk = await stream.receive()
                for packet in machine.feed_bytes(chunk):
                    await self._on_packet(packet)
                await self._write()
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, _Lost):
            pass
        except Exception:
            logger.exception("%s: protocol error; dropping the connection", self.broker)
        scope.cancel()

    async def _on_packet(self, packet: MQTTPacket) -> None:
        if isinstance(packet, MQTTPublishPacket):
            self._enqueue(packet)
        elif isinstance(packet, MQTTPublishReceivePacket):  # our QoS 2 publish: release it
            if self._machine is not None and packet.packet_id in self._waiters:
                self._machine.release_qos2_publish(packet.packet_id, ReasonCode.SUCCESS)
            if int(packet.reason_code) >= 0x80:
                self._settle(packet.packet_id, int(packet.reason_code))
        elif isinstance(packet, (MQTTPublishAckPacket, MQTTPublishCompletePacket, MQTTUnsubscribeAckPacket)):
            codes = getattr(packet, "reason_codes", None) or [getattr(packet, "reason_code", 0)]
            self._settle(packet.packet_id, max(int(c) for c in codes))
        elif isinstance(packet, MQTTSubscribeAckPacket):
            codes = [int(c) for c in packet.reason_codes]
            self._settle(packet.packet_id, max(codes) if any(c >= 0x80 for c in codes) else 0)
        elif isinstance(packet, MQTTPublishReleasePacket):
            self._qos2_in.discard(packet.packet_id)
        elif isinstance(packet, MQTTPingResponsePacket):
            self._ping_pending = False
        elif isinstance(packet, MQTTDisconnectPacket):
            logger.warning("%s sent DISCONNECT (reason 0x%02x)", self.broker, int(packet.reason_code))
            raise _Lost

    def _settle(self, packet_id: int, reason: int) -> None:
        waiter = self._waiters.pop(packet_id, None)
        if waiter is not None:
            waiter.reason = reason
            waiter.event.set()

    def _enqueue(self, packet: MQTTPublishPacket) -> None:
        """The reader's half: queue a PUBLISH for the dispatcher, never waiting (see *Theory*)."""
        packet_id = packet.packet_id
        if packet.qos == QoS.EXACTLY_ONCE and packet_id is not None:
            if packet_id in self._qos2_in:
                return  # a repeat before PUBREL: delivered once already
            self._qos2_in.add(packet_id)
        if packet.qos == QoS.AT_MOST_ONCE and len(self._inbox) >= self.max_queued:
            self.dropped += 1  # at most once: under overload, dropping is the contract
            now = anyio.current_time()
            if now - self._dropped_logged > 10:
                self._dropped_logged = now
                logger.warning(
                    "%s: the subscribers do not keep up: dropped QoS 0 messages (%d so far; max_queued=%d)",
                    self.broker, self.dropped, self.max_queued,
                )  # fmt: skip
            return
        self._inbox.append((self._generation, packet))
        self._inbox_ready.set()

    async def _dispatch(self) -> None:
        """The dispatcher's half: deliver queued messages in order, waiting for full mailboxes."""
        inbox = self._inbox
        while True:
            if not inbox:
                self._inbox_ready = anyio.Event()
                await self._inbox_ready.wait()
                continue
            generation, packet = inbox.popleft()
            await self._on_publish(packet, generation)

    async def _on_publish(self, packet: MQTTPublishPacket, generation: int) -> None:
        packet_id = packet.packet_id
        payload = packet.payload
        data = (
            payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else bytes(payload)
        )  # moat decodes declared text
        reason = 0
        if len(data) > self.max_payload:
            logger.warning(
                "%s: dropped a %d-byte payload on topic %r: over max_payload (%d bytes)",
                self.broker, len(data), packet.topic, self.max_payload,
            )  # fmt: skip
            reason = int(ReasonCode.PACKET_TOO_LARGE)
        elif isinstance(payload, str) or packet.properties.get(PropertyType.PAYLOAD_FORMAT_INDICATOR):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                logger.warning(
                    "%s: dropped a payload on topic %r declared UTF-8 text (payload format indicator 1) "
                    "that is not: byte 0x%02x at offset %d",
                    self.broker, packet.topic, data[exc.start], exc.start,
                )  # fmt: skip
                reason = int(ReasonCode.PAYLOAD_FORMAT_INVALID)
        targets = [s for s in self._subscribers if s.matches(packet.topic)] if not reason else []
        ack = None
        if packet.qos and packet_id is not None:
            ack = MqttAck(self, generation, packet_id, len(targets) + 1, reason)
        message = MqttMessage(
            topic=packet.topic,
            payload=data,
            qos=int(packet.qos),
            retain=packet.retain,
            properties=_props(packet),
            user_properties=dict(packet.user_properties),
            duplicate=packet.duplicate,
            ack=ack,
        )
        for subscriber in targets:
            await subscriber.deliver(message)
        if ack is not None:
            await ack.done()  # the connection's own share: a message with no taker is acknowledged here

    async def _acknowledge(self, generation: int, packet_id: int, reason: int) -> None:
        machine = self._machine
        if generation != self._generation or machine is None:
            return  # that connection is gone; its session with it
        try:
            machine.acknowledge_publish(packet_id, ReasonCode(reason))
            await self._write()
        except _Lost:
            pass
        except Exception:
            logger.debug("%s: could not acknowledge packet %d", self.broker, packet_id, exc_info=True)

    # -- operations --------------------------------------------------------------------------

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until ``connected`` (:class:`MqttUnavailable` past *timeout*, or if closed)."""
        limit = self.publish_timeout if timeout is None else timeout
        with anyio.move_on_after(limit):
            while not self._closing:
                if self.state == CONNECTED and self._machine is not None:
                    return
                await self._connected.wait()
        state = "closed" if self._closing or self.state == CLOSED else self.state
        msg = f"MQTT broker {self.broker}: not connected within {limit:g} s (the connection is {state})"
        raise MqttUnavailable(msg)

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
        user_properties: Mapping[str, str] | None = None,
    ) -> None:
        """Publish; with QoS 1/2 return once the broker acknowledged it (see the module's *Reconnect*).

        A str payload is sent as UTF-8 with the payload format indicator set (text).
        Raises ``ValueError`` for a bad topic, QoS or an oversize payload,
        :class:`MqttUnavailable` when not connected within ``publish_timeout``, and
        ``MqttUnavailable`` too when the broker refuses it (reason code ≥ 0x80).
        """
        check_topic(topic)
        if qos not in (0, 1, 2):
            msg = f"qos is 0, 1 or 2, not {qos!r}"
            raise ValueError(msg)
        props: dict[PropertyType, Any] = {}
        if isinstance(payload, str):
            data = payload.encode("utf-8")
            props[PropertyType.PAYLOAD_FORMAT_INDICATOR] = 1
        elif isinstance(payload, (bytes, bytearray, memoryview)):
            data = bytes(payload)
        else:
            msg = f"publish() takes a bytes or str payload, not {type(payload).__name__}"
            raise TypeError(msg)
        if len(data) > self.max_payload:
            msg = f"a {len(data)}-byte payload for topic {topic!r} is over max_payload ({self.max_payload} bytes)"
            raise ValueError(msg)
        for name, value in (properties or {}).items():
            try:
                props[PropertyType[name.upper()]] = value
            except KeyError:
                msg = f"unknown MQTT v5 property {name!r} (e.g. content_type, response_topic, message_expiry_interval)"
                raise ValueError(msg) from None
        deadline = anyio.current_time() + self.publish_timeout
        while True:
            await self.wait_connected(max(0.0, deadline - anyio.current_time()))
            machine = self._machine
            assert machine is not None
            packet_id = machine.publish(
                topic, data, qos=QoS(qos), retain=retain, properties=props, user_properties=dict(user_properties or {})
            )
            waiter = None
            if packet_id is not None:
                waiter = self._waiters[packet_id] = _Waiter()
            try:
                await self._write()
            except _Lost:
                continue
            if waiter is None:
                return
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                await waiter.event.wait()
            if not waiter.event.is_set():
                msg = f"MQTT broker {self.broker} did not acknowledge a QoS {qos} publish to {topic!r} in time"
                raise MqttUnavailable(msg)
            if waiter.lost:
                continue  # sent again on the next connection
            if waiter.reason >= 0x80:
                msg = f"MQTT broker {self.broker} refused a publish to {topic!r}: {ReasonCode(waiter.reason).name}"
                raise MqttUnavailable(msg)
            return

    def attach(self, subscriber: Subscriber) -> None:
        """Start delivering matching messages to *subscriber* (its filters are subscribed apart)."""
        self._subscribers.append(subscriber)

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to *subscriber*."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    async def subscribe(self, topic_filter: str, qos: int = 1, *, owner: object = None) -> None:
        """Subscribe *topic_filter* (``+``, ``#`` wildcards) at *qos*, counted per *owner*.

        Returns once the broker granted it (``MqttUnavailable`` if it refused or did
        not answer). Live filters are subscribed again after every reconnect.
        """
        check_topic_filter(topic_filter)
        if qos not in (0, 1, 2):
            msg = f"qos is 0, 1 or 2, not {qos!r}"
            raise ValueError(msg)
        owners = self._filters.setdefault(topic_filter, {})
        before = max(owners.values(), default=-1)
        owners[id(owner)] = qos
        if qos > before:
            await self._send_subscribe([topic_filter], max(owners.values()))

    async def unsubscribe(self, topic_filter: str, *, owner: object = None) -> None:
        """Drop *owner*'s use of *topic_filter*; the broker is told when nobody uses it."""
        owners = self._filters.get(topic_filter)
        if owners is None or owners.pop(id(owner), None) is None:
            return
        if owners:
            return
        del self._filters[topic_filter]
        if self.state != CONNECTED or self._machine is None:
            return  # not subscribed again on reconnect, which is all it takes
        packet_id = self._machine.unsubscribe([Pattern(topic_filter)])
        if packet_id is not None:
            await self._await_ack(packet_id, f"unsubscribe from {topic_filter!r}")

    async def _send_subscribe(self, filters: Iterable[str], qos: int) -> None:
        if self.state != CONNECTED or self._machine is None:
            return  # subscribed on (re)connection
        subscriptions = [Subscription(pattern=Pattern(f), max_qos=QoS(qos)) for f in filters]
        packet_id = self._machine.subscribe(subscriptions)
        await self._await_ack(packet_id, f"subscribe to {', '.join(map(repr, filters))}")

    async def _await_ack(self, packet_id: int, what: str) -> None:
        waiter = self._waiters[packet_id] = _Waiter()
        try:
            await self._write()
        except _Lost:
            return  # done again on reconnection
        with anyio.move_on_after(_SUBSCRIBE_TIMEOUT):
            await waiter.event.wait()
        if not waiter.event.is_set():
            msg = f"MQTT broker {self.broker} did not answer the {what} within {_SUBSCRIBE_TIMEOUT:g} s"
            raise MqttUnavailable(msg)
        if not waiter.lost and waiter.reason >= 0x80:
            msg = f"MQTT broker {self.broker} refused the {what}: reason code 0x{waiter.reason:02x}"
            raise MqttUnavailable(msg)

    async def _resubscribe(self) -> None:
        by_qos: dict[int, list[str]] = {}
        for topic_filter, owners in self._filters.items():
            by_qos.setdefault(max(owners.values()), []).append(topic_filter)
        for qos, filters in by_qos.items():  # subscribed before anyone hears the connection is up
            try:
                await self._send_subscribe(filters, qos)
            except MqttUnavailable as exc:
                logger.error("%s", exc)

    def matches_any(self, topic: str) -> bool:
        """Whether any live subscription filter matches *topic* (for tests and tools)."""
        return any(topic_matches(f, topic) for f in self._filters)
