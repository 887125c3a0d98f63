"""The DSL's statechart features at run time: history, eventless choices, named delays,
delays per class and per instance, subclass state overrides, hooks that take the
crossing, events raised to oneself.

Every test runs on asyncio (real delays of a fraction of a second) and on trio with its
virtual clock (delays of an hour, which take milliseconds).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import pytest
import trio.testing
from interlock.actors import EventlessLoop, JsonStateActor, ProtocolTypeRouter
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import Crossing, MachineDefinitionError, State, Timeout, on
from interlock.layers import InMemoryChannelLayer

HOUR = 3600.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


@pytest.fixture
def unit(anyio_backend_name: str) -> float:
    """The delay unit on this backend: an hour on trio's virtual clock, 0.1 s on asyncio."""
    return HOUR if anyio_backend_name == "trio" else 0.1


def communicator(actor: type[JsonStateActor], unit: float = 1.0, **initkwargs: Any) -> WebsocketCommunicator:
    app = ProtocolTypeRouter({"websocket": actor.as_asgi(**initkwargs)}, channel_layer=InMemoryChannelLayer())
    return WebsocketCommunicator(app, "/", timeout=max(20 * unit, 5.0))


class Reporting(JsonStateActor):
    """Answers ``where`` with its state; keeps a log per test (``log=[]``)."""

    log: ClassVar[list[Any]] = []

    @on.client("where")
    async def where(self, event: dict[str, Any]) -> None:
        await self.send_json({"state": self.state})


async def state_of(ws: WebsocketCommunicator) -> str:
    await ws.send_json_to({"type": "where"})
    reply = await ws.receive_json_from()
    return str(reply["state"])


# -- history -------------------------------------------------------------------------------------------


class Game(Reporting):
    """playing > (my_turn > (thinking, confirming), their_turn); away; the history of playing."""

    playing = State()
    my_turn = State(parent=playing)
    thinking = State(parent=my_turn)
    confirming = State(parent=my_turn)
    their_turn = State(parent=playing)
    away = State()
    deep_away = State()

    @on.client("move", source=thinking, target=confirming)
    async def move(self, event: dict[str, Any]) -> None: ...

    @on.client("confirm", source=confirming, target=their_turn)
    async def confirm(self, event: dict[str, Any]) -> None: ...

    @on.client("moved", source=their_turn, target=my_turn)
    async def moved(self, event: dict[str, Any]) -> None: ...

    @on.client("leave", source=playing, target=away)
    async def leave(self, event: dict[str, Any]) -> None: ...

    @on.client("leave_deep", source=playing, target=deep_away)
    async def leave_deep(self, event: dict[str, Any]) -> None: ...

    @on.client("back", source=away, target=playing.history)
    async def back(self, event: dict[str, Any]) -> None: ...

    @on.client("back", source=deep_away, target=playing.deep_history)
    async def back_deep(self, event: dict[str, Any]) -> None: ...

    @my_turn.enter
    async def entered_my_turn(self) -> None:
        self.log.append("enter my_turn")


@pytest.mark.parametrize(
    ("before", "leave", "state"),
    [
        pytest.param([], "leave", "open.playing.my_turn.thinking", id="shallow-initial"),
        pytest.param(["move"], "leave", "open.playing.my_turn.thinking", id="shallow-restores-child-then-initial"),
        pytest.param(["move", "confirm"], "leave", "open.playing.their_turn", id="shallow-their-turn"),
        pytest.param(["move"], "leave_deep", "open.playing.my_turn.confirming", id="deep-exact-leaf"),
        pytest.param(["move", "confirm"], "leave_deep", "open.playing.their_turn", id="deep-their-turn"),
    ],
)
async def test_history_resumes_where_the_state_was_left(before: list[str], leave: str, state: str) -> None:
    async with communicator(Game, log=[]) as ws:
        assert (await ws.connect()).accepted
        for event in before:
            await ws.send_json_to({"type": event})
        await ws.send_json_to({"type": leave})
        assert (await state_of(ws)).endswith("away")
        await ws.send_json_to({"type": "back"})
        assert await state_of(ws) == state


