"""Ask and reply between actors: answers, errors that come promptly, and what waits meanwhile.

In process on the in-memory layer, and across two layer instances on one SQLite file or
one Redis prefix (two processes as far as the layer knows), both backends.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from interlock.actors import (
    AskDeadlock,
    AskFailed,
    AskTimeout,
    JsonStateActor,
    JsonWebsocketActor,
    PeerGone,
    ProtocolTypeRouter,
    handler,
)
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on
from interlock.layers import InMemoryChannelLayer, RedisChannelLayer, SQLiteChannelLayer


class Oracle(JsonWebsocketActor):
    """Answers asks: by returning, by reply(), by failing, or never."""

    async def receive_json(self, content: Any) -> None:
        await self.send_json({"channel": self.channel_name})

    @handler
    async def double(self, event: dict[str, Any]) -> int:
        return int(event["n"]) * 2

    @handler
    async def early(self, event: dict[str, Any]) -> str:
        await self.reply("first")
        return "ignored"

    @handler
    async def broken(self, event: dict[str, Any]) -> None:
        msg = "the oracle is out of order"
        raise RuntimeError(msg)

    @handler
    async def slow(self, event: dict[str, Any]) -> str:
        await anyio.sleep(event["seconds"])
        return "late"

    @handler
    async def asks_back(self, event: dict[str, Any]) -> Any:
        return await self.ask(event["reply_to"], {"type": "double", "n": 1}, timeout=5)


class Asker(JsonWebsocketActor):
    """Asks what the client says, reports the answer or the error, and what waited."""

    log: ClassVar[list[Any]] = []

    async def receive_json(self, content: Any) -> None:
        if content.get("op") == "ping":
            self.log.append("ping")
            await self.send_json({"pong": True})
            return
        try:
            result = await self.ask(content["to"], content["message"], timeout=content.get("timeout", 5))
        except (AskTimeout, PeerGone, AskFailed, AskDeadlock) as exc:
            await self.send_json({"error": type(exc).__name__, "text": str(exc)})
        else:
            await self.send_json({"result": result})
        self.log.append("asked")


def app_for(layer: Any, actor: type[JsonWebsocketActor]) -> Any:
    return ProtocolTypeRouter({"websocket": actor.as_asgi()}, channel_layer=layer)


async def oracle_channel(ws: WebsocketCommunicator) -> str:
    await ws.send_json_to({})
    return str((await ws.receive_json_from())["channel"])


def redis_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("redis", marks=pytest.mark.skipif(not redis_is_up(), reason="needs Redis on 127.0.0.1:6379")),
    ]
)
def layers(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    """The asker's and the oracle's layer: one in memory, or two instances on one file or prefix."""
    if request.param == "memory":
        layer = InMemoryChannelLayer()
        return layer, layer
    if request.param == "redis":
        prefix = f"interlock-test:{secrets.token_hex(6)}"
        return (
            RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=prefix, lease=0.3, grace=0.3),
            RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=prefix, lease=0.3, grace=0.3),
        )
    path = tmp_path / "layer.sqlite3"
    return SQLiteChannelLayer(path, lease=0.3, grace=0.3), SQLiteChannelLayer(path, lease=0.3, grace=0.3)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "double", "n": 21}, {"result": 42}),
        ({"type": "early"}, {"result": "first"}),
    ],
)
async def test_an_ask_returns_the_handlers_answer(
    layers: tuple[Any, Any], message: dict[str, Any], expected: dict[str, Any]
) -> None:
    mine, theirs = layers
    async with (
        WebsocketCommunicator(app_for(theirs, Oracle), "/") as oracle,
        WebsocketCommunicator(app_for(mine, Asker), "/") as asker,
    ):
        assert (await oracle.connect()).accepted
        assert (await asker.connect()).accepted
        channel = await oracle_channel(oracle)
        await asker.send_json_to({"to": channel, "message": message})
        assert await asker.receive_json_from() == expected
    for layer in {id(mine): mine, id(theirs): theirs}.values():
        await layer.close()


async def test_a_failing_handler_is_the_askers_error_and_stays_the_receivers(layers: tuple[Any, Any]) -> None:
    mine, theirs = layers
    async with (
        WebsocketCommunicator(app_for(theirs, Oracle), "/") as oracle,
        WebsocketCommunicator(app_for(mine, Asker), "/") as asker,
    ):
        assert (await oracle.connect()).accepted
        assert (await asker.connect()).accepted
        channel = await oracle_channel(oracle)
        await asker.send_json_to({"to": channel, "message": {"type": "broken"}})
        reply = await asker.receive_json_from()
        assert reply["error"] == "AskFailed"
        assert "RuntimeError: the oracle is out of order" in reply["text"]
        assert (await oracle.receive_close()).code == 1011  # the receiver's own failure policy
        await asker.send_json_to({"to": channel, "message": {"type": "double", "n": 1}, "timeout": 3})
        gone = await asker.receive_json_from(timeout=5)
        assert gone["error"] == "PeerGone"  # its channel is closed now: told at once
    for layer in {id(mine): mine, id(theirs): theirs}.values():
        await layer.close()


async def test_no_handler_for_the_message_is_a_clear_failure() -> None:
    layer = InMemoryChannelLayer()
    async with (
        WebsocketCommunicator(app_for(layer, Oracle), "/") as oracle,
        WebsocketCommunicator(app_for(layer, Asker), "/") as asker,
    ):
        assert (await oracle.connect()).accepted
        assert (await asker.connect()).accepted
        channel = await oracle_channel(oracle)
        await asker.send_json_to({"to": channel, "message": {"type": "triple", "n": 1}})
        reply = await asker.receive_json_from()
        assert reply["error"] == "AskFailed"
        assert "UnknownMessageType" in reply["text"]


async def test_no_reply_in_time_is_an_ask_timeout_and_other_events_wait_their_turn() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    async with (
        WebsocketCommunicator(app_for(layer, Oracle), "/") as oracle,
        WebsocketCommunicator(
            ProtocolTypeRouter({"websocket": Asker.as_asgi(log=log)}, channel_layer=layer), "/"
        ) as asker,
    ):
        assert (await oracle.connect()).accepted
        assert (await asker.connect()).accepted
        channel = await oracle_channel(oracle)
        await asker.send_json_to({"to": channel, "message": {"type": "slow", "seconds": 1}, "timeout": 0.2})
        await asker.send_json_to({"op": "ping"})  # waits until the ask is over
        reply = await asker.receive_json_from()
        assert reply["error"] == "AskTimeout"
        assert "no reply within 0.2 s" in reply["text"]
        assert await asker.receive_json_from() == {"pong": True}
        assert log == ["asked", "ping"]  # one event at a time, in order
        await anyio.sleep(1.0)  # the late answer arrives and is dropped quietly
        await asker.send_json_to({"op": "ping"})
        assert await asker.receive_json_from() == {"pong": True}


async def test_an_unknown_or_closed_channel_is_peer_gone_at_once() -> None:
    layer = InMemoryChannelLayer()
    closed = await layer.new_channel()
    await layer.close_channel(closed)
    async with WebsocketCommunicator(app_for(layer, Asker), "/") as asker:
        assert (await asker.connect()).accepted
        started = anyio.current_time()
        await asker.send_json_to({"to": closed, "message": {"type": "double", "n": 1}, "timeout": 30})
        reply = await asker.receive_json_from()
        assert reply["error"] == "PeerGone"
        assert "gone (unknown)" in reply["text"]
        assert anyio.current_time() - started < 5


async def test_two_actors_asking_each_other_fail_clearly_instead_of_deadlocking() -> None:
    layer = InMemoryChannelLayer()
    async with (
        WebsocketCommunicator(app_for(layer, Oracle), "/") as oracle,
        WebsocketCommunicator(app_for(layer, Asker), "/") as asker,
    ):
        assert (await oracle.connect()).accepted
        assert (await asker.connect()).accepted
        channel = await oracle_channel(oracle)
        # the oracle's handler asks the asker back while the asker waits for it
        await asker.send_json_to({"to": channel, "message": {"type": "asks_back"}, "timeout": 10})
        reply = await asker.receive_json_from(timeout=5)
        assert reply["error"] == "AskDeadlock"  # at once, not at a timeout: each waited for the other
        assert "was waiting for" in reply["text"]
        assert (await oracle.receive_close()).code == 1011  # its handler let AskDeadlock through


class Counter(JsonStateActor):
    """A state actor that answers asks from its states, and defers them while counting is off."""

    off = State(defer=["add"])
    on_ = State(terminal=True)
    total: int = 0

    @on.client("start", source=off, target=on_)
    async def start(self, event: dict[str, Any]) -> None:
        await self.send_json({"channel": self.channel_name})

    @on.client("hello", source=off)
    async def hello(self, event: dict[str, Any]) -> None:
        await self.send_json({"channel": self.channel_name})

    @on.message("add", source=on_)
    async def add(self, event: dict[str, Any]) -> int:
        self.total += int(event["n"])
        return self.total


async def test_a_state_actor_answers_asks_even_after_deferring_them() -> None:
    layer = InMemoryChannelLayer()
    async with (
        WebsocketCommunicator(app_for(layer, Counter), "/") as counter,
        WebsocketCommunicator(app_for(layer, Asker), "/") as asker,
    ):
        assert (await counter.connect()).accepted
        assert (await asker.connect()).accepted
        await counter.send_json_to({"type": "hello"})
        channel = (await counter.receive_json_from())["channel"]
        await asker.send_json_to({"to": channel, "message": {"type": "add", "n": 5}})
        await asker.receive_nothing(0.2)  # deferred in 'off'
        await counter.send_json_to({"type": "start"})
        await counter.receive_json_from()
        assert await asker.receive_json_from() == {"result": 5}  # answered when replayed


@pytest.mark.parametrize(
    ("to", "message", "timeout", "error"),
    [
        ("not a channel", {"type": "x"}, 1, "InvalidChannelName"),
        ("specific.x!1", {"no": "type"}, 1, "TypeError"),
        ("specific.x!1", {"type": "x"}, 0, "ValueError"),
    ],
)
async def test_bad_asks_raise_at_once(to: str, message: dict[str, Any], timeout: float, error: str) -> None:
    class Careless(JsonWebsocketActor):
        async def receive_json(self, content: Any) -> None:
            try:
                await self.ask(to, message, timeout=timeout)
            except Exception as exc:
                await self.send_json({"error": type(exc).__name__})

    async with WebsocketCommunicator(app_for(InMemoryChannelLayer(), Careless), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({})
        assert await ws.receive_json_from() == {"error": error}


async def test_reply_outside_an_ask_is_an_error() -> None:
    class Eager(JsonWebsocketActor):
        async def receive_json(self, content: Any) -> None:
            try:
                await self.reply(1)
            except RuntimeError as exc:
                await self.send_json({"error": str(exc)})

    async with WebsocketCommunicator(app_for(InMemoryChannelLayer(), Eager), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({})
        assert "no ask is being handled" in (await ws.receive_json_from())["error"]
