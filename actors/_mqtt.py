"""MQTT actors: a broker connection serving actors with ``mqtt`` scopes, routed by topic filter.

Theory of operation
-------------------
:class:`MqttServer` is the protocol server (the counterpart of uvicorn for WebSockets). It
owns one :class:`~interlock.actors.mqtt.MqttConnection` and runs **one long-lived actor
per route**: an :class:`MqttRouter` maps topic filters to apps (``{"sensors/+/temp":
Sensors.as_asgi()}``), a bare actor app is routed by its class's ``topics``. Each runs
under the scope ``{"type": "mqtt", "broker": URL, "client_id": ..., "topics": [filter],
"channel_layer": layer}`` and sees these events from ``receive()``:

* ``{"type": "mqtt.connect", "reconnected": bool}`` whenever the connection comes up;
* ``{"type": "mqtt.message", "message": MqttMessage}``, one per matching PUBLISH, in order
  (a raw app must call ``await event["message"].done()`` once it handled a QoS 1/2 one:
  that acknowledges it; :class:`MqttActor` does it for you);
* ``{"type": "mqtt.lost"}`` when the connection is lost (it reconnects by itself);
* ``{"type": "mqtt.disconnect"}`` last, when the server stops.

and takes these through ``send()``: ``{"type": "mqtt.publish", "topic", "payload", "qos",
"retain", "properties"}`` (returns once acknowledged for QoS 1/2), ``{"type":
"mqtt.subscribe", "topic", "qos"}`` and ``{"type": "mqtt.unsubscribe", "topic"}`` (return
once the broker answered). Filters subscribed at run time add to the route's own.

**A message's failure is the message's**: a handler that raises is logged (the topic, the
traceback) and the actor goes on with the next message, which is acknowledged all the
same (a message that fails every time must not come back forever).
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import anyio
import anyio.abc
from interlock.layers import GroupLayer

from ._base import BaseActor, Flush, inline, library_class
from ._ending import Ending
from ._errors import StopActor
from ._mailbox import CLIENT, LAYER
from ._mqtt_client import MqttConnection, MqttMessage
from ._mqtt_topics import check_topic_filter, topic_matches
from ._routing import ProtocolTypeRouter
from ._types import LAYER_KEY, ASGIApp, Message, Receive, Scope

__all__ = ["MqttActor", "MqttRouter", "MqttServer", "run_mqtt"]

logger = logging.getLogger("interlock.actors.mqtt")

_ROUTE_QUEUE = 64  # events a route holds before the connection's reader waits for its actor


@library_class
class MqttActor(BaseActor):
    """An actor fed by an MQTT connection: override ``message``, and ``connected``/``lost`` if needed.

    Handlers may be ``def`` (run in a thread) or ``async def``. ``publish``,
    ``subscribe`` and ``unsubscribe`` return awaitables, as ``send`` does on a WebSocket
    actor: ``await self.publish(...)`` returns once a QoS 1/2 message was acknowledged.
    Layer messages reach methods marked :func:`~interlock.actors.handler`, so a group
    can feed the actor commands to publish (see :class:`~interlock.actors.mqtt.MqttBridge`).
    """

    scope_types: ClassVar[frozenset[str] | None] = frozenset({"mqtt"})
    topics: ClassVar[Sequence[str]] = ()
    """Topic filters the actor subscribes to when served without a router."""
    qos: ClassVar[int] = 1
    """The QoS the actor's filters are subscribed at (the broker may send lower)."""
    _needs_mailbox: ClassVar[bool] = True
    _terminal_events: ClassVar[frozenset[str]] = BaseActor._terminal_events | {"mqtt.disconnect"}

    @inline
    def connected(self, reconnected: bool) -> Any:
        """The connection to the broker is up (*reconnected*: after a loss). Default: nothing."""
        return None

    @inline
    def lost(self) -> Any:
        """The connection to the broker was lost; it reconnects by itself. Default: nothing."""
        return None

    @inline
    def message(self, message: MqttMessage) -> Any:
        """One message for the actor's filters. Default: log it at DEBUG; override."""
        logger.debug("%r got %r", self, message)
        return None

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> Flush:
        """Publish a message (a str payload goes as UTF-8 text); awaiting returns once it is acknowledged."""
        return self._emit(
            {
                "type": "mqtt.publish",
                "topic": topic,
                "payload": payload,
                "qos": qos,
                "retain": retain,
                "properties": dict(properties or {}),
            }
        )

    def subscribe(self, topic_filter: str, qos: int | None = None) -> Flush:
        """Subscribe one more filter at run time (``+``/``#`` wildcards); awaiting waits for the broker."""
        return self._emit({"type": "mqtt.subscribe", "topic": topic_filter, "qos": self.qos if qos is None else qos})

    def unsubscribe(self, topic_filter: str) -> Flush:
        """Stop receiving a filter subscribed before (the route's own or one added at run time)."""
        return self._emit({"type": "mqtt.unsubscribe", "topic": topic_filter})

    async def _started(self) -> None:
        await self._join_groups()

    async def _on_client_event(self, message: Message) -> bool:
        kind = message.get("type")
        if kind == "mqtt.message":
            received: MqttMessage = message["message"]
            try:
                await self._call("message", received)
            finally:
                await received.done()
        elif kind == "mqtt.connect":
            await self._call("connected", bool(message.get("reconnected")))
        elif kind == "mqtt.lost":
            await self._call("lost")
        elif kind == "mqtt.disconnect":
            await self._end(Ending("shutdown", 1001))
            return True
        return False

    async def _handler_failed(self, exc: Exception, kind: int, payload: Any) -> bool:
        """A handler's failure is the message's: log it and go on (False)."""
        if kind not in (CLIENT, LAYER):
            return await super()._handler_failed(exc, kind, payload)
        self._outbox.clear()
        inner = payload.get("message") if isinstance(payload, Mapping) else None
        what = f"a message on topic {inner.topic!r}" if isinstance(inner, MqttMessage) else repr(payload.get("type"))
        logger.error("%r failed on %s and goes on serving: %s: %s", self, what, type(exc).__name__, exc, exc_info=exc)
        return False

    def __repr__(self) -> str:
        scope = getattr(self, "scope", None) or {}
        return f"<{type(self).__qualname__} topics={list(scope.get('topics', ()))}>"