async def test_history_before_the_state_was_ever_left_enters_its_initial_states() -> None:
    class Lobby(Game):
        lobby = State(initial=True)

        @on.client("join", source=lobby, target=Game.playing.history)
        async def join(self, event: dict[str, Any]) -> None: ...

    async with communicator(Lobby, log=[]) as ws:
        assert (await ws.connect()).accepted
        assert await state_of(ws) == "open.lobby"
        await ws.send_json_to({"type": "join"})
        assert await state_of(ws) == "open.playing.my_turn.thinking"


# -- eventless choices -------------------------------------------------------------------------------------


class Router(Reporting):
    """``routing`` decides at once where to go; ``counting`` leaves when the count reaches 3."""

    routing = State()
    admin = State(terminal=True)
    guest = State()
    counting = State(terminal=True)
    enough = State(terminal=True)
    is_admin: bool = False
    count: int = 0

    @on.always(source=routing, target=admin, guard=lambda self, event: self.is_admin)
    async def to_admin(self, event: None) -> None:
        self.log.append(("to_admin", event, self.state))

    @on.always(source=routing, target=guest)
    async def to_guest(self, event: None) -> None:
        self.log.append(("to_guest", event, self.state))

    @on.client("count", source=guest, target=counting)
    async def start_counting(self, event: dict[str, Any]) -> None: ...

    @on.client("tick", source=counting)
    async def tick(self, event: dict[str, Any]) -> None:
        self.count += 1

    @on.always(source=counting, target=enough, guard=lambda self, event: self.count >= 3)
    async def done_counting(self, event: None) -> None:
        self.log.append("enough")


@pytest.mark.parametrize(("is_admin", "state"), [(True, "open.admin"), (False, "open.guest")])
async def test_an_eventless_choice_is_taken_on_entry(is_admin: bool, state: str) -> None:
    log: list[Any] = []
    async with communicator(Router, log=log, is_admin=is_admin) as ws:
        assert (await ws.connect()).accepted
        assert await state_of(ws) == state
    assert log == [("to_admin" if is_admin else "to_guest", None, "open.routing")]


async def test_an_eventless_choice_is_checked_after_internal_transitions() -> None:
    log: list[Any] = []
    async with communicator(Router, log=log) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "count"})
        for expected in ("open.counting", "open.counting", "open.enough"):
            await ws.send_json_to({"type": "tick"})
            assert await state_of(ws) == expected
    assert log[-1] == "enough"


async def test_eventless_choices_that_never_settle_fail_the_actor(caplog: pytest.LogCaptureFixture) -> None:
    class PingPong(Reporting):
        ping = State()
        pong = State()

        @on.always(source=ping, target=pong, guard=lambda self, event: True)
        async def to_pong(self, event: None) -> None: ...

        @on.always(source=pong, target=ping, guard=lambda self, event: True)
        async def to_ping(self, event: None) -> None: ...

    caplog.set_level(logging.ERROR, "interlock.actors")
    async with communicator(PingPong) as ws:
        await ws.connect()
        close = await ws.receive_close()
        assert close.code == 1011
    assert any(isinstance(r.exc_info[1], EventlessLoop) for r in caplog.records if r.exc_info)
    assert "eventless choices in a row" in caplog.text


# -- named delays, per class, per instance, in subclasses ------------------------------------------------


