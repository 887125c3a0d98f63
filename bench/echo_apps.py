"""The three WebSocket echo ASGI apps compared by ``bench/echo.py``.

Every app is exposed as a zero-argument *factory* (``make_raw``,
``make_interlock``, ``make_seed``, ``make_channels`` …) that uvicorn calls with ``--factory``.
Imports and configuration happen inside the factory, so an app whose
dependencies are missing (e.g. ``interlock`` not installed yet) fails on its
own at server start-up and the runner skips it, while the other apps still run.

All apps do the same work: accept the connection, send every text or
bytes frame straight back unchanged, and return on disconnect.

Profiling (``bench/echo.py --profile DIR``): when ``ECHO_PROFILE`` names a file, the
factory installs two signal handlers in the server: ``SIGUSR1`` starts a
``cProfile.Profile`` on the loop's thread, ``SIGUSR2`` stops it and writes the stats
to that file, and the garbage collector's counters (``gc.get_stats()`` at start and
stop) to the same name plus ``.gc.json``. So only the load rounds are profiled, not
start-up, imports or handshakes.
"""

# Imports live inside the factories on purpose (see above).
# ruff: noqa: PLC0415

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# What a factory hands to uvicorn: any ASGI 3 callable. Deliberately loose so
# that framework-specific ASGI signatures (interlock, channels) fit it.
AnyASGIApp = Callable[..., Awaitable[None]]


# --------------------------------------------------------------------------
# profiling on signal (see the module's docstring)
# --------------------------------------------------------------------------


def _profiled(app: AnyASGIApp) -> AnyASGIApp:
    """*app*, with SIGUSR1/SIGUSR2 starting and stopping a profile if ``ECHO_PROFILE`` is set."""
    path = os.environ.get("ECHO_PROFILE")
    if not path:
        return app
    profile = cProfile.Profile()
    gc_at: dict[str, Any] = {}

    def start(signum: int, frame: FrameType | None) -> None:
        gc_at["start"] = gc.get_stats()
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        gc_at["stop"] = gc.get_stats()
        gc_at["threshold"] = gc.get_threshold()
        gc_at["objects"] = len(gc.get_objects())
        profile.dump_stats(path)
        with open(path + ".gc.json", "w", encoding="utf-8") as out:
            json.dump(gc_at, out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return app


# --------------------------------------------------------------------------
# (1) raw ASGI
# --------------------------------------------------------------------------


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Plain ASGI 3 WebSocket echo: the baseline every other app is compared to."""
    if scope["type"] == "websocket":
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text: str | None = message.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes")})
            elif kind == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif kind == "websocket.disconnect":
                return
    elif scope["type"] == "lifespan":  # unused (--lifespan off), kept for completeness
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def make_raw() -> AnyASGIApp:
    """uvicorn factory for the raw ASGI echo app."""
    return _profiled(raw_app)


# --------------------------------------------------------------------------
# (2) interlock actor
# --------------------------------------------------------------------------


def make_interlock() -> AnyASGIApp:
    """uvicorn factory for the interlock ``WebsocketActor`` echo app.

    Raises ``ImportError`` (and so makes the server exit at start-up) when
    ``interlock`` is not importable; the runner then skips this app.
    """
    from interlock.actors import WebsocketActor

    class Echo(WebsocketActor):
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    app: AnyASGIApp = Echo.as_asgi()
    return _profiled(app)


def make_seed() -> AnyASGIApp:
    """uvicorn factory for a consumer written like the seed's: Channels' names from
    ``interlock.actors.compat``, an ``async def connect()`` that awaits ``accept()``."""
    from interlock.actors.compat import AsyncWebsocketConsumer

    class SeedEcho(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    app: AnyASGIApp = SeedEcho.as_asgi()
    return _profiled(app)


def make_dsl() -> AnyASGIApp:
    """uvicorn factory for the interlock DSL echo: an internal transition per message."""
    from interlock.actors import StateActor
    from interlock.dsl import Frame, on

    class DslEcho(StateActor):
        @on.client("receive")
        async def echo(self, event: Frame) -> None:
            await self.send(text_data=event.text, bytes_data=event.bytes)

    app: AnyASGIApp = DslEcho.as_asgi()
    return _profiled(app)


def make_json() -> AnyASGIApp:
    """uvicorn factory for the interlock ``JsonWebsocketActor`` echo: decode, encode again."""
    from interlock.actors import JsonWebsocketActor

    class JsonEcho(JsonWebsocketActor):
        async def receive_json(self, content: Any) -> None:
            await self.send_json(content)

    app: AnyASGIApp = JsonEcho.as_asgi()
    return _profiled(app)


def make_jsondsl() -> AnyASGIApp:
    """uvicorn factory for the DSL's ``JsonStateActor`` echo: the client event ``echo``."""
    from interlock.actors import JsonStateActor
    from interlock.dsl import on

    class JsonDslEcho(JsonStateActor):
        @on.client("echo")
        async def echo(self, event: dict[str, Any]) -> None:
            await self.send_json(event)

    app: AnyASGIApp = JsonDslEcho.as_asgi()
    return _profiled(app)


# --------------------------------------------------------------------------
# (3) Django Channels consumer
# --------------------------------------------------------------------------


def configure_django(**extra: Any) -> None:
    """Minimal in-code Django settings, plus *extra* ones; by default no CHANNEL_LAYERS, so no layer."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="interlock-bench-not-secret",
            INSTALLED_APPS=[],
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            USE_TZ=True,
            **extra,
        )
        django.setup()


def make_channels() -> AnyASGIApp:
    """uvicorn factory for the Django Channels ``AsyncWebsocketConsumer`` echo app."""
    configure_django()
    from channels.generic.websocket import (
        AsyncWebsocketConsumer,
    )
    from channels.routing import ProtocolTypeRouter

    class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc,unused-ignore]
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.send(text_data=text_data, bytes_data=bytes_data)

    app: AnyASGIApp = ProtocolTypeRouter({"websocket": EchoConsumer.as_asgi()})
    return _profiled(app)
