"""State actors: WebSocket actors that run a machine declared with :mod:`interlock.dsl`.

Theory of operation
-------------------
The class is compiled once (``interlock.dsl.compile_machine``) into a
:class:`~interlock.dsl.MachineSpec`; instances are headless and keep only ``state``
(a dotted path such as ``open.lobby``) plus whatever timers, tasks and deferred
events are live.

1. Every event — client message, layer message, timeout, delay, timer, task result —
   goes through :meth:`_event`: the planner (:mod:`interlock.dsl._plan`) selects the
   transition for ``(state, kind, event)`` (the first whose guard passes), whose
   handler runs *in the source state*; then, if it has a target, the planner resolves
   it (initial children, history) and plans the crossing, which this module executes.
2. Executing a crossing: leaving a state disarms its delays, cancels its invoked tasks,
   records its history and runs its exit hooks; entering one runs enter hooks, arms its
   delays and starts its tasks. After each hook the executor checks whether the hook
   moved the actor (then the rest of the plan is void). Lifecycle operations
   (``accept``, ``close``, a disconnect) go the same way: ``accept`` enters ``open``'s
   initial state, a close or disconnect exits every user state. Once a step settles,
   eventless choices (``@on.always``) of the states the actor is in are tried, and
   events the actor raised to itself (:meth:`raise_event`) are handled next, before any
   other mailbox item.
3. Timeouts and task results are events handled by the actor's own loop, one at a
   time like every other event: the loop waits on its mailbox with the next timer's
   deadline (``anyio.current_time()``, so trio's virtual clock works) and serves due
   timers before the next mailbox item; no clock task exists. Task results are
   stamped with a generation, and one that arrives after its state was left is
   dropped, as is a timer disarmed or re-armed before it was served.
4. An event a state cannot handle is postponed if the state ``defer``\\s it and
   replayed in order after the next state change; otherwise the ``unhandled`` policy
   applies. Deferred events are bounded (``max_deferred``, ``max_deferred_bytes``): a
   client event beyond them closes with 1008, a layer message beyond them is dropped.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from threading import get_ident
from typing import Any, ClassVar

import anyio
import attrs
from interlock.dsl import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    Crossing,
    EventKind,
    Frame,
    MachineDefinitionError,
    MachineSpec,
    MessageFormatError,
    Plan,
    TaskFailed,
    Timeout,
    Transition,
    compile_machine,
    from_message,
    plan_crossing,
    select,
    target_of,
)

from ._ask import is_ask
from ._base import ASYNC, DEFERRED, NOT_HANDLED, ActorApp, UnhandledPolicy, library_class
from ._ending import Ending
from ._errors import MalformedMessage
from ._inspect_registry import TAP
from ._mailbox import INTERNAL
from ._types import Message
from ._websocket import JsonWebsocketActor, WebsocketActor

__all__ = ["EventlessLoop", "JsonStateActor", "StateActor", "TransitionRecord", "UnhandledEvent"]

_new_frame = tuple.__new__  # Frame(text, data) without the NamedTuple's Python-level __new__
logger = logging.getLogger("interlock.actors")

_IDLE: tuple[str, str] = ("idle", "")  # timer keys: (state path, delay name), ("timer", name), this
_MAX_CHOICES = 100  # eventless choices taken in a row before the actor gives up (a loop)

_IN_INVOKED_TASK: ContextVar[bool] = ContextVar("interlock_in_invoked_task", default=False)
"""True in an invoked task: timers it arms must wake the actor's loop, which may be waiting."""


class UnhandledEvent(ValueError):
    """No transition of the actor's current state accepts an event."""

    def __init__(self, actor: str, kind: str, event: str, state: str, reason: str) -> None:
        self.kind = kind
        self.event = event
        self.state = state
        super().__init__(f"{actor} in state {state!r} has no handler for {kind} event {event!r}: {reason}")


class EventlessLoop(RuntimeError):
    """Eventless choices (``@on.always``) kept moving the actor without an event: a loop."""


@attrs.frozen
class TransitionRecord:
    """What :meth:`StateActor.on_transition` observes, once per event or lifecycle move."""

    actor: str
    """The actor's identity: its class and channel name (or ``id()`` without a layer)."""
    kind: str
    """``client``, ``message``, ``timeout``, ``idle``, ``timer``, ``done``, ``error`` or ``lifecycle``."""
    event: str
    source: str
    target: str
    accepted: bool
    time: float
    """Wall-clock time (``time.time()``)."""
    handler: str | None = None


@attrs.frozen
class _Fired:
    """A task result the actor posted to its own mailbox."""

    key: tuple[str, str]
    generation: int
    kind: EventKind
    event: str
    payload: Any


class _Timer:
    """An armed delay, timer or idle timeout: due at *deadline* on ``anyio.current_time()``."""

    __slots__ = ("deadline", "event", "kind", "name", "seconds")

    def __init__(self, deadline: float, kind: EventKind, event: str, name: str, seconds: float) -> None:
        self.deadline = deadline
        self.kind = kind
        self.event = event
        self.name = name
        self.seconds = seconds