class Turns(Reporting):
    """my_turn warns after 1 unit and forfeits after 2; a move within them goes to waiting."""

    my_turn = State(after={"warn": 1, "forfeit": 2})
    waiting = State(timeout=5)
    lost = State(terminal=True)
    unit: float = 1.0

    @on.after("warn", source=my_turn)
    async def warn(self, event: Timeout) -> None:
        self.log.append(("warn", event.name, self.state))
        await self.send_json({"warned": event.name})

    @on.after("forfeit", source=my_turn, target=lost)
    async def forfeit(self, event: Timeout) -> None:
        self.log.append(("forfeit", event.name))
        await self.send_json({"forfeit": True})

    @on.client("move", source=my_turn, target=waiting)
    async def move(self, event: dict[str, Any]) -> None: ...

    @on.timeout(waiting, target=my_turn)
    async def their_move(self, event: Timeout) -> None:
        self.log.append(("timeout", event.name))


def scaled(unit: float) -> dict[str, float]:
    return {"my_turn:warn": 1 * unit, "my_turn:forfeit": 2 * unit, "waiting": 5 * unit}


async def test_named_delays_fire_in_order_while_in_their_state(unit: float) -> None:
    log: list[Any] = []
    started = time.monotonic()
    async with communicator(Turns, unit, log=log, delays=scaled(unit)) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"warned": "warn"}
        assert await ws.receive_json_from() == {"forfeit": True}
        assert await state_of(ws) == "open.lost"
    assert log == [("warn", "warn", "open.my_turn"), ("forfeit", "forfeit")]
    if unit == HOUR:
        assert time.monotonic() - started < 5, "the virtual clock did not jump"


async def test_leaving_a_state_cancels_its_delays(unit: float) -> None:
    log: list[Any] = []
    async with communicator(Turns, unit, log=log, delays=scaled(unit)) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "move"})  # before the warning
        assert await state_of(ws) == "open.waiting"
        assert await ws.receive_json_from() == {"warned": "warn"}  # back in my_turn after 5 units, warned anew
        assert log == [("timeout", "waiting"), ("warn", "warn", "open.my_turn")]


async def test_delays_set_per_class_and_by_state_override(unit: float) -> None:
    class Quick(Turns):
        delays: ClassVar[dict[str, float]] = {"my_turn:warn": 0.5}

    assert Quick.machine.delays["open.my_turn", "warn"] == 0.5
    assert Quick.machine.delays["open.my_turn", "forfeit"] == 2

    class Overridden(Turns):
        my_turn = Turns.my_turn.replace(after={"warn": 3, "forfeit": 4})

    assert Overridden.machine.delays["open.my_turn", "warn"] == 3
    assert [t.handler for t in Overridden.machine.transitions if t.source == "open.my_turn"] == [
        "warn",
        "forfeit",
        "move",
    ]
    assert Overridden.machine.dispatch["open.waiting", "timeout", "open.waiting"][0].target == "open.my_turn"

    log: list[Any] = []
    delays = {"my_turn:warn": 3 * unit, "my_turn:forfeit": 4 * unit, "waiting": unit}
    async with communicator(Overridden, unit, log=log, delays=delays) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"warned": "warn"}


