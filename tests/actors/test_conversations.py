"""Conversations with clients: acks both ways, and reconnects that recover what was missed.

In process (WebsocketCommunicator) on the in-memory layer, both backends; the chat
example's end-to-end and browser tests run the same features under real servers.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from interlock.actors import (
    AskFailed,
    AskTimeout,
    JsonStateActor,
    JsonWebsocketActor,
    ProtocolTypeRouter,
    Recovered,
    Recovery,
    handler,
)
from interlock.actors import _conversations as conversations
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on
from interlock.layers import POSITION, GroupHistory, InMemoryChannelLayer

SECRET = b"s" * 32
GROUP = "room.test"


class Room(JsonWebsocketActor):
    """Joins GROUP recovering, relays {"say"} to it, answers acks, asks its client on request."""

    acks = True
    recovery: ClassVar[Recovery | None] = Recovery(secret=SECRET)
    max_message_size = 4096
    session: Recovered

    async def connect(self) -> None:
        await self.accept()
        self.session = await self.join_recovering(GROUP)
        await self.send_json({"recovered": self.session.recovered, "missed": self.session.missed})

    async def receive_json(self, content: Any) -> Any:
        if "say" in content:
            await self.channel_layer.group_send(GROUP, {"type": "room.say", "text": content["say"]})
            return "sent"
        if "big" in content:
            return "x" * 10_000
        if "ask" in content:
            try:
                answer = await self.ask_client({"question": content["ask"]}, timeout=content.get("timeout", 2))
            except AskTimeout as exc:
                return {"timeout": str(exc)}
            except AskFailed as exc:
                return {"failed": str(exc)}
            return {"answer": answer}
        return {"echo": content}

    @handler
    async def room_say(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"], "offset": event[POSITION]["offset"]})


def _layer(count: int = 100) -> InMemoryChannelLayer:
    return InMemoryChannelLayer(history=GroupHistory(count=count, groups=("room.*",)))


def _client(layer: InMemoryChannelLayer, query: str = "recover=") -> WebsocketCommunicator:
    app = ProtocolTypeRouter({"websocket": Room.as_asgi()}, channel_layer=layer)
    return WebsocketCommunicator(app, f"/ws/?{query}", timeout=3)


async def _joined(client: WebsocketCommunicator) -> tuple[dict[str, Any], dict[str, Any]]:
    """Connect; return the session frame and the actor's own report of it."""
    assert (await client.connect()).accepted
    frames = [await client.receive_json_from() for _ in range(2)]
    session = next(frame for frame in frames if frame.get("interlock") == "session")
    report = next(frame for frame in frames if "recovered" in frame and "interlock" not in frame)
    return session, report


async def _say(client: WebsocketCommunicator, texts: list[str]) -> None:
    for text in texts:
        await client.send_json_to({"say": text})
    await client.send_json_to({"ping": 1})  # no ack: passes through to receive_json, not answered


# -- acks from the server ------------------------------------------------------------------


async def test_a_frame_with_an_ack_id_gets_the_handlers_return_value() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"hello": 1, "ack": 7})
        assert await client.receive_json_from() == {"ack": 7, "result": {"echo": {"hello": 1, "ack": 7}}}
        await client.send_json_to({"hello": 2, "ack": "abc"})
        assert (await client.receive_json_from())["ack"] == "abc"


@pytest.mark.parametrize("bad", [[1], {"x": 1}, "", "i" * 65, 1.5, None])
async def test_an_invalid_ack_id_is_a_plain_frame(bad: Any) -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"say": "hi", "ack": bad})
        assert await client.receive_json_from() == {"text": "hi", "offset": 1}
        await client.receive_nothing()


async def test_an_oversize_reply_is_refused_and_said_so() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"big": 1, "ack": 1})
        frame = await client.receive_json_from()
        assert frame["ack"] == 1
        assert frame["error"]["type"] == "ReplyTooLarge"
        assert "4,096 bytes" in frame["error"]["message"]
        await client.send_json_to({"again": 1, "ack": 2})  # the connection lives on
        assert (await client.receive_json_from())["ack"] == 2