class MqttRouter:
    """Route MQTT topic filters to apps: ``MqttRouter({"sensors/+/temp": Sensors.as_asgi()})``.

    Each filter gets one long-lived instance of its app. A message matching several
    filters reaches each of their apps. *channel_layer* is given to every app's scope.
    """

    def __init__(self, routes: Mapping[str, ASGIApp], *, channel_layer: GroupLayer | None = None) -> None:
        if not isinstance(routes, Mapping) or not routes:
            msg = "MqttRouter takes a non-empty dict of topic filter -> app, e.g. {'sensors/#': Sensors.as_asgi()}"
            raise TypeError(msg)
        for topic_filter, app in routes.items():
            check_topic_filter(topic_filter)
            if not callable(app):
                msg = f"MqttRouter: the app for {topic_filter!r} is {app!r}, not an ASGI app"
                raise TypeError(msg)
        self.routes = dict(routes)
        self.channel_layer = channel_layer

    async def __call__(self, scope: Scope, receive: Receive, send: Any) -> None:
        """Serve a scope with the app its first topic filter names."""
        await self.routes[scope["topics"][0]](scope, receive, send)


class _Route:
    """One route's side of the server: its filters, its events' queue, its ``send``."""

    def __init__(self, server: MqttServer, topic_filters: tuple[str, ...], app: ASGIApp, qos: int) -> None:
        self.server = server
        self.filters = dict.fromkeys(topic_filters, qos)
        self.topics = list(topic_filters)
        self.app = app
        self.primary = ", ".join(topic_filters)
        self._send, self._receive = anyio.create_memory_object_stream[Message](_ROUTE_QUEUE)

    def matches(self, topic: str) -> bool:
        return any(topic_matches(f, topic) for f in self.filters)

    async def deliver(self, message: MqttMessage) -> None:
        try:
            await self._send.send({"type": "mqtt.message", "message": message})
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            await message.done()

    def connection_changed(self, connected: bool, reconnected: bool) -> None:
        event = {"type": "mqtt.connect", "reconnected": reconnected} if connected else {"type": "mqtt.lost"}
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:  # the actor is busy with messages: news of the connection can wait for it
            self.server._spawn(self._send.send, event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def receive(self) -> Message:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return {"type": "mqtt.disconnect"}

    async def send(self, message: Message) -> None:
        connection = self.server.connection
        kind = message.get("type")
        if kind == "mqtt.publish":
            await connection.publish(
                message["topic"],
                message["payload"],
                qos=message.get("qos", 0),
                retain=message.get("retain", False),
                properties=message.get("properties"),
            )
        elif kind == "mqtt.subscribe":
            topic_filter = check_topic_filter(message["topic"])
            qos = message.get("qos", 1)
            self.filters[topic_filter] = qos
            await connection.subscribe(topic_filter, qos, owner=self)
        elif kind == "mqtt.unsubscribe":
            topic_filter = message["topic"]
            if self.filters.pop(topic_filter, None) is not None:
                await connection.unsubscribe(topic_filter, owner=self)
        else:
            msg = f"an MQTT app sends mqtt.publish, mqtt.subscribe or mqtt.unsubscribe, not {kind!r}"
            raise ValueError(msg)

    def close(self) -> None:
        self._send.close()

    def release(self) -> None:
        """The app ended: drop what its queue still holds."""
        self._send.close()
        self._receive.close()


def _routes_of(app: ASGIApp) -> tuple[dict[tuple[str, ...], ASGIApp], GroupLayer | None]:
    layer = None
    if isinstance(app, ProtocolTypeRouter):
        layer = app.channel_layer
        inner = app.application_mapping.get("mqtt")
        if inner is None:
            msg = f"the ProtocolTypeRouter has no 'mqtt' application; it routes {sorted(app.application_mapping)!r}"
            raise ValueError(msg)
        app = inner
    if isinstance(app, MqttRouter):
        return {(topic,): route for topic, route in app.routes.items()}, app.channel_layer or layer
    actor_class = getattr(app, "actor_class", None)
    topics = getattr(actor_class, "topics", ())
    if not topics:
        msg = (
            f"{app!r} names no topic: serve an MqttRouter({{'topic/filter': app}}) "
            "or an MqttActor whose class sets topics = ('sensors/#', ...)"
        )
        raise ValueError(msg)
    initkwargs = getattr(app, "initkwargs", {})
    # One actor for all its class's filters: one instance, as the class describes one consumer.
    return {tuple(check_topic_filter(t) for t in topics): app}, initkwargs.get("channel_layer") or layer


class MqttServer:
    """Serve an MQTT app: an :class:`MqttRouter`, an :class:`MqttActor` app, or a ``ProtocolTypeRouter`` with it.

    ``await server.serve()`` connects (raising ``BrokerUnavailable``/``BrokerRefused`` if
    the first connect fails), starts one actor per route and runs until cancelled.
    Keyword options go to :class:`~interlock.actors.mqtt.MqttConnection`.
    """

    def __init__(
        self,
        app: ASGIApp,
        broker: str = "mqtt://127.0.0.1:1883",
        *,
        channel_layer: GroupLayer | None = None,
        connection: MqttConnection | None = None,
        **options: Any,
    ) -> None:
        routes, layer = _routes_of(app)
        self.channel_layer = channel_layer or layer
        self.connection = connection if connection is not None else MqttConnection(broker, **options)
        self._routes = routes
        self._tasks: anyio.abc.TaskGroup | None = None

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._tasks is not None:
            self._tasks.start_soon(fn, *args)

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, run the routes' actors, serve until cancelled (then each gets ``mqtt.disconnect``)."""
        connection = self.connection
        qos = 1
        routes = []
        for topic_filters, app in self._routes.items():
            actor_class = getattr(app, "actor_class", None)
            route = _Route(self, topic_filters, app, getattr(actor_class, "qos", qos))
            routes.append(route)
            connection.attach(route)
            for topic_filter, route_qos in route.filters.items():
                await connection.subscribe(topic_filter, route_qos, owner=route)
        try:
            async with connection, anyio.create_task_group() as tasks:
                self._tasks = tasks
                for route in routes:
                    tasks.start_soon(self._run_route, route)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            for route in routes:
                route.release()
            self._tasks = None

    async def _run_route(self, route: _Route) -> None:
        scope: Scope = {
            "type": "mqtt",
            "broker": self.connection.broker,
            "client_id": self.connection.client_id,
            "topics": list(route.topics),
        }
        if self.channel_layer is not None:
            scope[LAYER_KEY] = self.channel_layer
        try:
            await route.app(scope, route.receive, route.send)
        except StopActor:
            logger.info("the actor for %r stopped (StopActor); its filters are unsubscribed", route.primary)
        except Exception:
            logger.exception(
                "the app for %r failed; its filters are unsubscribed, the other routes go on", route.primary
            )
        finally:
            self.connection.detach(route)
            route.release()
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                for topic_filter in list(route.filters):
                    try:
                        await self.connection.unsubscribe(topic_filter, owner=route)
                    except Exception:
                        logger.debug("could not unsubscribe %r", topic_filter, exc_info=True)


async def _until_signalled(scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for received in signals:
            logger.info("mqtt: %s received, stopping", signal.Signals(received).name)
            scope.cancel()
            return


async def _serve_until_signalled(server: MqttServer) -> None:
    async with anyio.create_task_group() as tasks:
        await tasks.start(_until_signalled, tasks.cancel_scope)
        await tasks.start(server.serve)
        logger.info(
            "mqtt: serving %s on %s as %s",
            "; ".join(", ".join(filters) for filters in server._routes),
            server.connection.broker,
            server.connection.client_id,
        )
    layer = server.channel_layer
    close = getattr(layer, "close", None)
    if close is not None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await close()


def run_mqtt(server: MqttServer, *, backend: str = "asyncio") -> int:
    """Serve until SIGINT/SIGTERM (exit status 0); a broker that cannot be reached or refuses: logged, 1."""
    from ._mqtt_client import BrokerRefused, BrokerUnavailable  # noqa: PLC0415

    try:
        anyio.run(functools.partial(_serve_until_signalled, server), backend=backend)
    except (BrokerUnavailable, BrokerRefused) as exc:
        logger.error("mqtt: %s", exc)
        return 1
    except BaseExceptionGroup as group:
        matched, _ = group.split((BrokerUnavailable, BrokerRefused))
        if matched is None:
            raise
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        logger.error("mqtt: %s", first)
        return 1
    return 0
