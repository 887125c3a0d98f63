"""The planner without an event loop: selection, targets with history, crossings as data;
and the definition mistakes that class creation refuses."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
from interlock.actors import JsonStateActor, WebsocketActor
from interlock.dsl import (
    Entry,
    Exit,
    MachineDefinitionError,
    Plan,
    State,
    Timeout,
    Transition,
    compile_machine,
    on,
    plan_crossing,
    select,
    target_of,
)


class Machine:
    """A plain class: the planner needs only its compiled spec."""

    idle_timeout = None
    playing = State(after={"nudge": 5})
    my_turn = State(parent=playing, timeout=30)
    thinking = State(parent=my_turn)
    confirming = State(parent=my_turn)
    their_turn = State(parent=playing, invoke=["watch"])
    away = State()
    deep_away = State()

    async def watch(self) -> None: ...

    @on.after("nudge", source=playing)
    def nudge(self, event: Timeout) -> None: ...

    @on.timeout(my_turn, target=their_turn)
    def too_slow(self, event: Timeout) -> None: ...

    @on.client("move", source=thinking, target=confirming)
    def move(self, event: Any) -> None: ...

    @on.client("confirm", source=confirming, target=their_turn, guard=lambda self, event: event.get("ok"))
    def confirm(self, event: Any) -> None: ...

    @on.client("confirm", source=confirming, target=thinking)
    def retry(self, event: Any) -> None: ...

    @on.client("moved", source=their_turn, target=my_turn)
    def moved(self, event: Any) -> None: ...

    @on.client("leave", source=playing, target=away)
    def leave(self, event: Any) -> None: ...

    @on.client("leave_deep", source=playing, target=deep_away)
    def leave_deep(self, event: Any) -> None: ...

    @on.client("back", source=away, target=playing.history)
    def back(self, event: Any) -> None: ...

    @on.client("back", source=deep_away, target=playing.deep_history)
    def back_deep(self, event: Any) -> None: ...

    @playing.exit
    def left(self) -> None: ...

    @my_turn.enter
    def turn(self, crossing: Any) -> None: ...


SPEC = compile_machine(Machine)
PLAYING, MY_TURN, THINKING, CONFIRMING, THEIR_TURN, AWAY = (
    "open.playing",
    "open.playing.my_turn",
    "open.playing.my_turn.thinking",
    "open.playing.my_turn.confirming",
    "open.playing.their_turn",
    "open.away",
)


def passes(event: dict[str, Any]) -> Any:
    return lambda t: t.guard is None or t.guard(None, event)


def test_select_takes_the_first_passing_guard_or_says_none_passed() -> None:
    chosen = select(SPEC, CONFIRMING, "client", "confirm", passes({"ok": True}))
    assert isinstance(chosen, Transition)
    assert chosen.handler == "confirm"
    chosen = select(SPEC, CONFIRMING, "client", "confirm", passes({"ok": False}))
    assert isinstance(chosen, Transition)
    assert chosen.handler == "retry"
    refused = select(SPEC, CONFIRMING, "client", "confirm", lambda t: False)
    assert isinstance(refused, tuple)
    assert [t.handler for t in refused] == ["confirm", "retry"]
    assert select(SPEC, THINKING, "client", "confirm", passes({})) is None


def test_nested_states_inherit_their_parents_transitions() -> None:
    chosen = select(SPEC, CONFIRMING, "client", "leave", passes({}))
    assert isinstance(chosen, Transition)
    assert (chosen.source, chosen.target) == (PLAYING, AWAY)


@pytest.mark.parametrize(
    ("history", "shallow", "deep"),
    [
        ({}, THINKING, THINKING),
        ({PLAYING: CONFIRMING}, THINKING, CONFIRMING),
        ({PLAYING: THEIR_TURN}, THEIR_TURN, THEIR_TURN),
    ],
)
def test_history_targets_resolve_from_the_memory(history: dict[str, str], shallow: str, deep: str) -> None:
    back = SPEC.dispatch[AWAY, "client", "back"][0]
    back_deep = SPEC.dispatch["open.deep_away", "client", "back"][0]
    assert (back.history, back_deep.history) == ("shallow", "deep")
    assert target_of(SPEC, back, history) == shallow
    assert target_of(SPEC, back_deep, history) == deep
    assert target_of(SPEC, back, None) == THINKING


def test_a_crossing_lists_exits_innermost_first_then_entries() -> None:
    plan = plan_crossing(SPEC, CONFIRMING, AWAY, AWAY)
    assert plan == Plan(
        exits=(
            Exit(CONFIRMING, MY_TURN, (), (), tasks=False, records=False),
            Exit(MY_TURN, PLAYING, (), ("",), tasks=False, records=False),
            Exit(PLAYING, "open", ("left",), ("nudge",), tasks=False, records=True),
        ),
        entries=(Entry(AWAY, (), (), ()),),
    )
    assert plan_crossing(SPEC, CONFIRMING, AWAY, AWAY) is plan  # cached


def test_entering_nested_states_arms_their_delays_and_starts_their_tasks() -> None:
    plan = plan_crossing(SPEC, AWAY, THINKING, PLAYING)
    assert [(e.state, e.hooks, e.delays) for e in plan.entries] == [
        (PLAYING, (), ("nudge",)),
        (MY_TURN, ("turn",), ("",)),
        (THINKING, (), ()),
    ]
    plan = plan_crossing(SPEC, THINKING, THEIR_TURN, THEIR_TURN)
    assert [e.state for e in plan.exits] == [THINKING, MY_TURN]
    assert plan.entries == (Entry(THEIR_TURN, (), (), ("watch",)),)


def test_an_external_self_transition_exits_and_reenters() -> None:
    plan = plan_crossing(SPEC, THEIR_TURN, MY_TURN + ".thinking", MY_TURN)
    assert [e.state for e in plan.exits] == [THEIR_TURN]
    plan = plan_crossing(SPEC, THINKING, THINKING, PLAYING)
    assert [e.state for e in plan.exits] == [THINKING, MY_TURN, PLAYING]
    assert [e.state for e in plan.entries] == [PLAYING, MY_TURN, THINKING]


def test_the_spec_knows_delays_hooks_that_take_the_crossing_and_choices() -> None:
    assert SPEC.delays == {(PLAYING, "nudge"): 5, (MY_TURN, ""): 30}
    assert SPEC.crossing_hooks == frozenset({"turn"})
    assert not SPEC.eventless
    assert SPEC.states[PLAYING].history
    assert not SPEC.states[MY_TURN].history
    assert SPEC.delay_key("my_turn") == (MY_TURN, "")
    assert SPEC.delay_key("playing:nudge") == (PLAYING, "nudge")
    assert SPEC.delay_key("open.playing:nudge") == (PLAYING, "nudge")
    with pytest.raises(KeyError):
        SPEC.delay_key("playing:nap")


# -- definition mistakes ------------------------------------------------------------------------------


@attrs.define
class Move:
    type: ClassVar[str] = "move"
    square: int


@attrs.define
class Resign:
    type: ClassVar[str] = "resign"


def refused(match: str) -> Any:
    return pytest.raises(MachineDefinitionError, match=match)


def test_a_handler_after_an_unguarded_one_for_the_same_event_is_dead_code() -> None:
    with refused("handler 'second' .* can never run: 'first' is declared before it"):

        class Twice(JsonStateActor):
            @on.client("go")
            async def first(self, event: dict[str, Any]) -> None: ...

            @on.client("go")
            async def second(self, event: dict[str, Any]) -> None: ...


def test_a_guarded_handler_before_an_unguarded_one_is_fine() -> None:
    class Fallback(JsonStateActor):
        @on.client("go", guard=lambda self, event: bool(event.get("n")))
        async def first(self, event: dict[str, Any]) -> None: ...

        @on.client("go")
        async def second(self, event: dict[str, Any]) -> None: ...

    assert [t.handler for t in Fallback.machine.dispatch["open", "client", "go"]] == ["first", "second"]


def test_an_annotation_that_disagrees_with_the_decorator_is_refused() -> None:
    with refused(r"annotated to take Move, but the decorator names Resign"):

        class Mismatch(JsonStateActor):
            @on.client(Resign)
            async def resign(self, event: Move) -> None: ...

    with refused(r"annotated to take Move, but the decorator names the event 'move' as a str.*@on.client\(Move\)"):

        class Untyped(JsonStateActor):
            @on.client("move")
            async def move(self, event: Move) -> None: ...

    class Agrees(JsonStateActor):
        @on.client(Move)
        async def move(self, event: Move) -> None: ...

    assert Agrees.machine.dispatch["open", "client", "move"][0].message_class is Move


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            lambda: {"a": State(after={"nap": 1}), "b": State()},
            "state 'open.a' has a delay 'nap' but no handler",
        ),
    ],
)
def test_a_delay_without_a_handler_is_refused(body: Any, match: str) -> None:
    with refused(match):
        type("NoHandler", (JsonStateActor,), body())


def test_on_after_must_name_a_delay_of_its_source() -> None:
    with refused(r"state 'open.a' declares no delay 'nap' \(its delays: warn\)"):

        class Wrong(JsonStateActor):
            a = State(after={"warn": 1})

            @on.after("warn", source=a)
            async def warn(self, event: Timeout) -> None: ...

            @on.after("nap", source=a)
            async def nap(self, event: Timeout) -> None: ...


def test_history_of_a_state_without_children_is_refused() -> None:
    with refused("targets the history of 'open.a', which has no states inside it"):

        class Flat(JsonStateActor):
            a = State()
            b = State()

            @on.client("go", source=b, target=a.history)
            async def go(self, event: dict[str, Any]) -> None: ...

            @on.client("go", source=a, target=b)
            async def back(self, event: dict[str, Any]) -> None: ...


def test_an_unguarded_choice_into_its_own_source_is_refused() -> None:
    with refused("eventless choice 'again' .* would be taken forever"):

        class Forever(JsonStateActor):
            a = State()

            @on.always(source=a, target=a)
            async def again(self, event: None) -> None: ...

    with pytest.raises(TypeError, match="needs a target"):
        on.always(source="a", target=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "match"),
    [
        ({"": 1}, "a delay's name is an identifier"),
        ({"warn": 0}, "a delay is a positive number"),
        ({"w": True}, "a delay is a positive number"),
    ],
)
def test_bad_delays_are_refused_by_state(after: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        State(after=after)


def test_class_delays_must_name_delays() -> None:
    with refused("delays names 'b', which is no delay of this class; the delays are: a"):

        class Wrong(JsonStateActor):
            delays: ClassVar[dict[str, float]] = {"b": 1}
            a = State(timeout=2)

            @on.timeout(a)
            async def late(self, event: Timeout) -> None: ...


def test_state_replace_copies_and_checks_fields() -> None:
    base = State(timeout=5, tags=["x"])
    copy = base.replace(timeout=1)
    assert (copy.timeout, copy.tags, base.timeout) == (1, frozenset({"x"}), 5)
    with pytest.raises(TypeError, match="unknown field"):
        base.replace(timeotu=1)


def test_a_subclass_override_keeps_the_parents_transitions() -> None:
    class Base(JsonStateActor):
        a = State(timeout=10)
        b = State(terminal=True)

        @on.timeout(a, target=b)
        async def late(self, event: Timeout) -> None: ...

    class Fast(Base):
        a = State(timeout=0.1)

    assert Fast.machine.states["open.a"].timeout == 0.1
    assert Fast.machine.dispatch["open.a", "timeout", "open.a"][0].target == "open.b"
    assert Base.machine.states["open.a"].timeout == 10


def test_a_plain_actor_with_an_idle_timeout_is_drawn() -> None:
    """A plain actor's idle_timeout closes the connection itself: no @on.idle() is asked for."""

    class Quiet(WebsocketActor):
        idle_timeout = 300.0

    assert "connecting --> open: accept" in Quiet.diagram("mermaid")
    assert Quiet.machine_spec().idle_timeout is None
    with refused("idle_timeout = 300 but no handler"):

        class Stateful(JsonStateActor):
            idle_timeout = 300


@pytest.mark.parametrize("name", ["accept", "send_json", "close", "raise_event"])
def test_a_handler_named_like_one_of_the_actors_methods_is_refused(name: str) -> None:
    async def body(self: Any, event: Any) -> None: ...

    body.__name__ = name
    with refused(f"handler {name!r} would replace the actor's own {name}\\(\\)"):
        type("Shadow", (JsonStateActor,), {"a": State(), name: on.client("go", source="a")(body)})