async def test_idle_timeout_per_instance(unit: float) -> None:
    class Idle(Reporting):
        idle_timeout = 100.0

        @on.idle()
        async def idle(self, event: Timeout) -> None:
            await self.close(4000, f"idle {event.seconds:g}")

    async with communicator(Idle, unit, idle_timeout=unit) as ws:
        assert (await ws.connect()).accepted
        close = await ws.receive_close()
        assert (close.code, close.reason) == (4000, f"idle {unit:g}")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"delays": {"nowhere": 1}}, ValueError, "delays names 'nowhere', which is no delay of this class"),
        ({"delays": {"my_turn:nap": 1}}, ValueError, "my_turn:warn, my_turn:forfeit, waiting"),
        ({"delays": {"waiting": -1}}, ValueError, "expected a positive number of seconds"),
        ({"delays": [("waiting", 1)]}, TypeError, "expected a mapping"),
        ({"idle_timeout": 1}, ValueError, "declares no idle timeout"),
        ({"idle_timeout": "soon"}, ValueError, "expected a positive number of seconds or None"),
    ],
)
def test_bad_per_instance_delays_are_refused_by_as_asgi(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        Turns.as_asgi(**kwargs)


# -- hooks that take the crossing --------------------------------------------------------------------------


class Hooked(Reporting):
    lobby = State()
    room = State()

    @on.client("join", source=lobby, target=room)
    async def join(self, event: dict[str, Any]) -> None: ...

    @on.client("leave", source=room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None: ...

    @lobby.exit
    async def left_lobby(self, crossing: Crossing) -> None:
        self.log.append(("exit lobby", crossing, self.state))

    @room.enter
    async def entered_room(self, crossing: Crossing) -> None:
        self.log.append(("enter room", crossing))

    @room.exit
    async def left_room(self, crossing: Crossing) -> None:
        self.log.append(("exit room", crossing.teardown, crossing.kind, crossing.event, crossing.target))

    @lobby.enter
    async def entered_lobby(self) -> None:  # no parameter: called without the crossing
        self.log.append("enter lobby")


async def test_hooks_may_take_the_crossing() -> None:
    log: list[Any] = []
    async with communicator(Hooked, log=log) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "join", "room": "a"})
        assert await state_of(ws) == "open.room"
        await ws.disconnect(1000)
    assert log[0] == "enter lobby"
    (_, crossing, state), (_, entered) = log[1], log[2]
    assert crossing == Crossing("client", "join", {"type": "join", "room": "a"}, "open.lobby", "open.room")
    assert state == "open.room"  # during an exit hook self.state already names the target
    assert entered == crossing
    assert log[3] == ("exit room", True, "lifecycle", "disconnect", "closed")


def test_a_hook_with_two_parameters_is_refused() -> None:
    with pytest.raises(MachineDefinitionError, match=r"hook 'bad' of state 'open\.a' takes 2 arguments"):

        class Bad(JsonStateActor):
            a = State()

            @a.enter
            def bad(self, one: Any, two: Any) -> None: ...


# -- raise_event -------------------------------------------------------------------------------------------


class Raiser(Reporting):
    @on.client("go")
    async def go(self, event: dict[str, Any]) -> None:
        self.raise_event({"type": "step", "n": 1})
        self.raise_event({"type": "step", "n": 2})
        await self.send_json({"handled": "go"})

    @on.message("step")
    async def step(self, event: dict[str, Any]) -> None:
        await self.send_json({"step": event["n"]})
        if event["n"] == 2:
            self.raise_event({"type": "step", "n": 3})


async def test_raised_events_are_handled_next_in_order_before_the_mailbox() -> None:
    async with communicator(Raiser) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "go"})
        await ws.send_json_to({"type": "where"})  # queued in the mailbox while go runs
        replies = [await ws.receive_json_from() for _ in range(5)]
    assert replies == [{"handled": "go"}, {"step": 1}, {"step": 2}, {"step": 3}, {"state": "open"}]


@pytest.mark.parametrize("message", [{"n": 1}, {"type": ""}, "step"])
def test_raise_event_needs_a_typed_dict(message: Any) -> None:
    actor = Raiser()
    with pytest.raises(TypeError, match="expected a dict whose 'type' is a non-empty str"):
        actor.raise_event(message)


# -- named timers belong to the actor -------------------------------------------------------------------


class Reminder(Reporting):
    waiting = State()
    done = State(terminal=True)

    @on.client("remind", source=waiting)
    async def remind(self, event: dict[str, Any]) -> None:
        self.start_timer("ping", event["after"])

    @on.client("finish", source=waiting, target=done)
    async def finish(self, event: dict[str, Any]) -> None: ...

    @on.timer("ping", source=waiting)
    async def ping(self, event: Timeout) -> None:
        await self.send_json({"ping": event.name})


