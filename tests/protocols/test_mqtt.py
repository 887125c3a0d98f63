"""MQTT actors against a real Mosquitto (the shared one on 1883, or one of the test's own), on asyncio and trio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from interlock.actors import ASGIApp, handler
from interlock.actors.mqtt import (
    CLOSED,
    CONNECTED,
    RECONNECTING,
    BrokerRefused,
    BrokerUnavailable,
    MalformedPayload,
    MqttActor,
    MqttConnection,
    MqttMessage,
    MqttRouter,
    MqttServer,
    check_topic,
    check_topic_filter,
    parse_broker_url,
    topic_matches,
)
from interlock.layers import InMemoryChannelLayer

from .support import BROKER, mosquitto, needs_broker, needs_mosquitto, unique_prefix, wait_for

# -- topics, without a broker -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("+/b/#", "x/b", True),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a/+/c", "a//c", True),
        ("a/b", "a/c", False),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, *, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("a/#/b", "'#' must be a whole level"),
        ("a/b#", "'#' must be a whole level"),
        ("a+/b", r"'\+' must be a whole"),
        ("", "empty"),
    ],
)
def test_bad_filters_are_named(bad: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_topic_filter(bad)


def test_wildcards_cannot_be_published_to() -> None:
    with pytest.raises(ValueError, match="wildcards, for subscriptions only"):
        check_topic("sensors/+/temp")
    with pytest.raises(TypeError, match="is a str"):
        check_topic(b"bytes")


def test_broker_urls() -> None:
    assert parse_broker_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, None, None)
    assert parse_broker_url("mqtt://u:p%40ss@h:1884") == ("h", 1884, "u", "p@ss")
    with pytest.raises(ValueError, match="not supported yet"):
        parse_broker_url("mqtts://h")
    with pytest.raises(ValueError, match=r"expected mqtt://host\[:port\]"):
        parse_broker_url("http://h")


def test_message_text_names_the_topic() -> None:
    message = MqttMessage("t/1", b"ok \xff")
    with pytest.raises(MalformedPayload, match=r"payload on topic 't/1' is not UTF-8 text: byte 0xff at offset 3"):
        _ = message.text
    with pytest.raises(MalformedPayload, match="is not JSON"):
        MqttMessage("t/1", b"{").json()
    assert MqttMessage("t", b'{"a": 1}').json() == {"a": 1}


def test_lifecycle_diagram() -> None:
    text = MqttConnection.diagram()
    assert "connecting --> connected: CONNACK success" in text
    assert "connected --> reconnecting: connection lost" in text
    assert "reconnecting --> reconnecting: attempt failed, back off" in text
    assert 'digraph "MqttConnection"' in MqttConnection.diagram("dot")


# -- actors against the broker -----------------------------------------------------------------


class Recorder(MqttActor):
    """Records what it sees; ``boom`` raises; ``unsub`` drops the extra filter; ``echo`` publishes back."""

    qos = 2
    record: list[Any] | None = None
    extra: str | None = None

    async def connected(self, reconnected: bool) -> None:
        assert self.record is not None
        self.record.append(("connect", reconnected))
        if self.extra and not reconnected:
            await self.subscribe(self.extra, qos=1)

    async def lost(self) -> None:
        assert self.record is not None
        self.record.append(("lost",))

    async def message(self, message: MqttMessage) -> None:
        assert self.record is not None
        if message.payload == b"boom":
            raise RuntimeError("boom")
        if message.payload == b"unsub" and self.extra:
            await self.unsubscribe(self.extra)
        if message.payload.startswith(b"echo "):
            await self.publish(message.topic + "/echo", message.payload[5:], qos=1)
        self.record.append(message)

    @handler
    async def relay(self, event: dict[str, Any]) -> None:
        await self.publish(event["topic"], event["text"], qos=event.get("qos", 1))


def messages(record: list[Any]) -> list[MqttMessage]:
    return [item for item in record if isinstance(item, MqttMessage)]


@asynccontextmanager
async def serving(app: ASGIApp, broker: str = BROKER, **options: Any) -> AsyncIterator[MqttServer]:
    server = MqttServer(app, broker, **options)
    async with anyio.create_task_group() as tasks:
        await tasks.start(server.serve)
        yield server
        tasks.cancel_scope.cancel()


@needs_broker
async def test_message_fields_and_publishing_back() -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    app = MqttRouter({f"{prefix}/in/+": Recorder.as_asgi(record=record)})
    async with serving(app), MqttConnection(BROKER) as peer:
        got: list[MqttMessage] = []

        class Collect:
            def matches(self, topic: str) -> bool:
                return topic.startswith(f"{prefix}/in/x/")

            async def deliver(self, message: MqttMessage) -> None:
                got.append(message)
                await message.done()

            def connection_changed(self, connected: bool, reconnected: bool) -> None:
                pass

        peer.attach(Collect())
        await peer.subscribe(f"{prefix}/in/x/#", 1)
        await peer.publish(f"{prefix}/in/x", "héllo", qos=1, retain=False, properties={"content_type": "text/plain"})
        await peer.publish(f"{prefix}/in/x", "echo pong", qos=1)
        await peer.publish(f"{prefix}/other", "not routed", qos=1)
        await wait_for(lambda: len(messages(record)) == 2 and len(got) == 1, what="two messages and one echo")
        first = messages(record)[0]
        assert (first.topic, first.text, first.qos, first.retain) == (f"{prefix}/in/x", "héllo", 1, False)
        assert first.properties["content_type"] == "text/plain"
        assert first.properties["payload_format_indicator"]
        assert (got[0].topic, got[0].payload, got[0].qos) == (f"{prefix}/in/x/echo", b"pong", 1)
    assert record[0] == ("connect", False)


@needs_broker
async def test_qos_1_and_2_each_handled_once_in_order() -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    async with serving(MqttRouter({f"{prefix}/#": Recorder.as_asgi(record=record)})), MqttConnection(BROKER) as peer:
        for n in range(40):
            await peer.publish(f"{prefix}/q", str(n), qos=1 + n % 2)
        await wait_for(lambda: len(messages(record)) >= 40, what="40 messages")
        await anyio.sleep(0.3)  # nothing more comes: no repeats
    got = messages(record)
    assert [m.text for m in got] == [str(n) for n in range(40)]
    assert [m.qos for m in got] == [1 + n % 2 for n in range(40)]


@needs_broker
async def test_qos_1_is_acknowledged_only_once_handled() -> None:
    """A subscriber that never says done() holds the broker's in-flight window: nothing past it arrives."""
    prefix = unique_prefix()
    held: list[MqttMessage] = []

    class Holder:
        def matches(self, topic: str) -> bool:
            return topic.startswith(prefix)

        async def deliver(self, message: MqttMessage) -> None:
            held.append(message)

        def connection_changed(self, connected: bool, reconnected: bool) -> None:
            pass

    async with MqttConnection(BROKER, receive_maximum=10) as subscriber, MqttConnection(BROKER) as peer:
        subscriber.attach(Holder())
        await subscriber.subscribe(f"{prefix}/#", 1)
        for n in range(30):
            await peer.publish(f"{prefix}/m", str(n), qos=1)
        await wait_for(lambda: len(held) >= 10, what="the first 10 (receive_maximum)")
        await anyio.sleep(0.5)
        assert len(held) == 10  # the broker waits for acknowledgements
        for message in list(held):
            await message.done()
        await wait_for(lambda: len(held) == 30, what="the rest once the first were acknowledged")
        for message in held[10:]:
            await message.done()
    assert [m.text for m in held] == [str(n) for n in range(30)]