async def test_without_acks_the_ack_key_is_the_applications() -> None:
    class Plain(Room):
        acks = False

    app = ProtocolTypeRouter({"websocket": Plain.as_asgi()}, channel_layer=_layer())
    async with WebsocketCommunicator(app, "/ws/?recover=", timeout=3) as client:
        await _joined(client)
        await client.send_json_to({"hello": 1, "ack": 7})
        await client.receive_nothing()  # receive_json's return value is dropped, as always


# -- acks from the client ------------------------------------------------------------------


async def test_ask_client_returns_the_clients_result_and_keeps_other_frames_in_order() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"ask": "name?", "ack": 1})
        ask = await client.receive_json_from()
        assert ask == {"ask": 1, "data": {"question": "name?"}}
        await client.send_json_to({"n": 1, "ack": 2})  # waits: the actor is asking
        await client.send_json_to({"reply": 1, "result": "Ada"})
        assert await client.receive_json_from() == {"ack": 1, "result": {"answer": "Ada"}}
        assert await client.receive_json_from() == {"ack": 2, "result": {"echo": {"n": 1, "ack": 2}}}


async def test_ask_client_times_out_and_a_late_reply_is_dropped() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"ask": "slow?", "timeout": 0.2, "ack": 1})
        assert (await client.receive_json_from())["ask"] == 1
        result = (await client.receive_json_from())["result"]
        assert "got no reply within 0.2 s" in result["timeout"]
        await client.send_json_to({"reply": 1, "result": "late"})
        await client.receive_nothing()


async def test_ask_client_raises_ask_failed_on_an_error_reply() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"ask": "q", "ack": 1})
        await client.receive_json_from()
        await client.send_json_to({"reply": 1, "error": "no thanks"})
        result = (await client.receive_json_from())["result"]
        assert "refused ask 1: no thanks" in result["failed"]


async def test_ask_client_ends_cleanly_when_the_client_leaves() -> None:
    async with _client(_layer()) as client:
        await _joined(client)
        await client.send_json_to({"ask": "q", "ack": 1})
        await client.receive_json_from()
        await client.disconnect()


async def test_ask_client_outside_the_actors_loop_is_refused() -> None:
    actor = Room()
    with pytest.raises(RuntimeError, match="is for async handlers"):
        await actor.ask_client({"x": 1})
    with pytest.raises(ValueError, match="positive number of seconds"):
        await actor.ask_client({"x": 1}, timeout=0)


# -- recovery ------------------------------------------------------------------------------


async def test_a_new_session_gets_a_token_and_the_groups_offset() -> None:
    layer = _layer()
    async with _client(layer) as client:
        session, report = await _joined(client)
        assert report == {"recovered": None, "missed": 0}
        assert session["group"] == GROUP
        assert session["offset"] == 0
        assert session["recovered"] is None
        assert Recovery(secret=SECRET).verify(session["token"], GROUP)


async def test_a_client_that_asks_for_no_session_just_joins() -> None:
    layer = _layer()
    async with _client(layer, "") as plain, _client(layer) as other:
        assert (await plain.connect()).accepted
        assert await plain.receive_json_from() == {"recovered": None, "missed": 0}
        await _joined(other)
        await _say(other, ["hi"])
        assert await plain.receive_json_from() == {"text": "hi", "offset": 1}


