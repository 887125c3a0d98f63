"""Deferred events are bounded (``max_deferred``, ``max_deferred_bytes``) and replayed as if live.

A client that floods a ``defer=`` state is closed with 1008 and a WARNING line (its fault,
no traceback); layer messages beyond the bounds are dropped, newest first, and counted.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from interlock.actors import JsonStateActor, ProtocolTypeRouter
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on
from interlock.layers import InMemoryChannelLayer

GROUP = "news"


class Gate(JsonStateActor):
    """Defers client ``chat`` and layer ``news.flash`` until ``login``; echoes them afterwards."""

    groups = (GROUP,)
    max_deferred = 4
    max_deferred_bytes = 1000

    waiting = State(initial=True, defer=["chat", "news.flash"])
    inside = State(terminal=True)

    @on.client("login", source=waiting, target=inside)
    async def login(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "welcome"})

    @on.client("chat", source=inside)
    async def chat(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "chat", "text": event["text"]})

    @on.message("news.flash", source=inside)
    async def flash(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "flash", "n": event["n"]})


class Strict(JsonStateActor):
    """Defers ``chat`` until ``login``, then has no handler for it: a replayed one is unhandled."""

    waiting = State(initial=True, defer=["chat"])
    inside = State(terminal=True)

    @on.client("login", source=waiting, target=inside)
    async def login(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "welcome"})


def communicator(actor: type[JsonStateActor], layer: InMemoryChannelLayer) -> WebsocketCommunicator:
    app = ProtocolTypeRouter({"websocket": actor.as_asgi()}, channel_layer=layer)
    return WebsocketCommunicator(app, "/")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_deferred_events_within_the_bounds_are_replayed_in_order() -> None:
    layer = InMemoryChannelLayer()
    async with communicator(Gate, layer) as ws:
        await ws.connect()
        await ws.send_json_to({"type": "chat", "text": "one"})
        await ws.receive_nothing()  # each arrives before the next is sent: one order across sources
        await layer.group_send(GROUP, {"type": "news.flash", "n": 1})
        await ws.receive_nothing()
        await ws.send_json_to({"type": "chat", "text": "two"})
        await ws.receive_nothing()
        await ws.send_json_to({"type": "login"})
        got = [await ws.receive_json_from() for _ in range(4)]
    assert got == [
        {"type": "welcome"},
        {"type": "chat", "text": "one"},
        {"type": "flash", "n": 1},
        {"type": "chat", "text": "two"},
    ]


@pytest.mark.parametrize(("count", "size"), [(5, 10), (2, 600)], ids=["count", "bytes"])
async def test_a_client_flooding_deferred_events_is_closed_with_1008(
    count: int, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "interlock.actors")
    async with communicator(Gate, InMemoryChannelLayer()) as ws:
        await ws.connect()
        for _ in range(count):
            await ws.send_json_to({"type": "chat", "text": "x" * size})
        close = await ws.receive_close()
    assert close.code == 1008
    assert close.reason.startswith("too many deferred events")
    assert [m for m in warnings(caplog) if "too many deferred events" in m]
    assert not [r for r in caplog.records if r.exc_info is not None or r.levelno >= logging.ERROR]


async def test_layer_messages_beyond_the_bound_are_dropped_newest_first_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "interlock.actors")
    layer = InMemoryChannelLayer()
    async with communicator(Gate, layer) as ws:
        await ws.connect()
        for n in range(7):
            await layer.group_send(GROUP, {"type": "news.flash", "n": n})
        await ws.receive_nothing()
        await ws.send_json_to({"type": "login"})
        got = [await ws.receive_json_from() for _ in range(5)]
        await ws.receive_nothing()
    assert got[0] == {"type": "welcome"}
    assert [m["n"] for m in got[1:]] == [0, 1, 2, 3]  # the first four kept, in order
    lines = warnings(caplog)
    assert len([m for m in lines if "drops layer message 'news.flash'" in m]) == 1  # once per burst
    assert [m for m in lines if "dropped 3 deferred layer message(s)" in m]


async def test_a_replayed_client_event_is_handled_as_it_would_be_live(caplog: pytest.LogCaptureFixture) -> None:
    """Unhandled after the replay: 1008 as live (never 1011), and the rest are not handled."""
    caplog.set_level(logging.DEBUG, "interlock.actors")
    async with communicator(Strict, InMemoryChannelLayer()) as ws:
        await ws.connect()
        for text in ("one", "two", "three"):
            await ws.send_json_to({"type": "chat", "text": text})
        await ws.send_json_to({"type": "login"})
        assert await ws.receive_json_from() == {"type": "welcome"}
        close = await ws.receive_close()
    assert close.code == 1008
    assert "no handler for client event 'chat'" in close.reason
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