@needs_broker
async def test_runtime_subscribe_and_unsubscribe() -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    app = Recorder.as_asgi(record=record, extra=f"{prefix}/extra/#")
    async with serving(MqttRouter({f"{prefix}/main": app})), MqttConnection(BROKER) as peer:
        await wait_for(lambda: ("connect", False) in record, what="the connect event")
        await anyio.sleep(0.2)  # the run-time subscribe goes out from connected()
        await peer.publish(f"{prefix}/extra/1", "a", qos=1)
        await wait_for(lambda: len(messages(record)) == 1, what="a message on the run-time filter")
        await peer.publish(f"{prefix}/main", "unsub", qos=1)
        await wait_for(lambda: len(messages(record)) == 2, what="the unsub message")
        await anyio.sleep(0.2)
        await peer.publish(f"{prefix}/extra/2", "b", qos=1)
        await peer.publish(f"{prefix}/main", "last", qos=1)
        await wait_for(lambda: len(messages(record)) == 3, what="the last message")
    assert [m.text for m in messages(record)] == ["a", "unsub", "last"]


@needs_broker
async def test_a_failing_handler_is_logged_and_the_actor_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    async with serving(MqttRouter({f"{prefix}/#": Recorder.as_asgi(record=record)})), MqttConnection(BROKER) as peer:
        await peer.publish(f"{prefix}/x", "boom", qos=1)
        await peer.publish(f"{prefix}/x", "after", qos=1)
        await wait_for(lambda: len(messages(record)) == 1, what="the message after the failure")
    assert messages(record)[0].text == "after"
    failures = [r for r in caplog.records if "failed on a message on topic" in r.getMessage()]
    assert failures
    assert f"{prefix}/x" in failures[0].getMessage()


