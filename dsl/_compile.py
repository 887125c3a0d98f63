"""Compile a declared class into a checked, flattened :class:`MachineSpec`.

Rules checked when the class is created (each error names the class, the state and
the event):

1. Every state a handler, hook or ``parent=`` names exists; built-in states other
   than ``open`` are the lifecycle's, not the user's.
2. Every state is reachable: an initial state, or the target of some transition.
3. Every leaf state has a way out (a transition to another state), unless it is
   ``terminal=True`` or the only one.
4. A handler applies in states that can receive its event: a state timeout in the
   state that declares it, an invoked task's result in the states where it runs, the
   idle event only if ``idle_timeout`` is set; a state never defers what it handles.
5. Every timeout and named delay has a handler; ``delays`` (per class or instance)
   name states and delays that exist.
6. Guards are synchronous predicates; invoked tasks are ``async def`` methods.
7. No handler is dead code: a handler after an unguarded one for the same event in the
   same state could never run; an eventless choice without a guard that stays inside
   its own source would be taken forever.
8. A handler's annotation agrees with its decorator: ``@on.client(Move)`` takes a
   ``Move``; a handler annotated with a message class must name that class.

Theory of operation: the user's states are nested under ``open`` in a ``transitions``
``HierarchicalMachine`` (with the built-in lifecycle around them), which validates the
hierarchy; the result is flattened into dicts so that the running actor needs one
lookup per event: ``dispatch[(state, kind, event)]`` gives the candidate transitions,
deepest state first, then in declaration order.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

import attrs

from ._declare import HANDLERS_ATTR, HOOKS_ATTR, EventKind, HandlerDecl, History, State, StateRef, Target
from ._lifecycle import CLOSED, CLOSING, CONNECTING, EDGES, LIFECYCLE, OPEN, SEPARATOR, Lifecycle

__all__ = ["MachineDefinitionError", "MachineSpec", "StateInfo", "Transition", "compile_machine"]

BUILTIN: Final = frozenset({CONNECTING, OPEN, CLOSING, CLOSED})


class MachineDefinitionError(TypeError):
    """A state-machine declaration is inconsistent; raised when the class is created."""

    def __init__(self, owner: str, problem: str) -> None:
        self.owner = owner
        self.problem = problem
        super().__init__(f"{owner}: {problem}")


@attrs.frozen
class StateInfo:
    """A compiled user state."""

    path: str
    name: str
    parent: str
    children: tuple[str, ...]
    initial: str | None
    tags: frozenset[str]
    timeout: float | None
    defer: frozenset[str]
    invoke: tuple[str, ...]
    terminal: bool
    enter: tuple[str, ...]
    exit: tuple[str, ...]
    after: tuple[tuple[str, float], ...] = ()
    region: str | None = None
    """The parallel region of ``open`` the state is in (None: the main hierarchy)."""
    """Named delays armed on entry: ``(name, seconds)`` as declared (before ``delays``)."""
    history: bool = False
    """Some transition targets this state's history: the runtime records where it was left."""


HistoryKind = Literal["shallow", "deep"]


@attrs.frozen
class Transition:
    """A compiled handler: in *source* (or below), *event* runs *handler*, then moves to *target*."""

    kind: EventKind
    event: str
    handler: str
    source: str
    target: str | None
    guard: Callable[[Any, Any], bool] | None
    guard_label: str | None
    message_class: type | None
    order: int
    history: HistoryKind | None = None
    """Set when the target is ``state.history`` (``shallow``) or ``state.deep_history``."""

    @property
    def internal(self) -> bool:
        """Whether the transition leaves the state as it is."""
        return self.target is None


