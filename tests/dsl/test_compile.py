"""compile_machine, sans IO: nesting, tags, hooks, dispatch order and every class-creation check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pytest
from interlock.actors import JsonStateActor, WebsocketActor
from interlock.dsl import (
    LIFECYCLE,
    MachineDefinitionError,
    MachineSpec,
    State,
    TaskFailed,
    Timeout,
    compile_machine,
    on,
)


def token_ok(self: Any, event: Any) -> bool:
    return bool(event.get("token"))


class Game:
    """A plain class: compile_machine needs no actor base class.

    open.lobby                   tags public
    open.room                    tags member, 30 s timeout, defers chat
        open.room.waiting        (first child)
        open.room.playing        initial=True, tags busy, defers move
            open.room.playing.turn   (only child: initial by default)
    open.done                    terminal
    """

    lobby = State(tags=["public"])
    room = State(tags=["member"], timeout=30, defer=["chat"])
    waiting = State(parent=room)
    playing = State(parent="room", initial=True, tags=["busy"], defer=["move"])
    turn = State(parent="room.playing")
    done = State(terminal=True)

    calls: ClassVar[list[str]] = []

    @on.client("join", source=lobby, target=room, guard=token_ok)
    def join(self, event: Any) -> None: ...

    @on.client("join", source=lobby)
    def join_refused(self, event: Any) -> None: ...

    @on.client("ping")
    def ping(self, event: Any) -> None: ...

    @on.client("ping", source="open.room.playing.turn")
    def ping_in_turn(self, event: Any) -> None: ...

    @on.client("ping", source=room, guard="is_even")
    def ping_in_room(self, event: Any) -> None: ...

    @on.client("wait", source="playing", target="waiting")
    def wait(self, event: Any) -> None: ...

    @on.client("play", source=waiting, target=playing)
    def play(self, event: Any) -> None: ...

    @on.client("leave", source=room, target=lobby)
    def leave(self, event: Any) -> None: ...

    @on.client("finish", source=[lobby, room], target=done)
    def finish(self, event: Any) -> None: ...

    @on.timeout(room, target=lobby)
    def room_timeout(self, event: Timeout) -> None: ...

    @on.message("chat", source=playing, guard=lambda self, event: True)
    def chat(self, event: Any) -> None: ...

    def is_even(self, event: Any) -> bool:
        return True

    @room.enter
    def enter_room(self) -> None: ...

    @room.enter
    def enter_room_again(self) -> None: ...

    @room.exit
    @lobby.exit
    def exit_somewhere(self) -> None: ...


@pytest.fixture(scope="module")
def game() -> MachineSpec:
    return compile_machine(Game)


def test_nested_state_paths_parents_children(game: MachineSpec) -> None:
    assert list(game.states) == [
        "open.lobby",
        "open.room",
        "open.room.waiting",
        "open.room.playing",
        "open.room.playing.turn",
        "open.done",
    ]
    room = game.states["open.room"]
    assert room.name == "room"
    assert room.parent == "open"
    assert room.children == ("open.room.waiting", "open.room.playing")
    assert game.states["open.room.playing.turn"].parent == "open.room.playing"
    assert game.states["open.lobby"].children == ()
    assert game.owner == "Game"


@pytest.mark.parametrize(
    ("path", "initial"),
    [
        ("open.room", "open.room.playing"),  # initial=True beats declaration order
        ("open.room.playing", "open.room.playing.turn"),  # an only child is the initial one
        ("open.lobby", None),  # a leaf has none
    ],
)
def test_initial_child(game: MachineSpec, path: str, initial: str | None) -> None:
    assert game.states[path].initial == initial


def test_initial_child_defaults_to_first_declared() -> None:
    class Flat:
        first = State()
        second = State(terminal=True)

        @on.client("go", source=first, target=second)
        def go(self, event: Any) -> None: ...

    spec = compile_machine(Flat)
    assert spec.initial_leaf == "open.first"

    class Chosen:
        first = State(terminal=True)
        second = State(initial=True)

        @on.client("go", source=second, target=first)
        def go(self, event: Any) -> None: ...

    assert compile_machine(Chosen).initial_leaf == "open.second"


def test_initial_leaf_follows_initial_children(game: MachineSpec) -> None:
    assert game.initial_leaf == "open.lobby"

    class Deep:
        outer = State()
        inner = State(parent=outer)
        innermost = State(parent=inner)

    assert compile_machine(Deep).initial_leaf == "open.outer.inner.innermost"


@pytest.mark.parametrize(
    ("path", "leaf"),
    [
        ("open", "open.lobby"),
        ("open.room", "open.room.playing.turn"),
        ("open.room.waiting", "open.room.waiting"),
        ("open.room.playing", "open.room.playing.turn"),
        ("closed", "closed"),
    ],
)
def test_resolve_follows_initial_children(game: MachineSpec, path: str, leaf: str) -> None:
    assert game.resolve(path) == leaf


@pytest.mark.parametrize(
    ("path", "chain"),
    [
        ("open.room.playing.turn", ["open.room", "open.room.playing", "open.room.playing.turn"]),
        ("open.lobby", ["open.lobby"]),
        ("open", []),
        ("connecting", []),
        ("closed", []),
    ],
)
def test_chain_outermost_first(game: MachineSpec, path: str, chain: list[str]) -> None:
    assert game.chain(path) == chain


@pytest.mark.parametrize(
    ("path", "tags"),
    [
        ("open.lobby", {"public"}),
        ("open.room", {"member"}),
        ("open.room.waiting", {"member"}),
        ("open.room.playing.turn", {"member", "busy"}),
        ("open.done", set()),
        ("open", set()),
        ("closed", set()),
    ],
)
def test_tags_of_includes_enclosing_states(game: MachineSpec, path: str, tags: set[str]) -> None:
    assert game.tags_of(path) == tags


def test_hooks_in_declaration_order(game: MachineSpec) -> None:
    assert game.states["open.room"].enter == ("enter_room", "enter_room_again")
    assert game.states["open.room"].exit == ("exit_somewhere",)
    assert game.states["open.lobby"].exit == ("exit_somewhere",)
    assert game.states["open.lobby"].enter == ()
    assert game.states["open.room.waiting"].enter == ()


def test_hooks_inherited_and_overridden() -> None:
    class Base:
        a = State()

        @a.enter
        def hello(self) -> None: ...

    class Child(Base):
        def hello(self) -> None: ...  # overriding the hooked method drops the hook

    class Other(Base):
        @Base.a.exit
        def bye(self) -> None: ...

    assert compile_machine(Base).states["open.a"].enter == ("hello",)
    assert compile_machine(Child).states["open.a"].enter == ()
    other = compile_machine(Other).states["open.a"]
    assert (other.enter, other.exit) == (("hello",), ("bye",))


def test_dispatch_deepest_state_first_then_declaration_order(game: MachineSpec) -> None:
    def handlers(path: str, kind: str, event: str) -> list[str]:
        return [t.handler for t in game.dispatch[path, kind, event]]

    assert handlers("open.room.playing.turn", "client", "ping") == ["ping_in_turn", "ping_in_room", "ping"]
    assert handlers("open.room.waiting", "client", "ping") == ["ping_in_room", "ping"]
    assert handlers("open.lobby", "client", "ping") == ["ping"]
    assert handlers("open", "client", "ping") == ["ping"]
    assert handlers("open.lobby", "client", "join") == ["join", "join_refused"]
    assert handlers("open.room.playing.turn", "timeout", "open.room") == ["room_timeout"]
    assert handlers("open.room.playing.turn", "message", "chat") == ["chat"]
    assert ("open.lobby", "client", "wait") not in game.dispatch
    assert ("open.room.waiting", "message", "chat") not in game.dispatch
    assert ("open.done", "client", "finish") not in game.dispatch


def test_one_handler_with_several_sources(game: MachineSpec) -> None:
    finish = [t for t in game.transitions if t.handler == "finish"]
    assert [t.source for t in finish] == ["open.lobby", "open.room"]
    assert {t.target for t in finish} == {"open.done"}
    assert [t.handler for t in game.dispatch["open.room.waiting", "client", "finish"]] == ["finish"]


def test_transitions_fields(game: MachineSpec) -> None:
    by_handler = {t.handler: t for t in game.transitions}
    join = by_handler["join"]
    assert (join.kind, join.event, join.source, join.target) == ("client", "join", "open.lobby", "open.room")
    assert join.guard is token_ok
    assert join.guard_label == "token_ok"
    assert not join.internal
    assert by_handler["ping"].internal
    assert by_handler["ping"].source == "open"
    assert by_handler["ping_in_room"].guard_label == "is_even"
    assert by_handler["ping_in_room"].guard is Game.is_even
    assert by_handler["chat"].guard_label == "guard"  # a lambda
    assert by_handler["wait"].target == "open.room.waiting"
    timeout = by_handler["room_timeout"]
    assert (timeout.kind, timeout.event, timeout.source) == ("timeout", "open.room", "open.room")
    assert [t.order for t in game.transitions] == sorted(t.order for t in game.transitions)


def test_deferred_is_inherited_by_nested_states(game: MachineSpec) -> None:
    assert game.deferred["open.room"] == {"chat"}
    assert game.deferred["open.room.waiting"] == {"chat"}
    assert game.deferred["open.room.playing"] == {"chat", "move"}
    assert game.deferred["open.room.playing.turn"] == {"chat", "move"}
    assert "open.lobby" not in game.deferred
    assert "open" not in game.deferred
    assert game.states["open.room"].defer == {"chat"}


def test_timers_idle_and_clock() -> None:
    class Clocked:
        idle_timeout = 12.5
        a = State()

        @on.idle()
        def idle(self, event: Timeout) -> None: ...

        @on.timer("tick")
        def tick(self, event: Timeout) -> None: ...

        @on.timer("tock", source=a)
        def tock(self, event: Timeout) -> None: ...

    spec = compile_machine(Clocked)
    assert spec.idle_timeout == 12.5
    assert spec.timer_names == {"tick", "tock"}
    assert spec.uses_clock
    assert [t.handler for t in spec.dispatch["open.a", "idle", "idle"]] == ["idle"]
    assert not compile_machine(Game).timer_names
    assert compile_machine(Game).uses_clock  # the room timeout

    class NoClock:
        a = State()

    assert not compile_machine(NoClock).uses_clock


def test_invoked_tasks_compile() -> None:
    class Worker:
        busy = State(invoke=["fetch", "other"])
        idle = State(terminal=True)

        async def fetch(self) -> int:
            return 1

        async def other(self) -> None: ...

        @on.done("fetch", source=busy, target=idle)
        def fetched(self, event: int) -> None: ...

        @on.error("fetch", source=busy, target=idle)
        def failed(self, event: TaskFailed) -> None: ...

    spec = compile_machine(Worker)
    assert spec.states["open.busy"].invoke == ("fetch", "other")
    assert [t.handler for t in spec.dispatch["open.busy", "done", "fetch"]] == ["fetched"]
    assert [t.handler for t in spec.dispatch["open.busy", "error", "fetch"]] == ["failed"]
    assert spec.uses_clock


def test_compiled_lifecycle_knows_nested_states(game: MachineSpec) -> None:
    assert "open.room.playing.turn" in game.lifecycle.states
    assert game.lifecycle.next("open.room.playing.turn", "close") == "closing"
    assert game.lifecycle.next("open.room.playing.turn", "disconnect") == "closed"
    assert game.lifecycle.can("open.lobby", "send")
    assert game.lifecycle.next("connecting", "accept") == "open"


def test_no_states_keeps_the_builtin_lifecycle() -> None:
    class Plain:
        pass

    spec = compile_machine(Plain)
    assert spec.lifecycle is LIFECYCLE
    assert spec.states == {}
    assert spec.initial_leaf == "open"
    assert spec.resolve("open") == "open"
    assert WebsocketActor.machine_spec().lifecycle is LIFECYCLE


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("turn", id="name"),
        pytest.param("room.playing.turn", id="dotted"),
        pytest.param("open.room.playing.turn", id="full-path"),
        pytest.param(Game.turn, id="state-object"),
    ],
)
def test_state_references(ref: Any) -> None:
    class Refs(Game):
        @on.client("poke", source=ref, target=ref)
        def poke(self, event: Any) -> None: ...

    poke = next(t for t in compile_machine(Refs).transitions if t.handler == "poke")
    assert poke.source == poke.target == "open.room.playing.turn"


def test_partial_dotted_path_is_refused() -> None:
    """A dotted name is the full path, with or without ``open.``; a suffix is not enough."""

    class Partial(Game):
        @on.client("poke", source="playing.turn")
        def poke(self, event: Any) -> None: ...

    with pytest.raises(MachineDefinitionError, match=r"'poke'.*unknown state 'playing\.turn'"):
        compile_machine(Partial)


def test_subclass_inherits_and_overrides_states() -> None:
    class More(Game):
        extra = State(terminal=True)

        @on.client("extra", source=Game.lobby, target=extra)
        def go_extra(self, event: Any) -> None: ...

    spec = compile_machine(More)
    assert "open.extra" in spec.states
    assert spec.owner.endswith("More")
    assert len(spec.transitions) == len(compile_machine(Game).transitions) + 1


def test_state_actor_compiles_at_class_creation() -> None:
    class Chat(JsonStateActor):
        lobby = State()
        room = State(terminal=True)

        @on.client("join", source=lobby, target=room)
        async def join(self, event: dict[str, Any]) -> None: ...

    assert isinstance(Chat.machine, MachineSpec)
    assert Chat.machine_spec() is Chat.machine
    assert Chat.machine.initial_leaf == "open.lobby"
    assert Chat.lifecycle is Chat.machine.lifecycle

    with pytest.raises(MachineDefinitionError, match="Broken") as info:

        class Broken(JsonStateActor):
            lobby = State()

            @on.client("join", source=lobby, target="nowhere")
            async def join(self, event: dict[str, Any]) -> None: ...

    assert "'nowhere'" in str(info.value)
    assert "'join'" in str(info.value)


# -- class-creation errors ------------------------------------------------------------------


def unknown_source() -> type:
    class UnknownSource:
        a = State()

        @on.client("go", source="ghost")
        def go(self, event: Any) -> None: ...

    return UnknownSource


def unknown_target() -> type:
    class UnknownTarget:
        a = State()

        @on.client("go", source=a, target="ghost")
        def go(self, event: Any) -> None: ...

    return UnknownTarget


def unknown_parent() -> type:
    class UnknownParent:
        a = State(parent="ghost")

    return UnknownParent


def wrong_dotted_path() -> type:
    class WrongDotted:
        a = State()
        b = State(parent=a)
        c = State()

        @on.client("go", source="c.b")
        def go(self, event: Any) -> None: ...

    return WrongDotted


def foreign_state() -> type:
    elsewhere = State()

    class ForeignState:
        a = State()

        @on.client("go", source=a, target=elsewhere)
        def go(self, event: Any) -> None: ...

    return ForeignState


def foreign_hook_state() -> type:
    class Other:
        ghost = State()

    class ForeignHook:
        a = State()

        @Other.ghost.enter
        def hello(self) -> None: ...

    return ForeignHook


def builtin_target() -> type:
    class BuiltinTarget:
        a = State()

        @on.client("go", source=a, target="closed")
        def go(self, event: Any) -> None: ...

    return BuiltinTarget


def builtin_source() -> type:
    class BuiltinSource:
        a = State()

        @on.client("go", source="connecting")
        def go(self, event: Any) -> None: ...

    return BuiltinSource


def builtin_parent() -> type:
    class BuiltinParent:
        a = State(parent="closing")

    return BuiltinParent


def unreachable() -> type:
    class Unreachable:
        a = State()
        b = State()
        c = State(terminal=True)

        @on.client("go", source=a, target=c)
        def go(self, event: Any) -> None: ...

        @on.client("back", source=b, target=a)
        def back(self, event: Any) -> None: ...

    return Unreachable


def unreachable_nested() -> type:
    class UnreachableNested:
        a = State(terminal=True)
        p = State()
        x = State(parent=p)

        @on.client("go", source=p, target=a)
        def go(self, event: Any) -> None: ...

    return UnreachableNested


def no_way_out() -> type:
    class NoWayOut:
        a = State()
        b = State()

        @on.client("go", source=a, target=b)
        def go(self, event: Any) -> None: ...

        @on.client("ping", source=b)
        def ping(self, event: Any) -> None: ...

        @on.client("again", source=b, target=b)
        def again(self, event: Any) -> None: ...

    return NoWayOut


def timeout_without_timeout() -> type:
    class TimeoutWithout:
        a = State()

        @on.timeout(a)
        def late(self, event: Timeout) -> None: ...

    return TimeoutWithout


def timeout_without_handler() -> type:
    class TimeoutNoHandler:
        a = State(timeout=3)

    return TimeoutNoHandler


def idle_without_handler() -> type:
    class IdleNoHandler:
        idle_timeout = 5
        a = State()

    return IdleNoHandler


def idle_handler_without_timeout() -> type:
    class IdleNoTimeout:
        a = State()

        @on.idle(source=a)
        def idle(self, event: Timeout) -> None: ...

    return IdleNoTimeout


def bad_idle_timeout() -> type:
    class BadIdle:
        idle_timeout = -1
        a = State()

        @on.idle()
        def idle(self, event: Timeout) -> None: ...

    return BadIdle


def done_never_invoked() -> type:
    class DoneNoTask:
        a = State()

        @on.done("work", source=a)
        def finished(self, event: Any) -> None: ...

    return DoneNoTask


def error_where_task_never_runs() -> type:
    class ErrorElsewhere:
        a = State(invoke=["work"])
        b = State()

        async def work(self) -> None: ...

        @on.client("go", source=a, target=b)
        def go(self, event: Any) -> None: ...

        @on.client("back", source=b, target=a)
        def back(self, event: Any) -> None: ...

        @on.error("work", source=b)
        def failed(self, event: TaskFailed) -> None: ...

    return ErrorElsewhere


def invoke_sync_method() -> type:
    class InvokeSync:
        a = State(invoke=["work"])

        def work(self) -> None: ...

    return InvokeSync


def invoke_missing_method() -> type:
    class InvokeMissing:
        a = State(invoke=["work"])

    return InvokeMissing


def defers_and_handles() -> type:
    class DefersHandles:
        a = State(defer=["chat"])

        @on.message("chat", source=a)
        def chat(self, event: Any) -> None: ...

    return DefersHandles


def defers_what_parent_handles() -> type:
    class DefersParentHandles:
        p = State()
        a = State(parent=p, defer=["chat"])

        @on.client("chat", source=p)
        def chat(self, event: Any) -> None: ...

    return DefersParentHandles


def defers_what_open_handles() -> type:
    class DefersOpenHandles:
        a = State(defer=["chat"])
        b = State(terminal=True)

        @on.client("go", source=a, target=b)
        def go(self, event: Any) -> None: ...

        @on.message("chat")
        def chat(self, event: Any) -> None: ...

    return DefersOpenHandles


def async_guard() -> type:
    class AsyncGuard:
        a = State()

        async def allowed(self, event: Any) -> bool:
            return True

        @on.client("go", source=a, guard="allowed")
        def go(self, event: Any) -> None: ...

    return AsyncGuard


def async_guard_function() -> type:
    async def allowed(self: Any, event: Any) -> bool:
        return True

    class AsyncGuardFunction:
        a = State()

        @on.client("go", source=a, guard=allowed)  # type: ignore[arg-type]
        def go(self, event: Any) -> None: ...

    return AsyncGuardFunction


def missing_guard() -> type:
    class MissingGuard:
        a = State()

        @on.client("go", source=a, guard="nope")
        def go(self, event: Any) -> None: ...

    return MissingGuard


def state_named_open() -> type:
    class NamedOpen:
        open = State()

    return NamedOpen


def several_initial() -> type:
    class SeveralInitial:
        a = State(initial=True)
        b = State(initial=True)

    return SeveralInitial


def several_initial_nested() -> type:
    class SeveralInitialNested:
        p = State()
        a = State(parent=p, initial=True)
        b = State(parent=p, initial=True)

    return SeveralInitialNested


def parent_cycle() -> type:
    class Cycle:
        a = State(parent="b")
        b = State(parent="a")

    return Cycle


ERRORS: list[tuple[Callable[[], type], str, list[str]]] = [
    (unknown_source, "UnknownSource", ["'go'", "'ghost'", "unknown state"]),
    (unknown_target, "UnknownTarget", ["'go'", "'ghost'", "target"]),
    (unknown_parent, "UnknownParent", ["'a'", "'ghost'", "parent"]),
    (wrong_dotted_path, "WrongDotted", ["'go'", "'c.b'"]),
    (foreign_state, "ForeignState", ["'go'", "not a state of this class"]),
    (foreign_hook_state, "ForeignHook", ["'hello'", "ghost", "not a state of this class"]),
    (builtin_target, "BuiltinTarget", ["'go'", "'closed'", "close()"]),
    (builtin_source, "BuiltinSource", ["'go'", "'connecting'"]),
    (builtin_parent, "BuiltinParent", ["'a'", "'closing'"]),
    (unreachable, "Unreachable", ["'open.b'", "unreachable"]),
    (unreachable_nested, "UnreachableNested", ["'open.p'", "unreachable"]),
    (no_way_out, "NoWayOut", ["'open.b'", "no way out", "terminal=True"]),
    (timeout_without_timeout, "TimeoutWithout", ["'late'", "'open.a'", "timeout"]),
    (timeout_without_handler, "TimeoutNoHandler", ["'open.a'", "3 s timeout", "@on.timeout(a)"]),
    (idle_without_handler, "IdleNoHandler", ["idle_timeout", "@on.idle()"]),
    (idle_handler_without_timeout, "IdleNoTimeout", ["'idle'", "'open.a'", "idle_timeout is not set"]),
    (bad_idle_timeout, "BadIdle", ["idle_timeout", "-1"]),
    (done_never_invoked, "DoneNoTask", ["'finished'", "'work'", "'open.a'", "no state invokes"]),
    (error_where_task_never_runs, "ErrorElsewhere", ["'failed'", "'work'", "'open.b'", "open.a"]),
    (invoke_sync_method, "InvokeSync", ["'open.a'", "'work'", "async def"]),
    (invoke_missing_method, "InvokeMissing", ["'open.a'", "'work'", "async def"]),
    (defers_and_handles, "DefersHandles", ["'open.a'", "'chat'", "defers and handles"]),
    (defers_what_parent_handles, "DefersParentHandles", ["'open.p.a'", "'chat'", "'open.p'", "defers"]),
    (defers_what_open_handles, "DefersOpenHandles", ["'open.a'", "'chat'", "source 'open'", "defers"]),
    (async_guard, "AsyncGuard", ["'go'", "'allowed'", "async"]),
    (async_guard_function, "AsyncGuardFunction", ["'go'", "'allowed'", "async"]),
    (missing_guard, "MissingGuard", ["'go'", "'nope'", "not a method"]),
    (state_named_open, "NamedOpen", ["'open'", "built-in"]),
    (several_initial, "SeveralInitial", ["'open'", "several initial", "a, b"]),
    (several_initial_nested, "SeveralInitialNested", ["'open.p'", "open.p.a", "open.p.b"]),
    (parent_cycle, "Cycle", ["cycle"]),
]


@pytest.mark.parametrize(("build", "owner", "fragments"), ERRORS, ids=[e[0].__name__ for e in ERRORS])
def test_definition_error(build: Callable[[], type], owner: str, fragments: list[str]) -> None:
    cls = build()
    with pytest.raises(MachineDefinitionError) as info:
        compile_machine(cls)
    error = info.value
    assert error.owner == cls.__qualname__
    assert error.owner.endswith(owner)
    text = str(error)
    assert text.startswith(f"{cls.__qualname__}: ")
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert isinstance(error, TypeError)


def test_terminal_silences_no_way_out() -> None:
    class Ends:
        a = State()
        b = State(terminal=True)

        @on.client("go", source=a, target=b)
        def go(self, event: Any) -> None: ...

    assert compile_machine(Ends).states["open.b"].terminal


def test_only_leaf_needs_no_way_out() -> None:
    class Single:
        a = State()

        @on.client("ping", source=a)
        def ping(self, event: Any) -> None: ...

    assert list(compile_machine(Single).states) == ["open.a"]


def test_way_out_through_a_parent_handler() -> None:
    class ParentExit:
        p = State()
        a = State(parent=p)
        b = State(parent=p)
        c = State(terminal=True)

        @on.client("next", source=a, target=b)
        def next(self, event: Any) -> None: ...

        @on.client("quit", source=p, target=c)
        def quit(self, event: Any) -> None: ...

    spec = compile_machine(ParentExit)
    assert [t.handler for t in spec.dispatch["open.p.b", "client", "quit"]] == ["quit"]


def test_parent_defers_what_child_handles() -> None:
    """A nested state may handle an event its parent defers: the handler wins there."""

    class Override:
        p = State(defer=["chat"])
        a = State(parent=p)
        b = State(parent=p)

        @on.client("chat", source=a, target=b)
        def chat(self, event: Any) -> None: ...

        @on.client("back", source=b, target=a)
        def back(self, event: Any) -> None: ...

    spec = compile_machine(Override)
    assert [t.handler for t in spec.dispatch["open.p.a", "client", "chat"]] == ["chat"]
    assert spec.deferred["open.p.b"] == {"chat"}


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"timeout": 0}, id="timeout-zero"),
        pytest.param({"timeout": -1.5}, id="timeout-negative"),
        pytest.param({"timeout": "10"}, id="timeout-str"),
    ],
)
def test_state_rejects_bad_timeout(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="positive number of seconds") as info:
        State(**kwargs)
    assert repr(kwargs["timeout"]) in str(info.value)


@pytest.mark.parametrize("what", ["defer", "tags", "invoke"])
def test_state_rejects_a_single_str(what: str) -> None:
    with pytest.raises(TypeError, match=f"State\\({what}='x'\\): pass a list of names"):
        State(**{what: "x"})  # type: ignore[arg-type]


def test_message_class_must_be_attrs() -> None:
    class NotAttrs:
        type: ClassVar[str] = "not.attrs"

    with pytest.raises(TypeError, match="NotAttrs cannot be an event: it must be an attrs class"):
        on.client(NotAttrs)


@pytest.mark.parametrize("declared", [None, "", 3])
def test_message_class_needs_a_str_type(declared: Any) -> None:
    @attrs.define
    class Untyped:
        x: int

    if declared is not None:
        Untyped.type = declared  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"Untyped cannot be an event: give it a class attribute `type: ClassVar"):
        on.message(Untyped)


def test_message_class_becomes_its_type() -> None:
    @attrs.frozen
    class Joined:
        type: ClassVar[str] = "room.joined"
        room: str

    class Typed:
        a = State()

        @on.message(Joined, source=a)
        def joined(self, event: Joined) -> None: ...

    spec = compile_machine(Typed)
    (transition,) = spec.dispatch["open.a", "message", "room.joined"]
    assert transition.message_class is Joined


@pytest.mark.parametrize("event", ["", 3, None])
def test_event_must_be_a_name(event: Any) -> None:
    with pytest.raises(TypeError, match="an event type must be a non-empty str"):
        on.client(event)


def test_guard_must_be_callable_or_name() -> None:
    with pytest.raises(TypeError, match="guard must be a predicate"):
        on.client("go", guard=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["send", "close", "accept", "machine", "diagram", "receive_json", "unhandled"])
def test_state_may_not_hide_actor_attributes(name: str) -> None:
    namespace: dict[str, Any] = {name: State()}
    with pytest.raises(MachineDefinitionError, match=f"Shadow: state '{name}' would hide the actor's own attribute"):
        type("Shadow", (JsonStateActor,), namespace)


def test_state_names_free_for_actors() -> None:
    class Free(JsonStateActor):
        idle = State()
        lobby = State(terminal=True)

        @on.client("go", source=idle, target=lobby)
        async def go(self, event: dict[str, Any]) -> None: ...

    assert list(Free.machine.states) == ["open.idle", "open.lobby"]