@library_class
class _MachineActor(WebsocketActor):
    """The DSL runtime shared by :class:`StateActor` and :class:`JsonStateActor`."""

    machine: ClassVar[MachineSpec]
    """The compiled state machine of this class."""

    max_deferred: ClassVar[int] = 64
    """Events a ``defer=`` state (or ``connecting``) holds for later, at most. A client event
    beyond it, or beyond ``max_deferred_bytes``, is the client's flood: the connection closes
    with 1008 (``too many deferred events: ...``) and a WARNING line. A layer message beyond
    it is dropped (the newest: those kept stay in order) and counted in a WARNING line."""

    max_deferred_bytes: ClassVar[int] = 1 << 20
    """Bytes the deferred events may hold, at most (1 MiB): a client event counts its frame's
    length, a layer message the length of its str and bytes values."""

    _plain_idle: ClassVar[bool] = False  # idle_timeout fires @on.idle() here, it does not close

    unhandled_client: ClassVar[UnhandledPolicy] = "close"
    """What a client event no transition accepts does: by default the client's mistake
    closes the connection with ``unhandled_close_code`` (1008) and the reason, logged as a
    WARNING line, never as the server's failure. ``unhandled`` governs the other events."""

    _observed: ClassVar[bool] = False

    delays: ClassVar[Mapping[str, float]] = {}
    """Delays that replace the declared ones, in seconds: ``{"state": 5}`` for a state's
    ``timeout``, ``{"state:name": 2}`` for its ``after={"name": ...}`` delay. Set it in a
    subclass, or per instance with ``as_asgi(delays={...})``; ``idle_timeout`` too."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.machine = cls._machine_spec = compile_machine(cls)
        cls._direct_names = {}
        for info in cls.machine.states.values():
            if info.name in cls._reserved:
                problem = (
                    f"state {info.name!r} would hide the actor's own attribute {info.name!r} "
                    "(a method or setting of interlock's actor classes); name the state differently"
                )
                raise MachineDefinitionError(cls.__qualname__, problem)
        cls._check_method_names()
        cls.lifecycle = cls.machine.lifecycle
        cls._refresh_lifecycle()
        cls._needs_mailbox = cls.machine.uses_clock
        cls._observed = cls.on_transition is not _MachineActor.on_transition
        cls._delays = cls.machine.delays

    @classmethod
    def _check_method_names(cls) -> None:
        """A handler, hook or invoked task named like one of the actor's own methods would
        replace it (``accept``, ``send``, ``close`` …): refused when the class is created."""
        spec = cls.machine
        named = [(f"handler {t.handler!r}", t.handler) for t in spec.transitions]
        for info in spec.states.values():
            named += [(f"hook {hook!r} of state {info.path!r}", hook) for hook in (*info.enter, *info.exit)]
            named += [(f"task {task!r} of state {info.path!r}", task) for task in info.invoke]
        for what, name in named:
            if name in cls._reserved:
                problem = (
                    f"{what} would replace the actor's own {name}() (one of interlock's methods); name it differently"
                )
                raise MachineDefinitionError(cls.__qualname__, problem)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ActorApp:
        """Return an ASGI app serving each scope with a new ``cls(**initkwargs)``.

        Besides the class attributes, ``delays={...}`` (see :attr:`delays`) and
        ``idle_timeout=`` change the machine's delays per instance; both are checked here.
        """
        if "delays" in initkwargs:
            cls._instance_delays(initkwargs["delays"])
        if "idle_timeout" in initkwargs:
            idle = initkwargs["idle_timeout"]
            if idle is not None and (not isinstance(idle, (int, float)) or isinstance(idle, bool) or idle <= 0):
                msg = (
                    f"{cls.__qualname__}.as_asgi(idle_timeout={idle!r}): expected a positive number of seconds or None"
                )
                raise ValueError(msg)
            if idle is not None and cls.machine.idle_timeout is None:
                msg = (
                    f"{cls.__qualname__}.as_asgi(idle_timeout={idle!r}): the class declares no idle timeout, "
                    "so no @on.idle() handler would run; set idle_timeout on the class and add one"
                )
                raise ValueError(msg)
        return super().as_asgi(**initkwargs)

    @classmethod
    def _instance_delays(cls, delays: object) -> dict[tuple[str, str], float]:
        try:
            return cls.machine.with_delays(delays)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{cls.__qualname__}: {exc}") from None

    # Per-instance state starts as these class-level defaults and becomes an instance
    # attribute only once used: each actor's __dict__ stays small (and key-shared).
    _deferred: list[tuple[EventKind, str, Any]] | None = None
    _deferred_bytes: int = 0
    _deferred_dropped: int = 0  # layer messages dropped beyond the bounds since the last replay
    _timers: dict[tuple[str, str], _Timer] | None = None
    _task_scopes: dict[str, list[tuple[str, anyio.CancelScope]]] | None = None
    _live_tasks: dict[tuple[str, str], int] | None = None  # (state, task) -> generation
    _generation: int = 0
    _settling: bool = False
    _inside: str = CONNECTING  # the innermost state whose exit hooks are owed (a user state once open)
    _due: float = math.inf  # the deadline the actor's loop last waited for
    _history: dict[str, str] | None = None  # state -> the leaf it was last left from
    _regions: dict[str, str] | None = None  # parallel region -> its leaf, while open
    _region_inside: dict[str, str] | None = None  # parallel region -> its innermost entered state
    _raised: deque[dict[str, Any]] | None = None  # raise_event(): handled before the mailbox
    _direct_names: ClassVar[dict[tuple[str, str, str], str | None]] = {}  # (state, kind, event) -> see _direct_name()
    _cause: tuple[str, str, Any, str] = ("lifecycle", "", None, CONNECTING)  # for Crossing
    _delays: Mapping[tuple[str, str], float] = {}  # the class's (set per class), or this instance's

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        self._moves: list[tuple[str, str, str | None]] = []
        overrides = initkwargs.get("delays")
        if overrides:
            self._delays = self._instance_delays(overrides)

    # -- observation -----------------------------------------------------------------------

    def on_transition(self, record: TransitionRecord) -> None:
        """Override to observe every event and lifecycle move (logging, metrics)."""

    def _observe(
        self, kind: str, event: str, source: str, target: str, *, accepted: bool, handler: str | None = None
    ) -> None:
        identity = f"{type(self).__qualname__}:{self._channel_name or id(self)}"
        record = TransitionRecord(identity, kind, event, source, target, accepted, time.time(), handler)
        self.on_transition(record)
        if TAP.watching:  # an inspector shows the recent transitions (it sets _observed meanwhile)
            TAP.transition(self, record)

    def delay(self, ref: str) -> float:
        """The seconds a delay lasts for this actor (after ``delays`` overrides, per class
        and per instance): ``"state"`` for a state's timeout, ``"state:name"`` for a named one."""
        spec = self.machine
        try:
            key = spec.delay_key(ref)
        except KeyError:
            known = ", ".join(spec.delay_names()) or "none"
            msg = f"{type(self).__qualname__}.delay({ref!r}): no such delay; the delays are: {known}"
            raise ValueError(msg) from None
        return self._delays[key]

    def has_tag(self, tag: str) -> bool:
        """Whether the current state, or a state enclosing it, carries *tag* (in any region too)."""
        spec = self.machine
        return tag in spec.tags_of(self.state) or any(
            tag in spec.tags_of(leaf) for leaf in (self._regions or {}).values()
        )

    @property
    def regions(self) -> dict[str, str]:
        """The state of each parallel region while the connection is open (empty otherwise)."""
        return dict(self._regions or {})

    # -- lifecycle moves -------------------------------------------------------------------

    def _move(self, trigger: str) -> str:
        old = self.state
        try:
            new = self.lifecycle.next(old, trigger)
        except Exception:
            if self._observed:
                self._observe("lifecycle", trigger, old, old, accepted=False)
            raise
        if new == OPEN:
            new = self.machine.initial_leaf
        self.state = new
        if new != old:
            if self.machine.crossing_hooks:
                self._cause = ("lifecycle", trigger, None, old)
            self._moves.append((old, new, None))
        if self._observed:
            self._observe("lifecycle", trigger, old, new, accepted=True)
        return new

    async def _settle(self) -> None:
        """Run exit and entry work for every recorded move, take eventless choices, then
        replay deferred events if the state changed."""
        if self._settling:
            return
        self._settling = True
        moved = False
        try:
            chosen = 0
            while True:
                while self._moves:
                    old, new, reenter = self._moves.pop(0)
                    moved = True
                    await self._cross(old, new, reenter=reenter)
                if not self.machine.eventless or self.state in (CONNECTING, CLOSING, CLOSED):
                    break
                choice = select(self.machine, self.state, "always", "", self._accepts_none)
                if not isinstance(choice, Transition):
                    break
                chosen += 1
                if chosen > _MAX_CHOICES:
                    msg = (
                        f"{type(self).__qualname__}: {_MAX_CHOICES} eventless choices in a row without an "
                        f"event (last: {choice.handler!r} in state {self.state!r}); their guards never settle"
                    )
                    raise EventlessLoop(msg)
                await self._fire(choice, None)
        finally:
            self._settling = False
        if self._deferred and moved:
            if self.state in (CLOSING, CLOSED):
                self._deferred = None  # the connection is ending: nothing will handle them
                return
            replay, self._deferred = self._deferred, None
            self._deferred_bytes = 0
            self._report_deferred_drops()
            for kind, event, payload in replay:
                if self.state in (CLOSING, CLOSED):
                    break  # a replayed event closed the connection: the rest are never handled
                if kind == "message" and is_ask(payload):
                    await self._serve_ask(payload)  # its answer goes back now
                else:
                    await self._event(kind, event, payload)

    def _accepts_none(self, transition: Transition) -> bool:
        return transition.guard is None or bool(transition.guard(self, None))

    async def _cross(self, old: str, new: str, *, reenter: str | None) -> None:
        """Execute the planner's crossing from where the actor is to *new*.

        *reenter* is the declared target of an external transition: it and every state
        below it are exited and entered again even if the actor was already inside it.
        Entering ``open`` enters every parallel region too; ending the connection exits
        them (before the main states).
        """
        spec = self.machine
        if old == CONNECTING and self.idle_timeout is not None:
            self._arm(_IDLE, self.idle_timeout, "idle", "idle", "idle")  # a client that never speaks idles out too
        ending = new in (CLOSING, CLOSED)
        if ending:
            self._tearing_down = True  # exit hooks of a closing connection may not send: sends are dropped
            if self._timers:
                self._timers.clear()  # no timer event is handled once the connection is ending
            regions, self._regions = self._regions, None
            if regions:
                inside = self._region_inside or {}
                for region in reversed(list(regions)):
                    left = inside[region]
                    await self._execute(region, plan_crossing(spec, left, new, None), new, left, ending=True)
        # Exit what was really entered: an enter hook that closed the connection left the
        # states below it unentered, though self.state already named them.
        left = self._inside
        await self._execute(None, plan_crossing(spec, left, new, reenter), new, left, ending=ending)
        if old == CONNECTING and spec.regions and not ending:
            await self._enter_regions()

    async def _enter_regions(self) -> None:
        """The connection opened: enter each parallel region's initial states."""
        spec = self.machine
        self._regions, self._region_inside = {}, {}
        for region, leaf in spec.regions.items():
            if self.state in (CLOSING, CLOSED) or self._regions is None:
                return  # an enter hook closed the connection
            root = f"{OPEN}.{region}"
            self._regions[region] = leaf
            self._region_inside[region] = root
            await self._execute(region, plan_crossing(spec, root, leaf, None), leaf, root, ending=False)
            await self._region_choices(region)

    async def _execute(self, region: str | None, plan: Plan, new: str, left: str, *, ending: bool) -> None:
        """Run *plan* in the main states (*region* None) or in a parallel region.

        After each hook, check whether the hook moved the actor (or the region) elsewhere:
        then the rest of the entries are void.
        """
        spec = self.machine
        takes = spec.crossing_hooks
        crossing = None
        for step in plan.exits:
            timers = self._timers
            if timers:
                for name in step.delays:
                    timers.pop((step.state, name), None)
            if step.tasks and self._task_scopes:
                for task, scope in self._task_scopes.pop(step.state, ()):
                    scope.cancel()
                    if self._live_tasks:
                        self._live_tasks.pop((step.state, task), None)
            if step.records:
                if self._history is None:
                    self._history = {}
                self._history[step.state] = left
            for hook in step.hooks:
                args: tuple[Any, ...] = ()
                if hook in takes:
                    crossing = crossing or self._crossing(new, ending)
                    args = (crossing,)
                if ending:
                    await self._call_exit_hook(hook, *args)
                else:
                    await self._call(hook, *args)
            self._set_inside(region, step.parent)
        for entry in plan.entries:
            if (self.state if region is None else (self._regions or {}).get(region)) != new:
                return  # an exit or enter hook moved the actor on
            path = entry.state
            self._set_inside(region, path)  # entered once its enter hooks start: its exit hooks are owed
            for hook in entry.hooks:
                if hook in takes:
                    crossing = crossing or self._crossing(new, ending)
                    await self._call(hook, crossing)
                else:
                    await self._call(hook)
            for name in entry.delays:
                seconds = self._delays[path, name]
                if name:
                    self._arm((path, name), seconds, "after", f"{path}:{name}", name)
                else:
                    self._arm((path, name), seconds, "timeout", path, spec.states[path].name)
            for task in entry.tasks:
                self._start_task(path, task)

    def _set_inside(self, region: str | None, path: str) -> None:
        if region is None:
            self._inside = path
        elif self._region_inside is not None:
            self._region_inside[region] = path

    def _crossing(self, target: str, ending: bool) -> Crossing:
        kind, event, payload, source = self._cause
        return Crossing(kind, event, payload, source, target, ending)

    async def _call_exit_hook(self, hook: str, *args: Any) -> None:
        """Run an exit hook of an ending connection: its failure is logged, the teardown goes on."""
        try:
            await self._call(hook, *args)
        except Exception as exc:
            logger.error("%r: exit hook %s() failed: %s: %s", self, hook, type(exc).__name__, exc, exc_info=exc)

    async def _teardown(self, ending: Ending) -> None:
        """Forget pending moves, deferred events and timers, then leave every entered state."""
        self._moves.clear()  # what a failed handler left half done is not finished now
        for name in ("_deferred", "_deferred_bytes", "_timers", "_raised", "_settling"):
            if name in self.__dict__:  # back to the class default (no new instance attribute)
                delattr(self, name)
        self._report_deferred_drops()
        await super()._teardown(ending)

    # -- events ---------------------------------------------------------------------------

    def _direct_handler(self, kind: EventKind, event: str) -> Callable[[Any], Awaitable[Any]] | None:
        """The handler to call for *event*, if taking it is that call and nothing else; else None.

        True of an event in a state where one unguarded internal transition takes it with an
        ``async def`` handler (called once already), no idle timeout to reset, no eventless
        transition to try afterwards and nobody observing transitions: the hot path calls it
        straight away instead of through ``_event()`` and ``_fire()``, two awaits less.
        """
        if self._regions or self.idle_timeout is not None or self._observed or self.machine is not self._machine_spec:
            return None  # (the last: an instance given its own machine, for which the class's cache is not)
        key = (self.state, kind, event)
        name = self._direct_names.get(key, _UNKNOWN)
        if name is _UNKNOWN:  # once per class, state and declared event (a client names any it likes)
            name = _direct_name(self.machine, key)
            if key in self.machine.dispatch:
                self._direct_names[key] = name
        if name is None or self._asyncness.get(name) != ASYNC:
            return None
        handler: Callable[[Any], Awaitable[Any]] = getattr(self, name)
        return handler

    async def _event(self, kind: EventKind, event: str, payload: Any) -> Any:
        """Handle one event; return its handler's result (``NOT_HANDLED``, ``DEFERRED``: none ran)."""
        if self._regions:
            taken = await self._offer_regions(kind, event, payload)
            if taken is not NOT_HANDLED:
                return taken
        state = self.state
        spec = self.machine
        candidates = spec.dispatch.get((state, kind, event))
        if candidates is not None:
            first = candidates[0]
            if first.guard is None and first.message_class is None:  # the usual case: one plain handler
                return await self._fire(first, payload)
            chosen = select(spec, state, kind, event, lambda t: self._guard_passes(t, payload))
            if isinstance(chosen, Transition):
                value = self._structure(chosen, payload) if chosen.message_class is not None else payload
                return await self._fire(chosen, value)
            if self._observed:
                self._observe(kind, event, state, state, accepted=False)
            if kind == "error":  # an invoked task failed and no handler took it: the actor fails
                raise payload.error
            reason = "every guard rejected it"
        else:
            if kind in ("client", "message"):
                deferred = spec.deferred.get(state)
                if state == CONNECTING or (deferred is not None and event in deferred):
                    self._defer(kind, event, payload)
                    return DEFERRED
            if kind == "done":
                logger.debug("%r ignored the result of task %r", self, event)
                return NOT_HANDLED
            if kind == "timer":  # started elsewhere, due where nothing handles it: it is over
                logger.debug("%r ignored timer %r: state %r has no handler for it", self, event, state)
                return NOT_HANDLED
            if kind == "error":
                raise payload.error
            reason = "no transition of this state accepts it"
            if self._observed:
                self._observe(kind, event, state, state, accepted=False)
        error = UnhandledEvent(type(self).__qualname__, kind, event, state, reason)
        self._apply_unhandled(error, self.unhandled_client if kind == "client" else None)
        return NOT_HANDLED

    async def _offer_regions(self, kind: EventKind, event: str, payload: Any) -> Any:
        """Offer an event the parallel regions handle to the main state, then to each region.

        Returns the first handler's result if any took it; ``NOT_HANDLED`` also when no
        region has a transition for it (the main states' rules then apply alone:
        deferral, the unhandled policy).
        """
        spec = self.machine
        regions = self._regions or {}
        hits = [region for region, leaf in regions.items() if (leaf, kind, event) in spec.dispatch]
        if not hits:
            return NOT_HANDLED
        taken: Any = NOT_HANDLED
        if (self.state, kind, event) in spec.dispatch:
            chosen = select(spec, self.state, kind, event, lambda t: self._guard_passes(t, payload))
            if isinstance(chosen, Transition):
                taken = await self._fire(chosen, self._value(chosen, payload))
        for region in hits:
            regions = self._regions or {}
            if region not in regions or self.state in (CLOSING, CLOSED):
                break
            chosen = select(spec, regions[region], kind, event, lambda t: self._guard_passes(t, payload))
            if isinstance(chosen, Transition):
                value = await self._fire_region(region, chosen, self._value(chosen, payload))
                taken = value if taken is NOT_HANDLED else taken
        return taken

    def _value(self, transition: Transition, payload: Any) -> Any:
        return self._structure(transition, payload) if transition.message_class is not None else payload

    async def _fire_region(self, region: str, transition: Transition, value: Any) -> Any:
        """Run a parallel region's transition: the handler, then the region's crossing."""
        spec = self.machine
        regions = self._regions
        assert regions is not None
        source = regions[region]
        if self.idle_timeout is not None and transition.kind not in ("idle", "always"):
            self._arm(_IDLE, self.idle_timeout, "idle", "idle", "idle")
        result = await self._call(transition.handler, value)
        target = source
        regions = self._regions
        if transition.target is not None and regions is not None and regions.get(region) == source:
            target = target_of(spec, transition, self._history)
            regions[region] = target
            if spec.crossing_hooks:
                self._cause = (transition.kind, transition.event, value, source)
            left = (self._region_inside or {})[region]
            await self._execute(
                region, plan_crossing(spec, left, target, transition.target), target, left, ending=False
            )
        if self._observed:
            self._observe(transition.kind, transition.event, source, target, accepted=True, handler=transition.handler)
        if transition.kind != "always":
            await self._region_choices(region)
        return result

    async def _region_choices(self, region: str) -> None:
        """Take a region's eventless choices until none applies (at most ``_MAX_CHOICES``)."""
        spec = self.machine
        if not spec.eventless:
            return
        for _ in range(_MAX_CHOICES):
            regions = self._regions
            if not regions or region not in regions or self.state in (CLOSING, CLOSED):
                return
            choice = select(spec, regions[region], "always", "", self._accepts_none)
            if not isinstance(choice, Transition):
                return
            await self._fire_region(region, choice, None)
        msg = f"{type(self).__qualname__}: {_MAX_CHOICES} eventless choices in a row in region {region!r}"
        raise EventlessLoop(msg)

    def _guard_passes(self, transition: Transition, payload: Any) -> bool:
        guard = transition.guard
        if guard is None:
            return True
        value = self._structure(transition, payload) if transition.message_class is not None else payload
        return bool(guard(self, value))

    def _defer(self, kind: EventKind, event: str, payload: Any) -> None:
        """Hold an event for the next state change, within ``max_deferred``/``max_deferred_bytes``."""
        queue = self._deferred
        if queue is None:
            queue = self._deferred = []
        size = _size_of(payload)
        if len(queue) < self.max_deferred and self._deferred_bytes + size <= self.max_deferred_bytes:
            queue.append((kind, event, payload))
            self._deferred_bytes += size
            return
        if kind == "message":  # the layer's messages: drop the newest, count it
            self._deferred_dropped += 1
            if self._deferred_dropped == 1:
                logger.warning(
                    "%r drops layer message %r: %d deferred events (%d bytes) held in state %r "
                    "(max_deferred=%d, max_deferred_bytes=%d); further drops are counted",
                    self,
                    event,
                    len(queue),
                    self._deferred_bytes,
                    self.state,
                    self.max_deferred,
                    self.max_deferred_bytes,
                )
            return
        # the client's flood is the client's fault: close, free what it queued
        reason = (
            f"too many deferred events: {len(queue) + 1} events, {self._deferred_bytes + size} bytes "
            f"in state {self.state!r} (max {self.max_deferred}, {self.max_deferred_bytes} bytes)"
        )
        self._deferred = None
        self._deferred_bytes = 0
        logger.warning("%r closes: %s", self, reason)
        self.close(1008, reason)

    def _report_deferred_drops(self) -> None:
        dropped, self._deferred_dropped = self._deferred_dropped, 0
        if dropped > 1:
            logger.warning("%r dropped %d deferred layer message(s) beyond max_deferred in all", self, dropped)

    def _structure(self, transition: Transition, payload: Any) -> Any:
        assert transition.message_class is not None
        try:
            return from_message(payload, transition.message_class)
        except MessageFormatError as exc:
            if transition.kind == "client":
                raise MalformedMessage(str(exc), close_code=1007) from exc
            raise

    async def _fire(self, transition: Transition, value: Any) -> Any:
        source = self.state
        idle = self.idle_timeout
        if idle is not None and transition.kind not in ("idle", "always"):  # every handled event resets it
            self._arm(_IDLE, idle, "idle", "idle", "idle")
        name = transition.handler
        if self._asyncness.get(name) == ASYNC:  # the hot path: what _call() does, one await less
            result = await getattr(self, name)(value)
            if self._outbox:
                await self._flush()
            if self._moves:
                await self._settle()
        else:
            result = await self._call(name, value)
        target = self.state
        if transition.target is not None and self.state == source:
            target = target_of(self.machine, transition, self._history)
            self.state = target
            if self.machine.crossing_hooks:
                self._cause = (transition.kind, transition.event, value, source)
            self._moves.append((source, target, transition.target))
            await self._settle()
        elif self.machine.eventless and not self._settling:
            await self._settle()  # an internal transition may have made a choice's guard true
        if self._observed:
            self._observe(transition.kind, transition.event, source, target, accepted=True, handler=transition.handler)
        return result

    # -- layer messages -------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> Any:  # type: ignore[override]
        """Deliver a layer message to the state machine as a ``message`` event; return the handler's result."""
        kind = message.get("type")
        return await self._event("message", kind if isinstance(kind, str) else repr(kind), message)

    def _in_loop(self) -> bool:
        return super()._in_loop() and not _IN_INVOKED_TASK.get()

    def raise_event(self, message: dict[str, Any]) -> None:
        """Post *message* (a dict with a str ``"type"``) to this actor itself, as a layer message.

        It is handled as a ``message`` event right after the current event, before
        anything else waiting in the mailbox (an XState ``raise``). Events raised while
        the connection is ending are dropped.
        """
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str) or not kind:
            msg = f"raise_event({message!r}): expected a dict whose 'type' is a non-empty str"
            raise TypeError(msg)
        if self.state in (CLOSING, CLOSED):
            return
        if self._raised is None:
            self._raised = deque()
        self._raised.append(message)

    # -- timers -----------------------------------------------------------------------------

    def start_timer(self, name: str, seconds: float) -> None:
        """(Re)start the named timer; its ``@on.timer(name)`` handler runs after *seconds*.

        A timer belongs to the actor, not to a state: if it comes due in a state where no
        ``@on.timer(name)`` handler applies, it is dropped (logged at DEBUG). For a delay
        that is cancelled when a state is left, declare ``State(after={name: seconds})``.
        """
        if name not in self.machine.timer_names:
            known = ", ".join(sorted(self.machine.timer_names)) or "none"
            msg = f"start_timer({name!r}): no @on.timer({name!r}) handler is declared (timers: {known})"
            raise ValueError(msg)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            msg = f"start_timer({name!r}, {seconds!r}): seconds must be a number >= 0"
            raise ValueError(msg)
        self._arm(("timer", name), seconds, "timer", name, name)

    def cancel_timer(self, name: str) -> None:
        """Cancel the named timer; nothing happens if it is not running."""
        self._disarm(("timer", name))

    def _arm(self, key: tuple[str, str], seconds: float, kind: EventKind, event: str, name: str) -> None:
        if get_ident() != self._loop_thread:  # start_timer() from a sync handler, in a worker thread
            anyio.from_thread.run_sync(self._arm, key, seconds, kind, event, name)
            return
        if self._timers is None:
            self._timers = {}
        deadline = anyio.current_time() + seconds
        self._timers[key] = _Timer(deadline, kind, event, name, seconds)
        if deadline < self._due and _IN_INVOKED_TASK.get():
            # the loop may be waiting for a later deadline: post a wake-up (None: serve the timers)
            self._due = deadline
            self._tasks.start_soon(self._mailbox.put, (INTERNAL, None))

    def _disarm(self, key: tuple[str, str]) -> None:
        if self._timers:
            self._timers.pop(key, None)

    def _next_deadline(self) -> float:
        timers = self._timers
        due: float = min((timer.deadline for timer in timers.values()), default=math.inf) if timers else math.inf
        if self.state == CONNECTING:
            due = min(due, self._handshake_due)
        self._due = due
        return due

    async def _fire_due_timers(self) -> bool:
        """Handle every timer whose deadline passed, earliest first."""
        now = anyio.current_time()
        if self.state == CONNECTING and now >= self._handshake_due:
            self._handshake_expired()  # handshake_timeout: refused with 408
            return False
        timers = self._timers or {}
        due = sorted((timer.deadline, key) for key, timer in timers.items() if timer.deadline <= now)
        for _, key in due:
            timer = timers.get(key)
            if timer is None or timer.deadline > now:
                continue  # a handler before it disarmed or re-armed it
            del timers[key]
            await self._event(timer.kind, timer.event, Timeout(timer.name, timer.seconds))
            if self.state in (CLOSING, CLOSED):  # no timer is served once the connection ends
                return self.state == CLOSED
        return False

    # -- invoked tasks ----------------------------------------------------------------------

    def _start_task(self, state: str, task: str) -> None:
        if self._task_scopes is None:
            self._task_scopes = {}
        self._generation += 1
        scope = anyio.CancelScope()
        self._task_scopes.setdefault(state, []).append((task, scope))
        key = (state, task)
        if self._live_tasks is None:
            self._live_tasks = {}
        self._live_tasks[key] = self._generation
        self._tasks.start_soon(self._run_task, key, self._generation, task, scope)

    async def _run_task(self, key: tuple[str, str], generation: int, task: str, scope: anyio.CancelScope) -> None:
        _IN_INVOKED_TASK.set(True)  # in this task's own copy of the context
        with scope:
            method: Callable[[], Any] = getattr(self, task)
            try:
                result = await method()
            except Exception as exc:  # noqa: BLE001 - delivered as an @on.error event
                item = _Fired(key, generation, "error", task, TaskFailed(task, exc))
            else:
                item = _Fired(key, generation, "done", task, result)
            await self._mailbox.put((INTERNAL, item))

    async def _on_internal(self, payload: Any) -> bool:
        if payload is None:
            return await self._fire_due_timers()
        fired: _Fired = payload
        live = self._live_tasks
        if not live or live.get(fired.key) != fired.generation:
            return False  # its state was left, or it was restarted: stale
        del live[fired.key]
        await self._event(fired.kind, fired.event, fired.payload)
        return self.state == CLOSED