@attrs.frozen
class MachineSpec:
    """Everything a running state actor and a diagram need, computed once per class."""

    owner: str
    states: Mapping[str, StateInfo]
    transitions: tuple[Transition, ...]
    lifecycle: Lifecycle
    dispatch: Mapping[tuple[str, str, str], tuple[Transition, ...]]
    deferred: Mapping[str, frozenset[str]]
    idle_timeout: float | None
    initial_leaf: str
    timer_names: frozenset[str]
    delays: Mapping[tuple[str, str], float] = attrs.field(factory=dict)
    """Every delay by ``(state path, name)`` (name ``""``: the state's ``timeout``), in seconds,
    after the class's ``delays`` overrides."""
    crossing_hooks: frozenset[str] = frozenset()
    """Enter and exit hooks that take a :class:`~interlock.dsl.Crossing` argument."""
    eventless: bool = False
    """Whether any ``@on.always`` choice exists (the runtime checks them after each step)."""
    regions: Mapping[str, str] = attrs.field(factory=dict)
    """Parallel regions of ``open``: each region's name and the leaf it starts in."""
    plans: dict[Any, Any] = attrs.field(factory=dict, eq=False, repr=False)
    """The planner's cache (see :mod:`interlock.dsl._plan`); filled as actors run."""

    @property
    def uses_clock(self) -> bool:
        """Whether instances need the timer clock and a task group."""
        return bool(self.idle_timeout or self.timer_names or self.delays or any(s.invoke for s in self.states.values()))

    def delay_key(self, ref: str) -> tuple[str, str]:
        """The ``(path, name)`` of a ``delays`` key: ``"state"`` (its timeout) or ``"state:name"``.

        The state may be named by its name or dotted path. Raises :class:`KeyError` with a
        message listing the delays if there is no such delay.
        """
        state, _, name = ref.partition(":")
        for path, info in self.states.items():
            if state in (info.name, path, path.removeprefix(OPEN + SEPARATOR)) and (path, name) in self.delays:
                return path, name
        raise KeyError(ref)

    def with_delays(self, overrides: object) -> dict[tuple[str, str], float]:
        """This spec's delays with *overrides* (``{"state": s, "state:name": s}``) applied.

        Raises :class:`TypeError` if *overrides* is not a mapping, :class:`ValueError` if
        it names no delay of the class (listing those it has) or a delay is not a
        positive number of seconds.
        """
        if not isinstance(overrides, Mapping):
            msg = f"delays={overrides!r}: expected a mapping such as {{'state': 5, 'state:name': 2}}"
            raise TypeError(msg)
        table = dict(self.delays)
        for ref, seconds in overrides.items():
            try:
                key = self.delay_key(ref) if isinstance(ref, str) else None
            except KeyError:
                key = None
            if key is None:
                known = ", ".join(self.delay_names()) or "none: no state declares timeout= or after="
                msg = f"delays names {ref!r}, which is no delay of this class; the delays are: {known}"
                raise ValueError(msg)
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
                msg = f"delays[{ref!r}] = {seconds!r}: expected a positive number of seconds"
                raise ValueError(msg)
            table[key] = seconds
        return table

    def delay_names(self) -> list[str]:
        """The keys ``delays`` accepts, for error messages."""
        return [f"{self.states[p].name}:{n}" if n else self.states[p].name for p, n in self.delays]

    def chain(self, path: str) -> list[str]:
        """User states from the outermost down to *path* (empty for built-in states)."""
        out: list[str] = []
        while path in self.states:
            out.append(path)
            path = self.states[path].parent
        return out[::-1]

    def resolve(self, path: str) -> str:
        """Follow initial children from *path* down to a leaf."""
        if path == OPEN:
            return self.initial_leaf
        info = self.states.get(path)
        while info is not None and info.initial is not None:
            path = info.initial
            info = self.states.get(path)
        return path

    def tags_of(self, path: str) -> frozenset[str]:
        """Tags of *path* and its enclosing states."""
        tags: frozenset[str] = frozenset()
        for state in self.chain(path):
            tags |= self.states[state].tags
        return tags


def _ancestors_or_self(path: str) -> list[str]:
    parts = path.split(SEPARATOR)
    return [SEPARATOR.join(parts[: i + 1]) for i in range(len(parts))][::-1]


def _within(path: str, outer: str) -> bool:
    return path == outer or path.startswith(outer + SEPARATOR)