async def test_a_timer_due_in_a_state_without_its_handler_is_dropped(
    unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "interlock.actors")
    async with communicator(Reminder, unit) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "remind", "after": unit})
        await ws.send_json_to({"type": "finish"})
        assert await state_of(ws) == "open.done"
        await ws.receive_nothing(3 * unit)
        await ws.send_json_to({"type": "where"})  # still open: the timer did not close it
        assert await ws.receive_json_from() == {"state": "open.done"}
    assert "ignored timer 'ping': state 'open.done' has no handler for it" in caplog.text


# -- parallel regions ----------------------------------------------------------------------------------------


class Call(JsonStateActor):
    """Main states lobby -> in_room; region audio (unmuted/muted, which unmutes itself after a
    while); region video (hidden/shown)."""

    log: ClassVar[list[Any]] = []
    lobby = State()
    in_room = State(terminal=True)
    unmuted = State(region="audio")
    muted = State(region="audio", tags=["quiet"], after={"auto_unmute": 1})
    hidden = State(region="video")
    shown = State(region="video")

    @on.client("where")
    async def where(self, event: dict[str, Any]) -> None:
        await self.send_json({"state": self.state, "regions": self.regions, "quiet": self.has_tag("quiet")})

    @on.client("join", source=lobby, target=in_room)
    async def join(self, event: dict[str, Any]) -> None:
        self.log.append("join")

    @on.client("mute", source=unmuted, target=muted)
    async def mute(self, event: dict[str, Any]) -> None:
        self.log.append("mute")

    @on.client("unmute", source=muted, target=unmuted)
    async def unmute(self, event: dict[str, Any]) -> None:
        self.log.append("unmute")

    @on.after("auto_unmute", source=muted, target=unmuted)
    async def auto_unmute(self, event: Timeout) -> None:
        self.log.append("auto_unmute")
        await self.send_json({"auto": "unmuted"})

    @on.client("toggle", source=hidden, target=shown)
    async def show(self, event: dict[str, Any]) -> None:
        self.log.append("show")

    @on.client("toggle", source=shown, target=hidden)
    async def hide(self, event: dict[str, Any]) -> None:
        self.log.append("hide")

    @on.client("reset", source=in_room)
    async def reset_main(self, event: dict[str, Any]) -> None:
        self.log.append("reset main")

    @on.client("reset", source=muted, target=unmuted)
    async def reset_audio(self, event: dict[str, Any]) -> None:
        self.log.append("reset audio")

    @lobby.enter
    async def enter_lobby(self) -> None:
        self.log.append("enter lobby")

    @lobby.exit
    async def exit_lobby(self) -> None:
        self.log.append("exit lobby")

    @in_room.exit
    async def exit_room(self) -> None:
        self.log.append("exit in_room")

    @unmuted.enter
    async def enter_unmuted(self, crossing: Crossing) -> None:
        self.log.append(("enter unmuted", crossing.source))

    @unmuted.exit
    async def exit_unmuted(self) -> None:
        self.log.append("exit unmuted")

    @hidden.enter
    async def enter_hidden(self) -> None:
        self.log.append("enter hidden")

    @hidden.exit
    async def exit_hidden(self) -> None:
        self.log.append("exit hidden")

    async def disconnect(self, code: int) -> None:
        self.log.append(("disconnect", code))


async def where_call(ws: WebsocketCommunicator) -> dict[str, Any]:
    await ws.send_json_to({"type": "where"})
    reply: dict[str, Any] = await ws.receive_json_from()
    return reply


AUDIO, VIDEO = "open.audio", "open.video"