def _size_of(payload: Any, depth: int = 0) -> int:
    """A cheap size estimate of a deferred event: the frame's length, a message's str and bytes."""
    if isinstance(payload, (str, bytes, bytearray)):
        return len(payload)
    if isinstance(payload, Frame):
        return len(payload.text if payload.text is not None else payload.bytes or b"")
    if depth < 4:
        if isinstance(payload, dict):
            return sum(len(str(key)) + _size_of(value, depth + 1) + 4 for key, value in payload.items())
        if isinstance(payload, (list, tuple)):
            return sum(_size_of(value, depth + 1) + 2 for value in payload)
    return 8


@library_class
class StateActor(_MachineActor):
    """A WebSocket actor whose behaviour is a declared state machine.

    Client frames are the event ``"receive"`` (a :class:`~interlock.dsl.Frame`); layer
    messages are ``message`` events by their ``type``. See :mod:`interlock.dsl`.
    """

    _fast_receive: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fast_receive = cls.receive is StateActor.receive

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Feed a client frame to the machine as the client event ``receive``."""
        await self._event("client", "receive", Frame(text_data, bytes_data))

    async def _on_client_event(self, message: Message) -> bool:
        # the hot path: a frame in an open state goes straight to the machine
        if message["type"] == "websocket.receive" and self._fast_receive and self.state in self._receivable:
            text, data = message.get("text"), message.get("bytes")
            limit = self.max_message_size
            if limit is not None and len(text if text is not None else data or b"") * 4 > limit:
                self._check_size(text, data)  # near the limit: count exactly
            direct = self._direct_handler("client", "receive")
            if direct is not None:  # what _event() and _fire() would do, two awaits less
                await direct(_new_frame(Frame, (text, data)))
                if self._outbox:
                    await self._flush()
                if self._moves:
                    await self._settle()
            else:
                await self._event("client", "receive", Frame(text, data))
            return self.state == CLOSED
        return await super()._on_client_event(message)


@library_class
class JsonStateActor(_MachineActor, JsonWebsocketActor):
    """A state actor that speaks JSON: client event types come from the ``"type"`` key.

    A client message that is not a JSON object with a str ``"type"`` closes the
    connection with 1007, as malformed JSON does.
    """

    _fast_receive: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fast_receive = (
            cls.receive is JsonWebsocketActor.receive
            and cls.receive_json is JsonStateActor.receive_json
            and not cls._async_codec[1]
            and not cls.acks  # acks take JsonWebsocketActor's path: the handler's result answers
        )

    async def receive_json(self, content: Any) -> Any:
        """Feed ``{"type": ..., ...}`` to the machine as a client event; return its handler's result.

        With ``acks = True`` that result answers a frame carrying an ``"ack"`` id (None if no
        handler ran: the event was unhandled, or deferred).
        """
        result = await self._event("client", _event_type(content), content)
        return None if result is NOT_HANDLED or result is DEFERRED else result

    async def _on_client_event(self, message: Message) -> bool:
        # the hot path: a text frame in an open state is decoded and goes straight to the
        # machine (what receive() -> receive_json() do, unless a subclass overrides them)
        if message["type"] == "websocket.receive" and self._fast_receive and self.state in self._receivable:
            text = message.get("text")
            if text is not None:
                limit = self.max_message_size
                if limit is not None and len(text) * 4 > limit:
                    self._check_size(text, None)  # near the limit: count exactly
                content = self.decode_json(text)
                kind = content.get("type") if type(content) is dict else None
                if type(kind) is not str or not kind:  # checked (and explained) the slow way
                    kind = _event_type(content)
                direct = self._direct_handler("client", kind)
                if direct is not None:  # what _event() and _fire() would do, two awaits less
                    await direct(content)
                    if self._outbox:
                        await self._flush()
                    if self._moves:
                        await self._settle()
                else:
                    await self._event("client", kind, content)
                return self.state == CLOSED
        return await super()._on_client_event(message)


_UNKNOWN: Any = object()  # not looked up yet


def _direct_name(spec: MachineSpec, key: tuple[str, str, str]) -> str | None:
    """The handler of the one unguarded internal transition taking *key*'s event in its state, if that is all."""
    if spec.eventless:
        return None
    candidates = spec.dispatch.get(key)
    if candidates is None:
        return None
    first = candidates[0]
    if first.guard is not None or first.message_class is not None or first.target is not None:
        return None
    return first.handler


def _event_type(content: Any) -> str:
    kind = content.get("type") if isinstance(content, dict) else None
    if not isinstance(kind, str) or not kind:
        msg = f"expected a JSON object with a str 'type' naming the event, got {str(content)[:60]}"
        raise MalformedMessage(msg, close_code=1007)
    return kind