async def test_a_reconnect_gets_exactly_what_it_missed_in_order_once() -> None:
    layer = _layer()
    async with _client(layer) as away, _client(layer) as other:
        session, _ = await _joined(away)
        await _joined(other)
        await _say(other, ["a"])
        assert (await away.receive_json_from())["offset"] == 1
        await away.disconnect()
        await _say(other, [f"m{n}" for n in range(50)])
        for _ in range(51):
            await other.receive_json_from()
    async with (
        _client(layer, f"recover={session['token']}&offset=1") as back,
        _client(layer) as sender,
    ):
        assert (await back.connect()).accepted
        texts = [(await back.receive_json_from())["text"] for _ in range(50)]
        assert texts == [f"m{n}" for n in range(50)]
        session2 = await back.receive_json_from()
        assert session2["interlock"] == "session"
        assert session2["recovered"] is True
        assert session2["offset"] == 51
        assert await back.receive_json_from() == {"recovered": True, "missed": 50}
        await _joined(sender)
        await _say(sender, ["live"])
        assert await back.receive_json_from() == {"text": "live", "offset": 52}
        await back.receive_nothing()


async def test_a_live_copy_of_a_replayed_message_is_dropped() -> None:
    actor = SimpleNamespace(_floors={GROUP: 5})
    old = {"type": "room.say", POSITION: {"group": GROUP, "epoch": "e", "offset": 5}}
    new = {"type": "room.say", POSITION: {"group": GROUP, "epoch": "e", "offset": 6}}
    other = {"type": "room.say", POSITION: {"group": "room.other", "epoch": "e", "offset": 1}}
    assert conversations.replayed(actor, old)  # type: ignore[arg-type]
    assert not conversations.replayed(actor, other)  # type: ignore[arg-type]
    assert not conversations.replayed(actor, new)  # type: ignore[arg-type]
    assert conversations.replayed(actor, old)  # type: ignore[arg-type]  # a late live copy, still dropped
    assert not conversations.replayed(actor, {"type": "room.say"})  # type: ignore[arg-type]


async def test_a_reconnect_after_the_history_moved_on_is_told_to_resync() -> None:
    layer = _layer(count=3)
    async with _client(layer) as away, _client(layer) as other:
        session, _ = await _joined(away)
        await away.disconnect()
        await _joined(other)
        await _say(other, [f"m{n}" for n in range(6)])
        for _ in range(6):
            await other.receive_json_from()
    async with _client(layer, f"recover={session['token']}&offset=0") as back:
        assert (await back.connect()).accepted
        session2 = await back.receive_json_from()
        assert session2["recovered"] is False
        assert session2["offset"] == 6
        assert await back.receive_json_from() == {"recovered": False, "missed": 0}


async def test_a_token_from_a_flushed_layer_cannot_recover() -> None:
    layer = _layer()
    async with _client(layer) as away:
        session, _ = await _joined(away)
    await layer.flush()
    async with _client(layer, f"recover={session['token']}&offset=0") as back:
        assert (await back.connect()).accepted
        assert (await back.receive_json_from())["recovered"] is False


def _expired_token() -> str:
    return Recovery(secret=SECRET).issue(GROUP, "e" * 16, now=time.time() - 2 * 86400)


@pytest.mark.parametrize(
    ("query", "code", "shown"),
    [
        pytest.param(lambda t: f"recover=x{t}&offset=0", 4401, "recovery token invalid", id="forged"),
        pytest.param(lambda t: f"recover={t[:-2]}&offset=0", 4401, "recovery token invalid", id="truncated"),
        pytest.param(lambda t: "recover=garbage&offset=0", 4401, "recovery token invalid", id="garbage"),
        pytest.param(
            lambda t: f"recover={Recovery(secret=b'o' * 32).issue(GROUP, 'e')}&offset=0",
            4401,
            "invalid",
            id="other-secret",
        ),
        pytest.param(
            lambda t: f"recover={Recovery(secret=SECRET).issue('room.other', 'e')}&offset=0",
            4401,
            "invalid for group 'room.test'",
            id="other-group",
        ),
        pytest.param(lambda t: f"recover={_expired_token()}&offset=0", 4408, "recovery token expired", id="expired"),
        pytest.param(lambda t: f"recover={t}&offset=999", 4400, "ahead of its latest offset", id="offset-ahead"),
        pytest.param(lambda t: f"recover={t}&offset=-1", 4400, "non-negative integer", id="offset-negative"),
        pytest.param(lambda t: f"recover={t}&offset=abc", 4400, "non-negative integer", id="offset-garbage"),
        pytest.param(lambda t: f"recover={t}", 4400, "non-negative integer", id="offset-missing"),
    ],
)
async def test_a_bad_token_or_offset_closes_with_a_clear_code(query: Any, code: int, shown: str) -> None:
    layer = _layer()
    async with _client(layer) as first:
        session, _ = await _joined(first)
    async with _client(layer, query(session["token"])) as back:
        assert (await back.connect()).accepted
        closed = await back.receive_output()
        assert closed["type"] == "websocket.close"
        assert closed["code"] == code
        assert shown in closed["reason"]


