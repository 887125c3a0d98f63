"""StateActor and JsonStateActor at run time, through a WebsocketCommunicator and an in-memory layer."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import anyio
import attrs
import pytest
from interlock.actors import (
    JsonStateActor,
    ProtocolTypeRouter,
    StateActor,
    TransitionRecord,
    UnhandledPolicy,
    WebsocketActor,
)
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import Frame, State, TaskFailed, Timeout, on, to_message
from interlock.layers import InMemoryChannelLayer


def app_for(actor: type[WebsocketActor], layer: InMemoryChannelLayer | None = None, **initkwargs: Any) -> Any:
    return ProtocolTypeRouter(
        {"websocket": actor.as_asgi(**initkwargs)},
        channel_layer=InMemoryChannelLayer() if layer is None else layer,
    )


class Captured(JsonStateActor):
    """Base of the test actors: keeps each instance (set ``instances=[]`` per test) and a call log."""

    instances: ClassVar[list[Any]] = []
    log: ClassVar[list[Any]] = []

    async def connect(self) -> None:
        self.instances.append(self)
        await self.accept()

    @on.client("where")
    async def where(self, event: dict[str, Any]) -> None:
        await self.send_json({"state": self.state})

    @on.message("where")
    async def where_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"state": self.state, "via": "layer"})


async def state_of(ws: WebsocketCommunicator) -> str:
    await ws.send_json_to({"type": "where"})
    reply = await ws.receive_json_from()
    state: str = reply["state"]
    return state


# -- guards and the unhandled policy ----------------------------------------------------------------


class Guarded(Captured):
    asking = State()
    done = State(terminal=True)

    def is_two(self, event: dict[str, Any]) -> bool:
        self.log.append(("guard is_two", event["n"]))
        return bool(event["n"] == 2)

    @on.client("go", source=asking, target=done, guard=lambda self, event: event["n"] == 1)
    async def first(self, event: dict[str, Any]) -> None:
        self.log.append("first")
        await self.send_json({"handler": "first"})

    @on.client("go", source=asking, guard="is_two")
    def second(self, event: dict[str, Any]) -> None:  # a sync handler, in a worker thread
        self.log.append("second")
        self.send_json({"handler": "second"})

    @on.client("go", source=asking, guard=lambda self, event: event["n"] in (2, 3))
    async def third(self, event: dict[str, Any]) -> None:
        self.log.append("third")
        await self.send_json({"handler": "third"})


@pytest.mark.parametrize(
    ("n", "handler", "state"),
    [(1, "first", "open.done"), (2, "second", "open.asking"), (3, "third", "open.asking")],
)
async def test_first_passing_guard_wins(n: int, handler: str, state: str) -> None:
    log: list[Any] = []
    async with WebsocketCommunicator(app_for(Guarded, log=log), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "go", "n": n})
        assert await ws.receive_json_from() == {"handler": handler}
        assert await state_of(ws) == state
        await ws.disconnect()
    assert [entry for entry in log if isinstance(entry, str)] == [handler]
    if n == 1:
        assert ("guard is_two", 1) not in log  # guards after the winner are not asked
    else:
        assert ("guard is_two", n) in log


@pytest.mark.parametrize(("policy", "code"), [("raise", 1011), ("close", 4321), ("log", None), ("ignore", None)])
@pytest.mark.parametrize("event", ["go", "unknown"])
async def test_unhandled_policy(
    policy: UnhandledPolicy, code: int | None, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(Guarded, unhandled_client=policy, unhandled_close_code=4321, log=[])
    caplog.set_level(logging.DEBUG, "interlock.actors")
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": event, "n": 99})  # every guard rejects 99
        reason = "every guard rejected it" if event == "go" else "no transition of this state accepts it"
        if code is not None:
            close = await ws.receive_close()
            assert close.code == code
            if policy == "close":
                assert f"no handler for client event {event!r}" in close.reason
            else:
                assert close.reason == "internal error"
            await ws.disconnect()
        else:
            assert await state_of(ws) == "open.asking"  # still running
            await ws.disconnect()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    matching = [m for m in messages if f"in state 'open.asking' has no handler for client event {event!r}" in m]
    if policy == "ignore":
        assert not matching
    else:
        assert matching
        assert reason in matching[0]
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert bool(tracebacks) == (policy == "raise")  # a client's mistake never logs a traceback by default


async def test_an_unhandled_client_event_closes_1008_by_default(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(app_for(Guarded, log=[]), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "close"})
        close = await ws.receive_close()
        assert close.code == 1008
        assert "has no handler for client event 'close'" in close.reason
        await ws.disconnect(1008)
        await ws.wait()
    assert [r.levelname for r in caplog.records if r.name.startswith("interlock")] == ["WARNING"]
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize("event", ["close", "_x", "websocket.send", "timeout", "accept"])
async def test_client_event_types_that_look_like_internals_are_the_clients_mistake(
    event: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with WebsocketCommunicator(app_for(Guarded, log=[]), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": event})
        assert (await ws.receive_close()).code == 1008
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_unhandled_policy_on_a_layer_message() -> None:
    layer = InMemoryChannelLayer()
    instances: list[Guarded] = []
    app = app_for(Guarded, layer, unhandled="close", unhandled_close_code=4000, instances=instances, log=[])
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        assert instances[0].channel_name is not None
        await layer.send(instances[0].channel_name, {"type": "no.such.message"})
        close = await ws.receive_close()
        assert close.code == 4000
        assert "message event 'no.such.message'" in close.reason
        await ws.disconnect()


# -- internal and external transitions, hooks ---------------------------------------------------------


class Hooked(Captured):
    """open.outer (timeout 60 s) > inner (initial), other; open.away."""

    outer = State(timeout=60)
    inner = State(parent=outer)
    other = State(parent=outer)
    away = State()

    @on.timeout(outer)
    async def outer_timeout(self, event: Timeout) -> None: ...

    @on.client("stay", source=inner)
    async def stay(self, event: dict[str, Any]) -> None:
        self.log.append("handler stay")

    @on.client("self", source=inner, target=inner)
    def self_loop(self, event: dict[str, Any]) -> None:
        self.log.append(f"handler self in {self.state}")

    @on.client("sibling", source=inner, target=other)
    async def sibling(self, event: dict[str, Any]) -> None:
        self.log.append(f"handler sibling in {self.state}")

    @on.client("parent", source=outer, target=outer)
    async def parent(self, event: dict[str, Any]) -> None:
        self.log.append("handler parent")

    @on.client("away", source=outer, target=away)
    async def go_away(self, event: dict[str, Any]) -> None:
        self.log.append("handler away")

    @on.client("back", source=away, target=outer)
    async def back(self, event: dict[str, Any]) -> None:
        self.log.append("handler back")

    @on.client("deep", source=away, target="outer.other")
    async def deep(self, event: dict[str, Any]) -> None:
        self.log.append("handler deep")

    @on.client("bye", source=outer)
    async def bye(self, event: dict[str, Any]) -> None:
        self.log.append("handler bye")
        await self.close(4000, "bye")
        self.log.append(f"closed in {self.state}")

    @outer.enter
    async def enter_outer(self) -> None:
        self.log.append("enter outer")

    @outer.exit
    def exit_outer(self) -> None:
        self.log.append("exit outer")

    @inner.enter
    def enter_inner(self) -> None:
        self.log.append(f"enter inner in {self.state}")

    @inner.exit
    async def exit_inner(self) -> None:
        self.log.append("exit inner")

    @other.enter
    async def enter_other(self) -> None:
        self.log.append("enter other")

    @other.exit
    async def exit_other(self) -> None:
        self.log.append("exit other")

    @away.enter
    async def enter_away(self) -> None:
        self.log.append("enter away")

    @away.exit
    async def exit_away(self) -> None:
        self.log.append("exit away")

    async def disconnect(self, code: int) -> None:
        self.log.append(f"disconnect {code} in {self.state}")


SIBLING = ["handler sibling in open.outer.inner", "exit inner", "enter other"]
AWAY = ["handler away", "exit inner", "exit outer", "enter away"]


@pytest.mark.parametrize(
    ("events", "expected", "state"),
    [
        pytest.param([], [], "open.outer.inner", id="accept"),
        pytest.param(["stay"], ["handler stay"], "open.outer.inner", id="internal"),
        pytest.param(
            ["self"],
            ["handler self in open.outer.inner", "exit inner", "enter inner in open.outer.inner"],
            "open.outer.inner",
            id="external-self",
        ),
        pytest.param(["sibling"], SIBLING, "open.outer.other", id="sibling"),
        pytest.param(
            ["sibling", "away"],
            [*SIBLING, "handler away", "exit other", "exit outer", "enter away"],
            "open.away",
            id="out-of-parent",
        ),
        pytest.param(
            ["away", "back"],
            [*AWAY, "handler back", "exit away", "enter outer", "enter inner in open.outer.inner"],
            "open.outer.inner",
            id="into-parent-initial",
        ),
        pytest.param(
            ["away", "deep"],
            [*AWAY, "handler deep", "exit away", "enter outer", "enter other"],
            "open.outer.other",
            id="into-nested",
        ),
        pytest.param(
            ["parent"],
            ["handler parent", "exit inner", "exit outer", "enter outer", "enter inner in open.outer.inner"],
            "open.outer.inner",
            id="external-to-parent-from-initial",
        ),
        pytest.param(
            ["sibling", "parent"],
            [*SIBLING, "handler parent", "exit other", "exit outer", "enter outer", "enter inner in open.outer.inner"],
            "open.outer.inner",
            id="external-to-parent-from-sibling",
        ),
    ],
)
async def test_transitions_and_hooks(events: list[str], expected: list[str], state: str) -> None:
    log: list[str] = []
    async with WebsocketCommunicator(app_for(Hooked, log=log), "/") as ws:
        assert (await ws.connect()).accepted
        assert await state_of(ws) == "open.outer.inner"  # the enter hooks ran before this event
        assert log == ["enter outer", "enter inner in open.outer.inner"]
        log.clear()
        for event in events:
            await ws.send_json_to({"type": event})
        assert await state_of(ws) == state
        assert log == expected
        log.clear()
        await ws.disconnect(1001)
    exits = {"open.outer.inner": ["exit inner", "exit outer"], "open.outer.other": ["exit other", "exit outer"]}
    assert log == [*exits.get(state, ["exit away"]), "disconnect 1001 in closed"]


async def test_close_from_a_handler_exits_user_states() -> None:
    log: list[str] = []
    instances: list[Hooked] = []
    async with WebsocketCommunicator(app_for(Hooked, log=log, instances=instances), "/") as ws:
        assert (await ws.connect()).accepted
        assert await state_of(ws) == "open.outer.inner"
        log.clear()
        await ws.send_json_to({"type": "bye"})
        close = await ws.receive_close()
        assert (close.code, close.reason) == (4000, "bye")
        assert instances[0].state == "closing"
        await ws.disconnect(4000)
    # the handler finishes in 'closing', then the states are exited (once, not again on disconnect)
    assert log == ["handler bye", "closed in closing", "exit inner", "exit outer", "disconnect 4000 in closed"]
    assert instances[0].state == "closed"
    assert instances[0].close_code == 4000


class Member(Captured):
    groups = ("everyone",)
    lobby = State()
    room = State(tags=["member"])
    seat = State(parent=room, tags=["seated"])

    @on.client("sit", source=lobby, target=seat)
    async def sit(self, event: dict[str, Any]) -> None: ...

    @on.client("stand", source=room, target=lobby)
    async def stand(self, event: dict[str, Any]) -> None: ...

    @on.client("tags")
    async def tags(self, event: dict[str, Any]) -> None:
        await self.send_json({tag: self.has_tag(tag) for tag in ("member", "seated", "nope")})

    @room.enter
    async def join_room(self) -> None:
        await self.channel_layer.group_add("room", self.channel_name)

    @room.exit
    async def leave_room(self) -> None:
        layer = self.channel_layer
        assert isinstance(layer, InMemoryChannelLayer)
        self.log.append(("leave room", await layer.group_members("everyone") != frozenset()))
        await layer.group_discard("room", self.channel_name)

    @seat.exit
    async def leave_seat(self) -> None:
        self.log.append(("leave seat", self.state))

    async def disconnect(self, code: int) -> None:
        layer = self.channel_layer
        assert isinstance(layer, InMemoryChannelLayer)
        self.log.append(("disconnect", await layer.group_members("everyone") != frozenset()))


async def test_has_tag_includes_enclosing_states() -> None:
    async with WebsocketCommunicator(app_for(Member, log=[]), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "tags"})
        assert await ws.receive_json_from() == {"member": False, "seated": False, "nope": False}
        await ws.send_json_to({"type": "sit"})
        await ws.send_json_to({"type": "tags"})
        assert await ws.receive_json_from() == {"member": True, "seated": True, "nope": False}
        await ws.send_json_to({"type": "stand"})
        await ws.send_json_to({"type": "tags"})
        assert await ws.receive_json_from() == {"member": False, "seated": False, "nope": False}
        await ws.disconnect()


async def test_disconnect_from_nested_state_runs_exit_hooks_and_leaves_groups() -> None:
    layer = InMemoryChannelLayer()
    log: list[Any] = []
    instances: list[Member] = []
    async with WebsocketCommunicator(app_for(Member, layer, log=log, instances=instances), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "sit"})
        assert await state_of(ws) == "open.room.seat"
        channel = instances[0].channel_name
        assert await layer.group_members("room") == {channel}
        assert await layer.group_members("everyone") == {channel}
        await ws.disconnect(1006)
    # exit hooks run innermost first, in 'closed', while the class groups are still joined
    assert log == [("leave seat", "closed"), ("leave room", True), ("disconnect", False)]
    assert await layer.group_members("room") == frozenset()
    assert await layer.group_members("everyone") == frozenset()
    assert await layer.groups() == {}


# -- deferred events --------------------------------------------------------------------------------


class Deferring(Captured):
    waiting = State(defer=["chat", "note", "chat.message"])
    busy = State(defer=["chat"])
    ready = State()

    @on.client("go", source=waiting, target=busy)
    async def go_busy(self, event: dict[str, Any]) -> None:
        await self.send_json({"moved": "busy"})

    @on.client("go", source=busy, target=ready)
    async def go_ready(self, event: dict[str, Any]) -> None:
        await self.send_json({"moved": "ready"})

    @on.client("reset", source=ready, target=waiting)
    async def reset(self, event: dict[str, Any]) -> None: ...

    @on.client("chat", source=ready)
    async def chat(self, event: dict[str, Any]) -> None:
        await self.send_json({"chat": event["n"], "state": self.state})

    @on.client("note", source=[busy, ready])
    async def note(self, event: dict[str, Any]) -> None:
        await self.send_json({"note": event["n"], "state": self.state})

    @on.message("chat.message", source=[busy, ready])
    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"layer": event["n"], "state": self.state})


async def test_deferred_events_replay_in_order_after_the_next_state_change() -> None:
    layer = InMemoryChannelLayer()
    instances: list[Deferring] = []
    async with WebsocketCommunicator(app_for(Deferring, layer, instances=instances), "/") as ws:
        assert (await ws.connect()).accepted
        channel = instances[0].channel_name
        assert channel is not None
        await ws.send_json_to({"type": "chat", "n": 1})
        await ws.send_json_to({"type": "note", "n": 1})
        assert await state_of(ws) == "open.waiting"  # both deferred by now
        await layer.send(channel, {"type": "chat.message", "n": 1})
        await layer.send(channel, {"type": "where"})  # the channel is FIFO: the message is deferred by now
        assert await ws.receive_json_from() == {"state": "open.waiting", "via": "layer"}
        await ws.send_json_to({"type": "chat", "n": 2})
        await ws.send_json_to({"type": "note", "n": 2})
        await ws.receive_nothing(0.05)
        await ws.send_json_to({"type": "go"})  # to busy, which still defers chat
        assert await ws.receive_json_from() == {"moved": "busy"}
        assert await ws.receive_json_from() == {"note": 1, "state": "open.busy"}
        assert await ws.receive_json_from() == {"layer": 1, "state": "open.busy"}
        assert await ws.receive_json_from() == {"note": 2, "state": "open.busy"}
        await ws.receive_nothing(0.05)
        await ws.send_json_to({"type": "go"})  # to ready: the chats, in order
        assert await ws.receive_json_from() == {"moved": "ready"}
        assert await ws.receive_json_from() == {"chat": 1, "state": "open.ready"}
        assert await ws.receive_json_from() == {"chat": 2, "state": "open.ready"}
        await ws.receive_nothing(0.05)
        await ws.send_json_to({"type": "chat", "n": 3})  # handled at once now
        assert await ws.receive_json_from() == {"chat": 3, "state": "open.ready"}
        await ws.disconnect()


async def test_internal_transition_does_not_replay_deferred_events() -> None:
    async with WebsocketCommunicator(app_for(Deferring), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "chat", "n": 1})
        await ws.send_json_to({"type": "where"})  # an internal transition: no state change
        assert await ws.receive_json_from() == {"state": "open.waiting"}
        await ws.receive_nothing(0.05)
        await ws.disconnect()


class ClosingWhileDeferring(Deferring):
    @on.client("bye", source=Deferring.waiting)
    async def bye(self, event: dict[str, Any]) -> None:
        await self.close(4000)


async def test_deferred_events_are_dropped_when_the_connection_closes(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(app_for(ClosingWhileDeferring), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "chat", "n": 1})
        await ws.send_json_to({"type": "bye"})
        assert (await ws.receive_close()).code == 4000
        await ws.receive_nothing(0.05)
        await ws.disconnect(4000)
    # not replayed into 'closing', where the unhandled policy ("raise") would fail the actor
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_layer_message_before_accept_is_deferred_until_open() -> None:
    layer = InMemoryChannelLayer()

    class Early(Deferring):
        async def connect(self) -> None:
            await layer.send(self.channel_name, {"type": "chat.message", "n": 0})
            await anyio.sleep(0.05)  # the pump delivers it while still connecting
            await self.accept()

    async with WebsocketCommunicator(app_for(Early, layer), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "go"})
        assert await ws.receive_json_from() == {"moved": "busy"}
        assert await ws.receive_json_from() == {"layer": 0, "state": "open.busy"}
        await ws.disconnect()


# -- typed messages -------------------------------------------------------------------------------------


@attrs.frozen
class Move:
    type: ClassVar[str] = "move"
    x: int
    y: int = 0


@attrs.frozen
class Announce:
    type: ClassVar[str] = "room.announce"
    text: str
    tags: list[str] = attrs.Factory(list)


class Typed(Captured):
    playing = State()

    @on.client(Move, source=playing)
    async def move(self, event: Move) -> None:
        await self.send_json({"x": event.x, "y": event.y, "class": type(event).__name__})

    @on.message(Announce, source=playing)
    def announce(self, event: Announce) -> None:
        self.send_json({"text": event.text, "tags": event.tags, "class": type(event).__name__})


async def test_typed_client_and_layer_messages() -> None:
    layer = InMemoryChannelLayer()
    instances: list[Typed] = []
    async with WebsocketCommunicator(app_for(Typed, layer, instances=instances), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "move", "x": 3})
        assert await ws.receive_json_from() == {"x": 3, "y": 0, "class": "Move"}
        message = to_message(Announce("hello", ["a"]))
        assert message == {"type": "room.announce", "text": "hello", "tags": ["a"]}
        channel = instances[0].channel_name
        assert channel is not None
        await layer.send(channel, message)
        assert await ws.receive_json_from() == {"text": "hello", "tags": ["a"], "class": "Announce"}
        await ws.disconnect()


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"type": "move", "x": "left"}, "$.x"),
        ({"type": "move"}, "required field missing @ $.x"),
        ({"type": "move", "x": 1, "z": 2}, "extra fields found (z)"),
    ],
)
async def test_bad_typed_client_message_closes_1007(payload: dict[str, Any], problem: str) -> None:
    async with WebsocketCommunicator(app_for(Typed), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to(payload)
        close = await ws.receive_close()
        assert close.code == 1007
        assert "Move" in close.reason
        assert problem in close.reason
        await ws.disconnect()


async def test_bad_typed_layer_message_fails_the_actor() -> None:
    layer = InMemoryChannelLayer()
    instances: list[Typed] = []
    async with WebsocketCommunicator(app_for(Typed, layer, instances=instances), "/") as ws:
        assert (await ws.connect()).accepted
        channel = instances[0].channel_name
        assert channel is not None
        await layer.send(channel, {"type": "room.announce", "tags": []})  # no text
        close = await ws.receive_close()
        assert close.code == 1011  # the server's fault, not the client's
        await ws.disconnect()


def test_to_message_refuses_non_messages() -> None:
    with pytest.raises(TypeError, match="to_message"):
        to_message({"type": "x"})


@pytest.mark.parametrize(
    "payload",
    [{"n": 1}, {"type": 3}, {"type": ""}, [1, 2], "move", None],
    ids=["no-type", "int-type", "empty-type", "list", "str", "null"],
)
async def test_json_state_actor_needs_a_type(payload: Any) -> None:
    async with WebsocketCommunicator(app_for(Typed), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to(payload)
        close = await ws.receive_close()
        assert close.code == 1007
        assert "'type'" in close.reason
        await ws.disconnect()


# -- raw frames -----------------------------------------------------------------------------------------


class Raw(StateActor):
    talking = State()
    frames: ClassVar[list[Any]] = []

    @on.client("receive", source=talking, guard=lambda self, frame: frame.text is not None)
    async def text(self, frame: Frame) -> None:
        self.frames.append(frame)
        await self.send(text_data=f"text {frame.text}")

    @on.client("receive", source=talking)
    def binary(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.send(bytes_data=b"bytes " + (frame.bytes or b""))


async def test_state_actor_receives_frames() -> None:
    frames: list[Frame] = []
    async with WebsocketCommunicator(app_for(Raw, frames=frames), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="hi")
        assert await ws.receive_from() == "text hi"
        await ws.send_to(bytes_data=b"\x00")
        assert await ws.receive_from() == b"bytes \x00"
        await ws.disconnect()
    assert frames == [Frame(text="hi"), Frame(bytes=b"\x00")]


async def test_state_actor_without_a_layer() -> None:
    frames: list[Frame] = []
    async with WebsocketCommunicator(Raw.as_asgi(frames=frames), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_to(text_data="solo")
        assert await ws.receive_from() == "text solo"
        await ws.disconnect()


# -- observing transitions -------------------------------------------------------------------------------


class Observed(Guarded):
    records: ClassVar[list[TransitionRecord]] = []

    def on_transition(self, record: TransitionRecord) -> None:
        self.records.append(record)


async def test_on_transition_records_every_event() -> None:
    records: list[TransitionRecord] = []
    instances: list[Observed] = []
    app = app_for(Observed, records=records, instances=instances, log=[], unhandled="ignore", unhandled_client="ignore")
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "go", "n": 3})
        assert await ws.receive_json_from() == {"handler": "third"}
        await ws.send_json_to({"type": "go", "n": 99})  # every guard rejects it
        await ws.send_json_to({"type": "nothing"})
        await ws.send_json_to({"type": "go", "n": 1})
        assert await ws.receive_json_from() == {"handler": "first"}
        await ws.disconnect(1000)
    actor = instances[0]
    identity = f"{Observed.__qualname__}:{actor.channel_name}"
    assert {r.actor for r in records} == {identity}
    rows = [(r.kind, r.event, r.source, r.target, r.accepted, r.handler) for r in records]
    assert rows == [
        ("lifecycle", "accept", "connecting", "open.asking", True, None),
        ("client", "go", "open.asking", "open.asking", True, "third"),
        ("client", "go", "open.asking", "open.asking", False, None),
        ("client", "nothing", "open.asking", "open.asking", False, None),
        ("client", "go", "open.asking", "open.done", True, "first"),
        ("lifecycle", "disconnect", "open.done", "closed", True, None),
    ]
    times = [r.time for r in records]
    assert times == sorted(times)


# -- invoked tasks ----------------------------------------------------------------------------------------


class Tasks(Captured):
    working = State(invoke=["work"])
    shown = State()
    failed = State()

    gate: anyio.Event | None = None
    outcome: ClassVar[Any] = 42
    cancelled: ClassVar[list[str]] = []

    async def work(self) -> Any:
        try:
            assert self.gate is not None
            await self.gate.wait()
        finally:
            self.log.append("work finished")
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    @on.done("work", source=working, target=shown)
    async def worked(self, event: Any) -> None:
        await self.send_json({"done": event, "state": self.state})

    @on.error("work", source=working, target=failed, guard=lambda self, event: isinstance(event.error, ValueError))
    async def work_failed(self, event: TaskFailed) -> None:
        await self.send_json({"error": repr(event.error), "task": event.task})

    @on.client("leave", source=[working, shown, failed], target=shown)
    async def leave(self, event: dict[str, Any]) -> None:
        await self.send_json({"left": self.state})

    @on.client("again", source=[shown, failed], target=working)
    async def again(self, event: dict[str, Any]) -> None: ...


class CancelAware(Tasks):
    finished: anyio.Event | None = None

    async def work(self) -> Any:
        try:
            assert self.gate is not None
            await self.gate.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append("cancelled")
            raise
        finally:
            self.log.append("work finished")
            if self.finished is not None:
                self.finished.set()
        return self.outcome


async def test_invoked_task_result_arrives_as_done_event() -> None:
    gate = anyio.Event()
    log: list[str] = []
    async with WebsocketCommunicator(app_for(Tasks, gate=gate, log=log), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.receive_nothing(0.02)
        gate.set()
        assert await ws.receive_json_from() == {"done": 42, "state": "open.working"}
        assert await state_of(ws) == "open.shown"
        await ws.disconnect()
    assert log == ["work finished"]


async def test_invoked_task_exception_arrives_as_error_event() -> None:
    gate = anyio.Event()
    gate.set()
    app = app_for(Tasks, gate=gate, outcome=ValueError("boom"), log=[])
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"error": "ValueError('boom')", "task": "work"}
        assert await state_of(ws) == "open.failed"
        await ws.disconnect()


async def test_unhandled_task_error_fails_the_actor(caplog: pytest.LogCaptureFixture) -> None:
    gate = anyio.Event()
    gate.set()
    app = app_for(Tasks, gate=gate, outcome=KeyError("lost"), log=[])  # the guard rejects KeyError
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        close = await ws.receive_close()
        assert close.code == 1011
        await ws.disconnect()
    assert any("KeyError" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


async def test_invoked_task_is_cancelled_when_its_state_is_left() -> None:
    gate = anyio.Event()
    finished = anyio.Event()
    log: list[str] = []
    cancelled: list[str] = []
    app = app_for(CancelAware, gate=gate, log=log, cancelled=cancelled, finished=finished)
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "leave"})
        assert await ws.receive_json_from() == {"left": "open.working"}
        with anyio.fail_after(1):
            await finished.wait()
        assert cancelled == ["cancelled"]
        gate.set()
        await ws.receive_nothing(0.05)  # no done event from the cancelled task
        # entering the state again starts a new task, whose result is delivered
        await ws.send_json_to({"type": "again"})
        assert await ws.receive_json_from() == {"done": 42, "state": "open.working"}
        await ws.disconnect()
    assert log == ["work finished", "work finished"]


async def test_invoked_task_is_cancelled_on_disconnect() -> None:
    gate = anyio.Event()
    log: list[str] = []
    cancelled: list[str] = []
    async with WebsocketCommunicator(app_for(CancelAware, gate=gate, log=log, cancelled=cancelled), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.receive_nothing(0.02)
        await ws.disconnect()
    assert cancelled == ["cancelled"]
    assert log == ["work finished"]


# -- named timers -------------------------------------------------------------------------------------------


class Timers(Captured):
    ticking = State()

    @on.client("start")
    async def start(self, event: dict[str, Any]) -> None:
        try:
            self.start_timer(event["name"], event["seconds"])
        except ValueError as exc:
            await self.send_json({"error": str(exc)})
        else:
            await self.send_json({"started": event["name"]})

    @on.client("start_sync")
    def start_sync(self, event: dict[str, Any]) -> None:
        self.start_timer(event["name"], event["seconds"])
        self.send_json({"started": event["name"]})

    @on.client("cancel")
    async def cancel(self, event: dict[str, Any]) -> None:
        self.cancel_timer(event["name"])
        await self.send_json({"cancelled": event["name"]})

    @on.client("cancel_sync")
    def cancel_sync(self, event: dict[str, Any]) -> None:
        self.cancel_timer(event["name"])
        self.send_json({"cancelled": event["name"]})

    @on.timer("tick")
    async def tick(self, event: Timeout) -> None:
        await self.send_json({"timer": event.name, "seconds": event.seconds})


@pytest.mark.parametrize(
    ("name", "seconds", "error"),
    [
        ("nope", 1, "start_timer('nope'): no @on.timer('nope') handler is declared (timers: tick)"),
        ("tick", -1, "start_timer('tick', -1): seconds must be a number >= 0"),
    ],
)
async def test_start_timer_refuses_bad_arguments(name: str, seconds: float, error: str) -> None:
    async with WebsocketCommunicator(app_for(Timers), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "start", "name": name, "seconds": seconds})
        assert await ws.receive_json_from() == {"error": error}
        await ws.disconnect()


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
async def test_named_timer_fires_and_cancel_timer_stops_it(sync: bool) -> None:
    suffix = "_sync" if sync else ""
    async with WebsocketCommunicator(app_for(Timers), "/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "start" + suffix, "name": "tick", "seconds": 0.02})
        assert await ws.receive_json_from() == {"started": "tick"}
        assert await ws.receive_json_from() == {"timer": "tick", "seconds": 0.02}
        await ws.send_json_to({"type": "start" + suffix, "name": "tick", "seconds": 0.05})
        assert await ws.receive_json_from() == {"started": "tick"}
        await ws.send_json_to({"type": "cancel" + suffix, "name": "tick"})
        assert await ws.receive_json_from() == {"cancelled": "tick"}
        await ws.receive_nothing(0.15)
        await ws.send_json_to({"type": "cancel" + suffix, "name": "tick"})  # not running: harmless
        assert await ws.receive_json_from() == {"cancelled": "tick"}
        await ws.disconnect()


class FailsInRoom(JsonStateActor):
    calls: ClassVar[list[str]] = []
    lobby = State(initial=True)
    room = State(terminal=True)

    @on.client("join", source=lobby, target=room)
    async def join(self, event: dict[str, Any]) -> None:
        pass

    @room.exit
    def left(self) -> None:  # a sync hook, run in a worker thread
        type(self).calls.append(f"exit in {self.state}")

    @on.client("boom", source=room)
    async def boom(self, event: dict[str, Any]) -> None:
        raise RuntimeError("boom")


async def test_a_failing_handler_still_runs_exit_hooks(caplog: pytest.LogCaptureFixture) -> None:
    FailsInRoom.calls.clear()
    async with WebsocketCommunicator(FailsInRoom.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_json_to({"type": "join"})
        await ws.send_json_to({"type": "boom"})
        with caplog.at_level(logging.ERROR, "interlock.actors"):
            assert (await ws.receive_close()).code == 1011
            await ws.wait()
    assert FailsInRoom.calls == ["exit in closed"]


class ClosesOnReplay(JsonStateActor):
    unhandled = "close"
    groups = ("news",)
    lobby = State(initial=True, defer=["note", "other"])
    room = State(terminal=True)

    @on.client("join", source=lobby, target=room)
    async def join(self, event: dict[str, Any]) -> None:
        pass


async def test_a_replayed_event_that_closes_drops_the_rest_and_the_close_is_sent() -> None:
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"websocket": ClosesOnReplay.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/") as ws:
        assert (await ws.connect()).accepted
        await layer.group_send("news", {"type": "note"})  # both deferred in the lobby
        await layer.group_send("news", {"type": "other"})
        await ws.send_json_to({"type": "join"})  # the room handles neither: "note" closes
        close = await ws.receive_close()
        assert close.code == 1008
        assert "'note'" in close.reason
        await ws.receive_nothing()
        await ws.disconnect()
