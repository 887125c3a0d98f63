"""Peer watching: ``watch(channel)`` tells an actor, in its mailbox, when a channel is gone.

On the in-memory layer (and the SQLite one for an actor ending), both backends; the SQLite
layer's cross-process cases (a watched channel's process killed) are in
tests/layers/test_sqlite_peers.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from interlock.actors import JsonStateActor, JsonWebsocketActor, ProtocolTypeRouter, handler
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on
from interlock.layers import InMemoryChannelLayer, InvalidChannelName, Message, SQLiteChannelLayer


class Watcher(JsonWebsocketActor):
    """Watches the channel a client names; reports what it is told."""

    async def receive_json(self, content: Any) -> None:
        if content["op"] == "watch":
            self.watch(content["channel"])
        elif content["op"] == "unwatch":
            self.unwatch(content["channel"])
        elif content["op"] == "me":
            await self.send_json({"channel": self.channel_name})
        await self.send_json({"done": content["op"]})

    @handler
    async def peer_gone(self, event: dict[str, Any]) -> None:
        await self.send_json({"gone": event["channel"], "reason": event["reason"]})


class SyncWatcher(JsonWebsocketActor):
    """Watches from a sync handler (a worker thread)."""

    def receive_json(self, content: Any) -> None:
        self.watch(content["channel"])
        self.send_json({"done": "watch"})

    @handler
    async def peer_gone(self, event: dict[str, Any]) -> None:
        await self.send_json({"gone": event["channel"], "reason": event["reason"]})


def app_for(layer: Any, actor: type[JsonWebsocketActor] = Watcher) -> Any:
    return ProtocolTypeRouter({"websocket": actor.as_asgi()}, channel_layer=layer)


async def channel_of(ws: WebsocketCommunicator) -> str:
    await ws.send_json_to({"op": "me"})
    channel = (await ws.receive_json_from())["channel"]
    assert await ws.receive_json_from() == {"done": "me"}
    return str(channel)


async def watch(ws: WebsocketCommunicator, channel: str, op: str = "watch") -> None:
    await ws.send_json_to({"op": op, "channel": channel})
    assert await ws.receive_json_from() == {"done": op}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_watcher_is_told_when_the_watched_actor_ends(kind: str, tmp_path: Path) -> None:
    layer: Any = InMemoryChannelLayer() if kind == "memory" else SQLiteChannelLayer(tmp_path / "layer.sqlite3")
    app = app_for(layer)
    async with WebsocketCommunicator(app, "/") as watcher, WebsocketCommunicator(app, "/") as peer:
        assert (await watcher.connect()).accepted
        assert (await peer.connect()).accepted
        peer_channel = await channel_of(peer)
        await watch(watcher, peer_channel)
        await watch(watcher, peer_channel)  # twice is one watch
        await peer.disconnect(1000)
        assert await watcher.receive_json_from() == {"gone": peer_channel, "reason": "closed"}
        await watcher.receive_nothing(0.1)  # told once
    peers = layer._peers if kind == "memory" else layer._peers.watches
    assert len(peers) == 0  # nothing left watching
    if kind == "sqlite":
        await layer.close()


async def test_a_channel_that_is_gone_already_is_unknown_at_once() -> None:
    layer = InMemoryChannelLayer()
    async with WebsocketCommunicator(app_for(layer), "/") as ws:
        assert (await ws.connect()).accepted
        channel = await layer.new_channel()
        await layer.close_channel(channel)
        await watch(ws, channel)
        assert await ws.receive_json_from() == {"gone": channel, "reason": "unknown"}
        await watch(ws, "specific.elsewhere!0123")
        assert await ws.receive_json_from() == {"gone": "specific.elsewhere!0123", "reason": "unknown"}


async def test_a_named_channel_is_gone_when_it_is_closed() -> None:
    layer = InMemoryChannelLayer()
    async with WebsocketCommunicator(app_for(layer), "/") as ws:
        assert (await ws.connect()).accepted
        await watch(ws, "bots.dealer")
        await ws.receive_nothing(0.05)
        await layer.close_channel("bots.dealer")
        assert await ws.receive_json_from() == {"gone": "bots.dealer", "reason": "closed"}


async def test_unwatch_and_the_watchers_end_leave_no_watch() -> None:
    layer = InMemoryChannelLayer()
    peer = await layer.new_channel()
    async with WebsocketCommunicator(app_for(layer), "/") as ws:
        assert (await ws.connect()).accepted
        await watch(ws, peer)
        await watch(ws, peer, "unwatch")
        assert len(layer._peers) == 0
        await watch(ws, peer)
        assert len(layer._peers) == 1
    assert len(layer._peers) == 0  # the watcher ended: its watch with it
    await layer.close_channel(peer)  # nobody to tell


async def test_flushing_the_layer_tells_every_watcher() -> None:
    layer = InMemoryChannelLayer()
    peer = await layer.new_channel()
    async with WebsocketCommunicator(app_for(layer), "/") as ws:
        assert (await ws.connect()).accepted
        await watch(ws, peer)
        await layer.flush()
        assert await ws.receive_json_from() == {"gone": peer, "reason": "closed"}


async def test_watch_from_a_sync_handler() -> None:
    layer = InMemoryChannelLayer()
    peer = await layer.new_channel()
    async with WebsocketCommunicator(app_for(layer, SyncWatcher), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"channel": peer})
        assert await ws.receive_json_from() == {"done": "watch"}
        await layer.close_channel(peer)
        assert await ws.receive_json_from() == {"gone": peer, "reason": "closed"}


class Waiting(JsonStateActor):
    """A DSL actor that waits for its partner and is told when the partner is gone."""

    log: ClassVar[list[Any]] = []
    alone = State()
    paired = State()
    abandoned = State(terminal=True)

    @on.client("pair", source=alone, target=paired)
    async def pair(self, event: dict[str, Any]) -> None:
        self.watch(event["partner"])

    @on.message("peer.gone", source=paired, target=abandoned)
    async def partner_gone(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "abandoned", "reason": event["reason"]})


async def test_a_state_actor_handles_peer_gone_as_a_message_event() -> None:
    layer = InMemoryChannelLayer()
    partner = await layer.new_channel()
    app = ProtocolTypeRouter({"websocket": Waiting.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "pair", "partner": partner})
        await anyio.sleep(0.01)
        await layer.close_channel(partner)
        assert await ws.receive_json_from() == {"type": "abandoned", "reason": "closed"}


class NoPeers:
    """A group layer that cannot watch peers (Channels' layers are such)."""

    def __init__(self) -> None:
        self.inner = InMemoryChannelLayer()

    async def send(self, channel: str, message: Message, /) -> None:
        await self.inner.send(channel, message)

    async def receive(self, channel: str, /) -> Message:
        return await self.inner.receive(channel)

    async def new_channel(self, prefix: str = "specific", /) -> str:
        return await self.inner.new_channel(prefix)

    async def close_channel(self, channel: str, /) -> None:
        await self.inner.close_channel(channel)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()

    async def group_add(self, group: str, channel: str, /) -> None:
        await self.inner.group_add(group, channel)

    async def group_discard(self, group: str, channel: str, /) -> None:
        await self.inner.group_discard(group, channel)

    async def group_send(self, group: str, message: Message, /) -> None:
        await self.inner.group_send(group, message)


class Strict(JsonWebsocketActor):
    failures: ClassVar[list[BaseException]] = []

    async def receive_json(self, content: Any) -> None:
        try:
            self.watch(content["channel"])
        except (TypeError, InvalidChannelName) as exc:
            await self.send_json({"error": type(exc).__name__, "message": str(exc)})


@pytest.mark.parametrize(
    ("layer", "channel", "error", "message"),
    [
        (NoPeers(), "specific.x!1", "TypeError", "NoPeers cannot tell when a channel is gone"),
        (InMemoryChannelLayer(), "not a channel", "InvalidChannelName", "not a channel"),
    ],
)
async def test_watch_refuses_what_it_cannot_do(layer: Any, channel: str, error: str, message: str) -> None:
    app = ProtocolTypeRouter({"websocket": Strict.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"channel": channel})
        reply = await ws.receive_json_from()
        assert reply["error"] == error
        assert message in reply["message"]