async def test_regions_are_entered_with_open_and_run_alongside_the_main_states() -> None:
    log: list[Any] = []
    async with communicator(Call, log=log) as ws:
        assert (await ws.connect()).accepted
        assert await where_call(ws) == {
            "state": "open.lobby",
            "regions": {"audio": f"{AUDIO}.unmuted", "video": f"{VIDEO}.hidden"},
            "quiet": False,
        }
        assert log == ["enter lobby", ("enter unmuted", "connecting"), "enter hidden"]
        log.clear()
        for event in ("mute", "join", "toggle"):
            await ws.send_json_to({"type": event})
        assert await where_call(ws) == {
            "state": "open.in_room",
            "regions": {"audio": f"{AUDIO}.muted", "video": f"{VIDEO}.shown"},
            "quiet": True,
        }
        assert log == ["mute", "exit unmuted", "join", "exit lobby", "show", "exit hidden"]
        log.clear()
        await ws.send_json_to({"type": "reset"})  # both the main state and the audio region take it
        assert (await where_call(ws))["regions"]["audio"] == f"{AUDIO}.unmuted"
        assert log == ["reset main", "reset audio", ("enter unmuted", f"{AUDIO}.muted")]
        log.clear()
        await ws.disconnect(1000)
    assert log == ["exit unmuted", "exit in_room", ("disconnect", 1000)]  # video is shown: no exit hook


async def test_region_states_exit_before_the_main_ones_when_the_connection_ends() -> None:
    log: list[Any] = []
    async with communicator(Call, log=log) as ws:
        assert (await ws.connect()).accepted
        await where_call(ws)
        log.clear()
        await ws.disconnect(1001)
    assert log == ["exit hidden", "exit unmuted", "exit lobby", ("disconnect", 1001)]


async def test_an_event_no_region_and_no_main_state_takes_is_unhandled() -> None:
    async with communicator(Call, log=[]) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "unmute"})  # audio is unmuted: nothing takes it
        close = await ws.receive_close()
        assert close.code == 1008
        assert "no handler for client event 'unmute'" in close.reason


async def test_a_region_delay_fires_and_is_cancelled_when_the_region_leaves_its_state(unit: float) -> None:
    log: list[Any] = []
    async with communicator(Call, unit, log=log, delays={"muted:auto_unmute": unit}) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "mute"})
        assert await ws.receive_json_from() == {"auto": "unmuted"}
        assert (await where_call(ws))["regions"]["audio"] == f"{AUDIO}.unmuted"
        await ws.send_json_to({"type": "mute"})
        await ws.send_json_to({"type": "unmute"})  # before the delay: it is cancelled
        await ws.receive_nothing(2 * unit)
        assert log.count("auto_unmute") == 1


@pytest.mark.parametrize(
    ("attrs_", "match"),
    [
        (
            lambda: {"a": State(), "b": State(region="r"), "go": on.client("go", source="a", target="b")(_noop)},
            r"goes from 'open\.a' \(the main states\) to 'open\.r\.b' \(region 'r'\); a transition stays within",
        ),
        (lambda: {"a": State(region="a")}, "region 'a' has the name of a state"),
        (lambda: {"a": State(region="r", defer=["x"])}, "is in region 'r' and defers events"),
        (
            lambda: {"a": State(region="r", initial=True), "b": State(region="r", initial=True)},
            "region 'r' has several initial children: a, b",
        ),
    ],
)
def test_region_mistakes_are_refused(attrs_: Any, match: str) -> None:
    with pytest.raises(MachineDefinitionError, match=match):
        type("Bad", (JsonStateActor,), attrs_())


async def _noop(self: Any, event: Any) -> None: ...


def test_an_actor_reads_its_effective_delays() -> None:
    class Faster(Turns):
        delays: ClassVar[dict[str, float]] = {"my_turn:warn": 0.5}

    actor = Faster(delays={"waiting": 2})
    assert actor.delay("my_turn:warn") == 0.5  # the class's override
    assert actor.delay("my_turn:forfeit") == 2  # as declared
    assert actor.delay("waiting") == 2  # this instance's
    assert Faster().delay("waiting") == 5
    with pytest.raises(ValueError, match="no such delay; the delays are: my_turn:warn, my_turn:forfeit, waiting"):
        actor.delay("my_turn:nap")