async def test_join_recovering_needs_a_layer_with_history_and_a_recovery(caplog: pytest.LogCaptureFixture) -> None:
    class NoRecovery(Room):
        recovery = None

    for actor_class, layer, shown in [
        (Room, InMemoryChannelLayer(), "keeps no history of this group"),
        (NoRecovery, _layer(), "needs a Recovery"),
    ]:
        caplog.clear()
        app = ProtocolTypeRouter({"websocket": actor_class.as_asgi()}, channel_layer=layer)
        async with WebsocketCommunicator(app, "/ws/", timeout=3) as client:
            assert (await client.connect()).accepted
            closed = await client.receive_output()
            assert closed["code"] == 1011  # the server's mistake: logged with its TypeError
        assert shown in caplog.text


@pytest.mark.parametrize("secret", [b"short", "", 12])
def test_recovery_needs_a_real_secret(secret: Any) -> None:
    with pytest.raises(ValueError, match="16 bytes or more"):
        Recovery(secret=secret)


def test_tokens_verify_and_carry_their_epoch() -> None:
    recovery = Recovery(secret=SECRET, max_age=60)
    token = recovery.issue(GROUP, "abc")
    assert recovery.verify(token, GROUP) == "abc"
    with pytest.raises(conversations.RecoveryRefused, match="expired"):
        recovery.verify(token, GROUP, now=time.time() + 120)


# -- the DSL's JSON state actor ------------------------------------------------------------


class Lobby(JsonStateActor):
    """A state actor whose client events answer acks with their handler's result."""

    acks = True
    waiting = State(initial=True)

    @on.client("hello")
    async def hello(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"hi": event["name"]}


async def test_a_state_actors_handler_result_answers_the_ack() -> None:
    app = ProtocolTypeRouter({"websocket": Lobby.as_asgi()})
    async with WebsocketCommunicator(app, "/", timeout=3) as client:
        assert (await client.connect()).accepted
        await client.send_json_to({"type": "hello", "name": "Ada", "ack": 3})
        assert await client.receive_json_from() == {"ack": 3, "result": {"hi": "Ada"}}
        await client.send_json_to({"type": "hello", "name": "Bob"})  # no id: no answer
        await client.receive_nothing()


class Joiner(JsonWebsocketActor):
    """Joins before accepting: join_recovering() accepts once the actor is a member."""

    recovery = Recovery(secret=SECRET)

    async def connect(self) -> None:
        await self.join_recovering(GROUP)

    @handler
    async def room_say(self, event: dict[str, Any]) -> None:
        await self.send_json({"text": event["text"]})


async def test_join_recovering_accepts_once_the_actor_is_a_member() -> None:
    layer = _layer()
    app = ProtocolTypeRouter({"websocket": Joiner.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/?recover=", timeout=3) as client:
        assert (await client.connect()).accepted
        assert await layer.group_members(GROUP)  # a member by the time the handshake is done
        session = await client.receive_json_from()
        assert session["interlock"] == "session"
    async with WebsocketCommunicator(app, f"/?recover=x{session['token']}&offset=0", timeout=3) as forged:
        assert (await forged.connect()).accepted  # accepted, so that the close code can say why
        closed = await forged.receive_output()
        assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