class _Compiler:
    def __init__(self, cls: type, *, idle_events: bool = True) -> None:
        self.cls = cls
        self.idle_events = idle_events
        self.owner = cls.__qualname__
        self.declared: dict[str, State] = {}
        self.paths: dict[int, str] = {}  # id(State) -> path

    def fail(self, problem: str) -> MachineDefinitionError:
        return MachineDefinitionError(self.owner, problem)

    # -- states ---------------------------------------------------------------------------

    def collect_states(self) -> None:
        for klass in reversed(self.cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, State):
                    if name in BUILTIN:
                        raise self.fail(f"{name!r} is a built-in lifecycle state; name yours differently")
                    if not name.isidentifier():
                        raise self.fail(f"state name {name!r} must be an identifier")
                    self.declared[name] = value  # an override keeps the base's place (and initial)

    def path_of(self, state: State, seen: tuple[str, ...] = ()) -> str:
        known = self.paths.get(id(state))
        if known is not None:
            return known
        if state.name in seen:
            raise self.fail(f"states {' -> '.join((*seen, state.name))} are nested in a cycle")
        if state.parent is None:
            if state.region is not None:
                self.check_region_name(state.region)
                path = f"{OPEN}{SEPARATOR}{state.region}{SEPARATOR}{state.name}"
            else:
                path = f"{OPEN}{SEPARATOR}{state.name}"
        else:
            parent = self.ref(state.parent, f"state {state.name!r} (parent=)", seen=(*seen, state.name))
            if parent in BUILTIN and parent != OPEN:
                raise self.fail(f"state {state.name!r} cannot be nested under the built-in {parent!r}")
            if state.region is not None and parent == OPEN:
                self.check_region_name(state.region)
                parent = f"{OPEN}{SEPARATOR}{state.region}"
            elif state.region is not None and self.region_of(parent) != state.region:
                raise self.fail(
                    f"state {state.name!r} says region={state.region!r} but its parent {parent!r} is "
                    f"{'in region ' + repr(self.region_of(parent)) if self.region_of(parent) else 'a main state'}; "
                    "a nested state is in its parent's region (leave region= out)"
                )
            path = f"{parent}{SEPARATOR}{state.name}"
        self.paths[id(state)] = path
        return path

    def check_region_name(self, region: str) -> None:
        if region in BUILTIN or region in self.declared:
            raise self.fail(f"region {region!r} has the name of a state; name regions and states apart")

    def region_of(self, path: str) -> str | None:
        """The region a state path is in, or None for the main hierarchy (and built-in states)."""
        for state in self.declared.values():
            if state.region is not None and state.parent is None:
                root = f"{OPEN}{SEPARATOR}{state.region}"
                if _within(path, root):
                    return state.region
        return None

    def region_label(self, path: str) -> str:
        region = self.region_of(path)
        return "the main states" if region is None else f"region {region!r}"

    def shadowed(self, state: State) -> bool:
        """Whether *state* is a base class's declaration that a subclass declared again."""
        return any(vars(klass).get(state.name) is state for klass in self.cls.__mro__[1:])

    def target(self, ref: Target, where: str) -> tuple[str, HistoryKind | None]:
        if isinstance(ref, History):
            path = self.ref(ref.state, f"{where} (history)")
            if path in BUILTIN:
                raise self.fail(f"{where} targets the history of the built-in {path!r}; only your states have one")
            if not any(p.startswith(path + SEPARATOR) for p in self.paths.values()):
                raise self.fail(
                    f"{where} targets the history of {path!r}, which has no states inside it: target the state itself"
                )
            return path, "deep" if ref.deep else "shallow"
        return self.ref(ref, where), None

    def ref(self, ref: StateRef, where: str, seen: tuple[str, ...] = ()) -> str:
        if isinstance(ref, State):
            if ref.name not in self.declared or (self.declared[ref.name] is not ref and not self.shadowed(ref)):
                raise self.fail(f"{where} names {ref!r}, which is not a state of this class")
            return self.path_of(self.declared[ref.name], seen)
        if not isinstance(ref, str):
            raise self.fail(f"{where} names {ref!r}; expected a State or a state name")
        if ref in BUILTIN:
            return ref
        leaf = ref.rsplit(SEPARATOR, 1)[-1]
        state = self.declared.get(leaf)
        if state is not None:
            path = self.path_of(state, seen)
            if ref in (leaf, path, path.removeprefix(OPEN + SEPARATOR)):
                return path
        names = ", ".join(sorted(self.declared)) or "none declared"
        raise self.fail(f"{where} names unknown state {ref!r}; the states are: {names}")

    # -- methods ----------------------------------------------------------------------------

    def members(self) -> Iterable[tuple[str, Any]]:
        seen: set[str] = set()
        for klass in self.cls.__mro__:
            for name, value in vars(klass).items():
                if name not in seen:
                    seen.add(name)
                    yield name, value

    def guard(self, guard: Any, where: str) -> tuple[Callable[[Any, Any], bool] | None, str | None]:
        if guard is None:
            return None, None
        if isinstance(guard, str):
            method = getattr(self.cls, guard, None)
            if method is None or not callable(method):
                raise self.fail(f"{where}: guard {guard!r} is not a method of the class")
            label = guard
            guard = method
        else:
            label = getattr(guard, "__name__", "guard")
            if label == "<lambda>":
                label = "guard"
        if inspect.iscoroutinefunction(guard):
            raise self.fail(f"{where}: guard {label!r} is async; guards are synchronous predicates")
        return guard, label

    # -- the whole class ----------------------------------------------------------------------

    def compile(self) -> MachineSpec:
        self.collect_states()
        for state in self.declared.values():
            self.path_of(state)
        infos = self.state_infos()
        transitions = self.transitions(infos)
        history = {t.target for t in transitions if t.history is not None}
        infos = [attrs.evolve(info, history=True) if info.path in history else info for info in infos]
        spec_states = {info.path: info for info in infos}
        # A plain actor's idle_timeout closes the connection itself: no @on.idle() event.
        idle = getattr(self.cls, "idle_timeout", None) if self.idle_events else None
        if idle is not None and (not isinstance(idle, (int, float)) or idle <= 0):
            raise self.fail(f"idle_timeout = {idle!r}: expected a positive number of seconds or None")
        self.check(spec_states, transitions, idle)
        delays = self.delays(spec_states)
        lifecycle = self.lifecycle(spec_states)
        dispatch, deferred = self.flatten(spec_states, transitions)
        open_initial = self.initial_of(OPEN, spec_states)
        leaf = OPEN
        if open_initial is not None:
            leaf = open_initial
            while spec_states[leaf].initial is not None:
                leaf = spec_states[leaf].initial  # type: ignore[assignment]
        return MachineSpec(
            owner=self.owner,
            states=spec_states,
            transitions=tuple(transitions),
            lifecycle=lifecycle,
            dispatch=dispatch,
            deferred=deferred,
            idle_timeout=idle,
            initial_leaf=leaf,
            timer_names=frozenset(t.event for t in transitions if t.kind == "timer"),
            delays=delays,
            crossing_hooks=self.crossing_hooks(spec_states),
            eventless=any(t.kind == "always" for t in transitions),
            regions=self.regions(spec_states),
        )

    def regions(self, states: Mapping[str, StateInfo]) -> dict[str, str]:
        out: dict[str, str] = {}
        for info in states.values():
            if info.region is not None and info.region not in out:
                root = f"{OPEN}{SEPARATOR}{info.region}"
                leaf = self.initial_of(root, states)
                assert leaf is not None
                below = states[leaf].initial
                while below is not None:
                    leaf, below = below, states[below].initial
                out[info.region] = leaf
        return out

    def delays(self, states: Mapping[str, StateInfo]) -> dict[tuple[str, str], float]:
        delays: dict[tuple[str, str], float] = {}
        for path, info in states.items():
            if info.timeout is not None:
                delays[path, ""] = info.timeout
            for name, seconds in info.after:
                delays[path, name] = seconds
        probe = MachineSpec(self.owner, states, (), LIFECYCLE, {}, {}, None, OPEN, frozenset(), delays)
        try:
            return probe.with_delays(getattr(self.cls, "delays", None) or {})
        except (TypeError, ValueError) as exc:
            raise self.fail(str(exc)) from None

    def crossing_hooks(self, states: Mapping[str, StateInfo]) -> frozenset[str]:
        out: set[str] = set()
        for info in states.values():
            for hook in (*info.enter, *info.exit):
                method = getattr(self.cls, hook)
                try:
                    params = list(inspect.signature(method).parameters.values())[1:]
                except (TypeError, ValueError):  # pragma: no cover - builtins have no signature
                    continue
                required = [
                    p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                ]
                if len(required) > 1:
                    raise self.fail(
                        f"hook {hook!r} of state {info.path!r} takes {len(required)} arguments; a hook takes "
                        "none, or one: the Crossing (event, source, target)"
                    )
                if params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
                    out.add(hook)
        return frozenset(out)

    def initial_of(self, parent: str, states: Mapping[str, StateInfo]) -> str | None:
        children = [info for info in states.values() if info.parent == parent]
        if not children:
            return None
        return next((c.path for c in children if self.declared[c.name].initial), children[0].path)

    def state_infos(self) -> list[StateInfo]:
        hooks: dict[str, dict[str, list[str]]] = {}
        for name, value in self.members():
            for kind, state in getattr(value, HOOKS_ATTR, ()):
                path = self.ref(state, f"{kind} hook {name!r}")
                hooks.setdefault(path, {"enter": [], "exit": []})[kind].append(name)
        paths = {name: self.path_of(state) for name, state in self.declared.items()}
        infos: list[StateInfo] = []
        for name, state in self.declared.items():
            path = paths[name]
            children = tuple(p for p in paths.values() if p.rsplit(SEPARATOR, 1)[0] == path)
            initial = [p for p in children if self.declared[p.rsplit(SEPARATOR, 1)[1]].initial]
            if len(initial) > 1:
                raise self.fail(f"state {path!r} has several initial children: {', '.join(initial)}")
            for task in state.invoke:
                method = getattr(self.cls, task, None)
                if method is None or not inspect.iscoroutinefunction(method):
                    raise self.fail(f"state {path!r} invokes {task!r}, which is not an async def method of the class")
            infos.append(
                StateInfo(
                    path=path,
                    name=name,
                    parent=path.rsplit(SEPARATOR, 1)[0],
                    children=children,
                    initial=(initial[0] if initial else children[0]) if children else None,
                    tags=state.tags,
                    timeout=state.timeout,
                    defer=frozenset(state.defer),
                    invoke=state.invoke,
                    terminal=state.terminal,
                    enter=tuple(hooks.get(path, {}).get("enter", ())),
                    exit=tuple(hooks.get(path, {}).get("exit", ())),
                    after=tuple(state.after.items()),
                    region=self.region_of(path),
                )
            )
        for region in [None, *dict.fromkeys(s.region for s in self.declared.values() if s.region)]:
            siblings_initial = [
                s for s in self.declared.values() if s.initial and s.parent is None and s.region == region
            ]
            if len(siblings_initial) > 1:
                names = ", ".join(s.name for s in siblings_initial)
                where = f"region {region!r}" if region else "state 'open'"
                raise self.fail(f"{where} has several initial children: {names}")
        for info in infos:
            if info.region is not None and info.defer:
                raise self.fail(
                    f"state {info.path!r} is in region {info.region!r} and defers events; "
                    "only the main states defer (regions take what they handle and ignore the rest)"
                )
        return infos

    def transitions(self, infos: list[StateInfo]) -> list[Transition]:
        by_path = {info.path: info for info in infos}
        out: list[Transition] = []
        for name, value in self.members():
            decls: list[HandlerDecl] = getattr(value, HANDLERS_ATTR, [])
            for decl in decls:
                where = f"handler {name!r} ({decl.kind} event {decl.event or 'timeout'!r})"
                if not callable(value):
                    raise self.fail(f"{where} decorates something that is not a method")
                target, history = (None, None) if decl.target is None else self.target(decl.target, f"{where} target")
                if target is not None and target in BUILTIN and target != OPEN:
                    raise self.fail(f"{where} targets the built-in {target!r}; call self.close() to end the connection")
                guard, label = self.guard(decl.guard, where)
                self.check_annotation(name, value, decl, where)
                for source_ref in decl.sources:
                    source = self.ref(source_ref, f"{where} source")
                    if target is not None and self.region_of(source) != self.region_of(target):
                        raise self.fail(
                            f"{where} goes from {source!r} ({self.region_label(source)}) "
                            f"to {target!r} ({self.region_label(target)}); "
                            "a transition stays within its region"
                        )
                    if source in BUILTIN and source != OPEN:
                        raise self.fail(
                            f"{where} has source {source!r}; events are handled only while the "
                            "connection is open (in 'open' or a state under it)"
                        )
                    event = decl.event
                    if decl.kind == "timeout":
                        info = by_path.get(source)
                        if info is None or info.timeout is None:
                            raise self.fail(
                                f"{where}: state {source!r} declares no timeout; give it State(timeout=seconds)"
                            )
                        event = source
                    elif decl.kind == "after":
                        info = by_path.get(source)
                        if info is None or decl.event not in dict(info.after):
                            declared = ", ".join(dict(info.after)) if info is not None and info.after else "none"
                            raise self.fail(
                                f"{where}: state {source!r} declares no delay {decl.event!r} "
                                f"(its delays: {declared}); give it State(after={{{decl.event!r}: seconds}})"
                            )
                        event = f"{source}:{decl.event}"
                    out.append(
                        Transition(
                            decl.kind,
                            event,
                            name,
                            source,
                            target,
                            guard,
                            label,
                            decl.message_class,
                            decl.order,
                            history,
                        )
                    )
        out.sort(key=lambda t: t.order)
        return out

    def check_annotation(self, name: str, method: Any, decl: HandlerDecl, where: str) -> None:
        """Rule 8: the event parameter's annotation names the class the decorator names."""
        if decl.kind not in ("client", "message"):
            return
        try:
            params = list(inspect.signature(method).parameters)[1:]
            hints = typing.get_type_hints(method)
        except Exception:  # noqa: BLE001 - unresolvable annotations are not ours to judge
            return
        hint = hints.get(params[0]) if params else None
        if not isinstance(hint, type) or not attrs.has(hint):
            return
        if decl.message_class is None:
            raise self.fail(
                f"{where}: {name}() is annotated to take {hint.__qualname__}, but the decorator names the "
                f"event {decl.event!r} as a str, so it gets a dict; "
                f"pass the class: @on.{decl.kind}({hint.__qualname__})"
            )
        if not issubclass(decl.message_class, hint):
            raise self.fail(
                f"{where}: {name}() is annotated to take {hint.__qualname__}, but the decorator names "
                f"{decl.message_class.__qualname__}: make them agree"
            )

    def check_dead(self, transitions: list[Transition]) -> None:
        """Rule 7: handlers that can never run, eventless choices that never stop."""
        first_unguarded: dict[tuple[str, str, str], Transition] = {}
        for t in transitions:
            key = (t.source, t.kind, t.event)
            blocker = first_unguarded.get(key)
            if blocker is not None:
                label = "eventless choice" if t.kind == "always" else f"{t.kind} event {t.event or 'timeout'!r}"
                raise self.fail(
                    f"handler {t.handler!r} ({label}, source {t.source!r}) can never run: "
                    f"{blocker.handler!r} is declared before it for the same event and state with no guard; "
                    "give the first one a guard, or remove one"
                )
            if t.guard is None:
                first_unguarded[key] = t
            if t.kind == "always" and t.guard is None and t.target is not None and _within(t.target, t.source):
                raise self.fail(
                    f"eventless choice {t.handler!r} (source {t.source!r}) has no guard and targets "
                    f"{t.target!r}, inside its own source: it would be taken forever; give it a guard"
                )

    def check(self, states: Mapping[str, StateInfo], transitions: list[Transition], idle: float | None) -> None:
        self.check_dead(transitions)
        for info in states.values():
            for delay, _seconds in info.after:
                if not any(t.kind == "after" and t.event == f"{info.path}:{delay}" for t in transitions):
                    raise self.fail(
                        f"state {info.path!r} has a delay {delay!r} but no handler; add @on.after({delay!r}, "
                        f"source={info.name})"
                    )
            if info.timeout is not None and not any(t.kind == "timeout" and t.event == info.path for t in transitions):
                raise self.fail(
                    f"state {info.path!r} has a {info.timeout} s timeout but no handler; add @on.timeout({info.name})"
                )
            for event in info.defer:
                handled = [
                    t
                    for t in transitions
                    if t.event == event and t.kind in ("client", "message") and _within(info.path, t.source)
                ]
                if handled:
                    raise self.fail(
                        f"state {info.path!r} both defers and handles {event!r} "
                        f"(handler {handled[0].handler!r}, source {handled[0].source!r}): handlers win over defer"
                    )
        if idle is not None and not any(t.kind == "idle" for t in transitions):
            raise self.fail(f"idle_timeout = {idle} but no handler; add @on.idle()")
        for t in transitions:
            if t.kind == "idle" and idle is None:
                raise self.fail(
                    f"handler {t.handler!r} (source {t.source!r}) handles the idle timeout, but idle_timeout is not set"
                )
            if t.kind in ("done", "error"):
                runners = [info.path for info in states.values() if t.event in info.invoke]
                if not runners:
                    raise self.fail(
                        f"handler {t.handler!r} (source {t.source!r}) handles task {t.event!r}, which no state invokes"
                    )
                if not any(_within(t.source, r) or _within(r, t.source) for r in runners):
                    raise self.fail(
                        f"handler {t.handler!r} has source {t.source!r}, where task {t.event!r} never runs "
                        f"(it runs in {', '.join(runners)})"
                    )
        self.check_reachable(states, transitions)
        self.check_ways_out(states, transitions)

    def check_reachable(self, states: Mapping[str, StateInfo], transitions: list[Transition]) -> None:
        reachable: set[str] = set()

        def add(path: str) -> None:
            for outer in _ancestors_or_self(path):
                reachable.add(outer)
            info = states.get(path)
            while info is not None and info.initial is not None:
                reachable.add(info.initial)
                info = states.get(info.initial)

        add(OPEN)
        open_initial = self.initial_of(OPEN, states)
        if open_initial:
            add(open_initial)
        for region in {info.region for info in states.values() if info.region}:
            initial = self.initial_of(f"{OPEN}{SEPARATOR}{region}", states)
            if initial:
                add(initial)
        changed = True
        while changed:
            changed = False
            for t in transitions:
                if t.target is None or not any(_within(r, t.source) for r in reachable):
                    continue
                before = len(reachable)
                add(t.target)
                changed = changed or len(reachable) != before
        for path in states:
            if path not in reachable:
                raise self.fail(
                    f"state {path!r} is unreachable: no transition targets it and it is not an initial state"
                )

    def check_ways_out(self, states: Mapping[str, StateInfo], transitions: list[Transition]) -> None:
        leaves = [info for info in states.values() if not info.children]
        for leaf in leaves:
            if leaf.terminal or sum(1 for other in leaves if other.region == leaf.region) <= 1:
                continue
            exits = [
                t
                for t in transitions
                if t.target is not None and _within(leaf.path, t.source) and not _within(leaf.path, t.target)
            ]
            if not exits:
                raise self.fail(
                    f"state {leaf.path!r} has no way out: no transition leaves it; add one, or declare "
                    f"State(terminal=True) if the actor stays there until the connection ends"
                )

    def lifecycle(self, states: Mapping[str, StateInfo]) -> Lifecycle:
        if not states:
            return LIFECYCLE

        def node(path: str) -> str | dict[str, Any]:
            info = states[path]
            if not info.children:
                return info.name
            return {
                "name": info.name,
                "children": [node(child) for child in info.children],
                "initial": states[info.initial].name if info.initial else None,
            }

        top = [path for path, info in states.items() if info.parent == OPEN]
        initial = self.initial_of(OPEN, states)
        open_node = {
            "name": OPEN,
            "children": [node(path) for path in top],
            "initial": states[initial].name if initial else None,
        }
        return Lifecycle.compile([CONNECTING, open_node, CLOSING, CLOSED], EDGES)

    def flatten(
        self, states: Mapping[str, StateInfo], transitions: list[Transition]
    ) -> tuple[dict[tuple[str, str, str], tuple[Transition, ...]], dict[str, frozenset[str]]]:
        dispatch: dict[tuple[str, str, str], tuple[Transition, ...]] = {}
        deferred: dict[str, frozenset[str]] = {}
        for path in [OPEN, *states]:
            scopes = _ancestors_or_self(path)  # deepest first
            if path in states and states[path].region is not None:
                scopes = [scope for scope in scopes if scope in states]  # a region's states only
            candidates: dict[tuple[str, str], list[Transition]] = {}
            for scope in scopes:
                for t in transitions:
                    if t.source == scope:
                        candidates.setdefault((t.kind, t.event), []).append(t)
            for (kind, event), found in candidates.items():
                dispatch[path, kind, event] = tuple(found)
            defer: frozenset[str] = frozenset()
            for scope in scopes:
                if scope in states:
                    defer |= states[scope].defer
            if defer:
                deferred[path] = defer
        return dispatch, deferred


def compile_machine(cls: type, *, idle_events: bool = True) -> MachineSpec:
    """Compile and check the state machine declared on *cls*.

    *idle_events* False: the class's ``idle_timeout`` is not an ``@on.idle()`` event (a
    plain actor closes the connection itself), so it needs no handler.
    """
    return _Compiler(cls, idle_events=idle_events).compile()