@needs_broker
async def test_text_payload_that_is_not_utf8_is_refused_and_nothing_else_is(caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    async with serving(MqttRouter({f"{prefix}/#": Recorder.as_asgi(record=record)})), MqttConnection(BROKER) as peer:
        await peer.publish(f"{prefix}/t", b"\xff\xfe", qos=1, properties={"payload_format_indicator": 1})
        await peer.publish(f"{prefix}/t", b"\xff binary is fine undeclared", qos=1)
        await wait_for(lambda: len(messages(record)) == 1, what="the undeclared binary message")
    assert messages(record)[0].payload.startswith(b"\xff binary")
    assert any("declared UTF-8 text" in r.getMessage() and "0xff at offset 0" in r.getMessage() for r in caplog.records)


@needs_broker
async def test_oversize_payloads(caplog: pytest.LogCaptureFixture) -> None:
    prefix = unique_prefix()
    record: list[Any] = []
    app = MqttRouter({f"{prefix}/#": Recorder.as_asgi(record=record)})
    async with serving(app, max_payload=1000), MqttConnection(BROKER) as peer:
        await peer.publish(f"{prefix}/big", b"x" * 50_000, qos=1)  # the broker never sends it: Maximum Packet Size
        await peer.publish(f"{prefix}/big", b"y" * 900, qos=1)
        await wait_for(lambda: len(messages(record)) == 1, what="the small message")
        assert messages(record)[0].payload == b"y" * 900
        small = MqttConnection(BROKER, max_payload=10)
        with pytest.raises(ValueError, match=r"a 11-byte payload for topic '.*' is over max_payload \(10 bytes\)"):
            await small.publish(f"{prefix}/big", b"z" * 11)


@pytest.mark.parametrize("retry", [False])
async def test_an_unreachable_broker_is_named(retry: bool) -> None:
    with pytest.raises(BrokerUnavailable, match=r"MQTT broker mqtt://127.0.0.1:1 is unavailable: .*") as caught:
        async with MqttConnection("mqtt://127.0.0.1:1", retry_first_connect=retry):
            pass
    assert caught.value.broker == "mqtt://127.0.0.1:1"


@needs_mosquitto
async def test_a_broker_that_refuses_the_connection_is_named(tmp_path: Path) -> None:
    with mosquitto(tmp_path, anonymous=False) as broker:
        connection = MqttConnection(broker.url)
        with pytest.raises(BrokerRefused, match=r"refused the connection: not authorized \(reason code 0x87\)"):
            async with connection:
                pass
        assert connection.state == CLOSED
        server = MqttServer(MqttRouter({"a/#": Recorder.as_asgi(record=[])}), broker.url)
        with pytest.raises(BrokerRefused):
            await server.serve()


@needs_mosquitto
async def test_reconnects_and_resubscribes_when_the_broker_restarts(tmp_path: Path) -> None:
    record: list[Any] = []
    with mosquitto(tmp_path) as broker:
        app = MqttRouter({"plant/#": Recorder.as_asgi(record=record)})
        async with serving(app, broker.url, keep_alive=2, backoff=(0.05, 0.5)) as server:
            connection = server.connection
            async with MqttConnection(broker.url) as peer:
                await peer.publish("plant/a", "before", qos=1)
                await wait_for(lambda: len(messages(record)) == 1, what="the message before the restart")
            broker.stop()
            await wait_for(lambda: connection.state == RECONNECTING, what="reconnecting")
            await anyio.sleep(0.5)  # a few failed attempts, backing off
            broker.start()
            await wait_for(lambda: connection.state == CONNECTED, timeout=10, what="connected again")
            async with MqttConnection(broker.url) as peer:
                await peer.publish("plant/b", "after", qos=2)
                await wait_for(lambda: len(messages(record)) == 2, what="the message after the restart")
    assert [m.text for m in messages(record)] == ["before", "after"]
    assert record[0] == ("connect", False)
    assert ("lost",) in record
    assert ("connect", True) in record
    triggers = [trigger for _, trigger, _ in connection.transitions]
    assert triggers[0] == "connack"
    assert "lost" in triggers
    assert "retry" in triggers
    assert triggers[-2:] == ["connack", "close"]
    assert connection.reconnects == 1


@needs_mosquitto
async def test_a_publish_made_while_reconnecting_goes_out_once_connected(tmp_path: Path) -> None:
    with mosquitto(tmp_path) as broker:
        got: list[MqttMessage] = []

        class Collect:
            def matches(self, topic: str) -> bool:
                return True

            async def deliver(self, message: MqttMessage) -> None:
                got.append(message)
                await message.done()

            def connection_changed(self, connected: bool, reconnected: bool) -> None:
                pass

        async with MqttConnection(broker.url, backoff=(0.05, 0.2), publish_timeout=10) as sender:
            broker.stop()
            await wait_for(lambda: sender.state == RECONNECTING, what="reconnecting")
            async with anyio.create_task_group() as tasks:
                # retained: the watcher below may subscribe after the sender is back and published
                tasks.start_soon(lambda: sender.publish("late/1", "kept", qos=1, retain=True))
                await anyio.sleep(0.3)
                broker.start()
                async with MqttConnection(broker.url) as watcher:
                    watcher.attach(Collect())
                    await watcher.subscribe("late/#", 1)
                    await wait_for(lambda: len(got) == 1, timeout=10, what="the publish made while reconnecting")
    assert got[0].text == "kept"


@needs_broker
async def test_layer_messages_reach_the_actor_and_publish(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    prefix = unique_prefix()
    layer = InMemoryChannelLayer()
    record: list[Any] = []
    app = MqttRouter({f"{prefix}/#": Recorder.as_asgi(record=record, groups=["relay"])}, channel_layer=layer)
    async with serving(app):
        await wait_for(lambda: ("connect", False) in record, what="the connect event")
        await layer.group_send("relay", {"type": "relay", "topic": f"{prefix}/from-layer", "text": "hi"})
        await wait_for(lambda: len(messages(record)) == 1, what="the relayed message back from the broker")
    assert messages(record)[0].topic == f"{prefix}/from-layer"


def test_routes_need_topics() -> None:
    class NoTopics(MqttActor):
        pass

    with pytest.raises(ValueError, match="names no topic"):
        MqttServer(NoTopics.as_asgi())
    with pytest.raises(ValueError, match="'#' must be a whole level"):
        MqttRouter({"a/#/b": NoTopics.as_asgi()})


@needs_broker
async def test_an_actor_publishing_under_a_flood_never_deadlocks() -> None:
    """Each message makes the actor await a QoS 1 publish while more wait behind a two-slot mailbox."""
    prefix = unique_prefix()
    record: list[Any] = []
    app = MqttRouter({f"{prefix}/in": Recorder.as_asgi(record=record, mailbox_size=2)})
    async with serving(app), MqttConnection(BROKER) as peer:
        with anyio.fail_after(20):
            for n in range(200):
                await peer.publish(f"{prefix}/in", f"echo {n}", qos=1)
            await wait_for(lambda: len(messages(record)) == 200, timeout=15, what="all 200 handled")


def test_the_docs_diagram_is_the_generated_one() -> None:
    """docs/protocols.md shows what ``interlock diagram interlock.actors.mqtt:MqttConnection`` prints."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "protocols.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{MqttConnection.diagram()}```" in page


async def test_a_server_that_is_not_an_mqtt_broker_is_named() -> None:
    async def http_like(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await anyio.sleep(1)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, http_like)
        with pytest.raises(BrokerUnavailable, match=r"is unavailable: .*is it an MQTT v5 broker\?"):
            async with MqttConnection(f"mqtt://127.0.0.1:{port}", connect_timeout=2):
                pass
        tasks.cancel_scope.cancel()
