"""State actors: WebSocket actors that run a machine declared with :mod:`interlock.dsl`.

Theory of operation
-------------------
The class is compiled once (``interlock.dsl.compile_machine``) into a
:class:`~interlock.dsl.MachineSpec`; instances are headless and keep only ``state``
(a dotted path such as ``open.lobby``) plus whatever timers, tasks and deferred
events are live.

1. Every event — client message, layer message, timeout, timer, task result — goes
   through :meth:`_event`: one dict lookup finds the candidate transitions for
   ``(state, kind, event)``; the first whose guard passes runs its handler *in the
   source state*, then, if it has a target, the actor leaves and enters states.
2. Leaving a state cancels its timeout and invoked tasks and runs its exit hooks;
   entering one runs enter hooks, arms its timeout and starts its tasks. Lifecycle
   operations (``accept``, ``close``, a disconnect) go the same way: ``accept`` enters
   ``open``'s initial state, a close or disconnect exits every user state.
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
from collections.abc import Callable
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
    EventKind,
    Frame,
    MachineDefinitionError,
    MachineSpec,
    MessageFormatError,
    TaskFailed,
    Timeout,
    Transition,
    compile_machine,
    from_message,
)

from ._base import INTERNAL, UnhandledPolicy, library_class
from ._ending import Ending
from ._errors import MalformedMessage
from ._types import Message
from ._websocket import JsonWebsocketActor, WebsocketActor

__all__ = ["JsonStateActor", "StateActor", "TransitionRecord", "UnhandledEvent"]

logger = logging.getLogger("interlock.actors")

_IDLE = "idle"

_IN_INVOKED_TASK: ContextVar[bool] = ContextVar("interlock_in_invoked_task", default=False)
"""True in an invoked task: timers it arms must wake the actor's loop, which may be waiting."""


class UnhandledEvent(ValueError):
    """No transition of the actor's current state accepts an event."""

    def __init__(self, actor: str, kind: str, event: str, state: str, reason: str) -> None:
        self.kind = kind
        self.event = event
        self.state = state
        super().__init__(f"{actor} in state {state!r} has no handler for {kind} event {event!r}: {reason}")


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
    """A timer or task result the actor posted to its own mailbox."""

    key: str
    generation: int
    kind: EventKind
    event: str
    payload: Any


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.machine = cls._machine_spec = compile_machine(cls)
        for info in cls.machine.states.values():
            if info.name in cls._reserved:
                problem = (
                    f"state {info.name!r} would hide the actor's own attribute {info.name!r} "
                    "(a method or setting of interlock's actor classes); name the state differently"
                )
                raise MachineDefinitionError(cls.__qualname__, problem)
        cls.lifecycle = cls.machine.lifecycle
        cls._refresh_lifecycle()
        cls._needs_mailbox = cls.machine.uses_clock
        cls._observed = cls.on_transition is not _MachineActor.on_transition

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        self._moves: list[tuple[str, str, str | None]] = []
        self._deferred: list[tuple[EventKind, str, Any]] | None = None
        self._deferred_bytes = 0
        self._deferred_dropped = 0  # layer messages dropped beyond the bounds since the last replay
        self._timers: dict[str, list[Any]] | None = None
        self._task_scopes: dict[str, list[tuple[str, anyio.CancelScope]]] | None = None
        self._generation = 0
        self._settling = False
        self._inside = CONNECTING  # the innermost state whose exit hooks are owed (a user state once open)
        self._due = math.inf  # the deadline the actor's loop last waited for

    # -- observation -----------------------------------------------------------------------

    def on_transition(self, record: TransitionRecord) -> None:
        """Override to observe every event and lifecycle move (logging, metrics)."""

    def _observe(
        self, kind: str, event: str, source: str, target: str, *, accepted: bool, handler: str | None = None
    ) -> None:
        identity = f"{type(self).__qualname__}:{self._channel_name or id(self)}"
        self.on_transition(TransitionRecord(identity, kind, event, source, target, accepted, time.time(), handler))

    def has_tag(self, tag: str) -> bool:
        """Whether the current state, or a state enclosing it, carries *tag*."""
        return tag in self.machine.tags_of(self.state)

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
            self._moves.append((old, new, None))
        if self._observed:
            self._observe("lifecycle", trigger, old, new, accepted=True)
        return new

    async def _settle(self) -> None:
        """Run exit and entry work for every recorded move, then replay deferred events."""
        if self._settling:
            return
        self._settling = True
        try:
            while self._moves:
                old, new, reenter = self._moves.pop(0)
                await self._cross(old, new, reenter=reenter)
        finally:
            self._settling = False
        if self._deferred:
            if self.state in (CLOSING, CLOSED):
                self._deferred = None  # the connection is ending: nothing will handle them
                return
            replay, self._deferred = self._deferred, None
            self._deferred_bytes = 0
            self._report_deferred_drops()
            for kind, event, payload in replay:
                if self.state in (CLOSING, CLOSED):
                    break  # a replayed event closed the connection: the rest are never handled
                await self._event(kind, event, payload)

    async def _cross(self, old: str, new: str, *, reenter: str | None) -> None:
        """Exit the states of *old* and enter those of *new* below their common ancestor.

        *reenter* is the declared target of an external transition: it and every state
        below it are exited and entered again even if the actor was already inside it.
        """
        spec = self.machine
        if old == CONNECTING and spec.idle_timeout is not None:
            self._arm(_IDLE, spec.idle_timeout, "idle", _IDLE)  # a client that never speaks idles out too
        ending = new in (CLOSING, CLOSED)
        if ending:
            self._tearing_down = True  # exit hooks of a closing connection may not send: sends are dropped
            if self._timers:
                self._timers.clear()  # no timer event is handled once the connection is ending
        # Exit what was really entered: an enter hook that closed the connection left the
        # states below it unentered, though self.state already named them.
        old_chain, new_chain = spec.chain(self._inside), spec.chain(new)
        common = 0
        while common < min(len(old_chain), len(new_chain)) and old_chain[common] == new_chain[common]:
            common += 1
        if reenter is not None:
            common = min(common, max(len(spec.chain(reenter)) - 1, 0))
        for path in reversed(old_chain[common:]):
            info = spec.states[path]
            self._disarm(f"state:{path}")
            for _, scope in (self._task_scopes or {}).pop(path, ()):
                scope.cancel()
            for hook in info.exit:
                if ending:
                    await self._call_exit_hook(hook)
                else:
                    await self._call(hook)
            self._inside = info.parent
        for path in new_chain[common:]:
            if self.state != new:  # an exit or enter hook moved the actor on
                return
            info = spec.states[path]
            self._inside = path  # entered once its enter hooks start: its exit hooks are owed
            for hook in info.enter:
                await self._call(hook)
            if info.timeout is not None:
                self._arm(f"state:{path}", info.timeout, "timeout", path)
            for task in info.invoke:
                self._start_task(path, task)

    async def _call_exit_hook(self, hook: str) -> None:
        """Run an exit hook of an ending connection: its failure is logged, the teardown goes on."""
        try:
            await self._call(hook)
        except Exception as exc:
            logger.error("%r: exit hook %s() failed: %s: %s", self, hook, type(exc).__name__, exc, exc_info=exc)

    async def _teardown(self, ending: Ending) -> None:
        """Forget pending moves, deferred events and timers, then leave every entered state."""
        self._moves.clear()  # what a failed handler left half done is not finished now
        self._deferred = None
        self._deferred_bytes = 0
        self._report_deferred_drops()
        self._timers = None
        self._settling = False
        await super()._teardown(ending)

    # -- events ---------------------------------------------------------------------------

    async def _event(self, kind: EventKind, event: str, payload: Any) -> None:
        state = self.state
        spec = self.machine
        candidates = spec.dispatch.get((state, kind, event))
        if candidates is not None:
            for transition in candidates:
                value = payload
                if transition.message_class is not None:
                    value = self._structure(transition, payload)
                if transition.guard is None or transition.guard(self, value):
                    await self._fire(transition, value)
                    return
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
                    return
            if kind == "done":
                logger.debug("%r ignored the result of task %r", self, event)
                return
            if kind == "error":
                raise payload.error
            reason = "no transition of this state accepts it"
            if self._observed:
                self._observe(kind, event, state, state, accepted=False)
        error = UnhandledEvent(type(self).__qualname__, kind, event, state, reason)
        self._apply_unhandled(error, self.unhandled_client if kind == "client" else None)

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

    async def _fire(self, transition: Transition, value: Any) -> None:
        source = self.state
        idle = self.machine.idle_timeout
        if idle is not None and transition.kind != "idle":  # every handled event resets it
            self._arm(_IDLE, idle, "idle", _IDLE)
        await self._call(transition.handler, value)
        target = self.state
        if transition.target is not None and self.state == source:
            target = self.machine.resolve(transition.target)
            self.state = target
            self._moves.append((source, target, transition.target))
            await self._settle()
        if self._observed:
            self._observe(transition.kind, transition.event, source, target, accepted=True, handler=transition.handler)

    # -- layer messages -------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:  # type: ignore[override]
        """Deliver a layer message to the state machine as a ``message`` event."""
        kind = message.get("type")
        await self._event("message", kind if isinstance(kind, str) else repr(kind), message)

    # -- timers -----------------------------------------------------------------------------

    def start_timer(self, name: str, seconds: float) -> None:
        """(Re)start the named timer; its ``@on.timer(name)`` handler runs after *seconds*."""
        if name not in self.machine.timer_names:
            known = ", ".join(sorted(self.machine.timer_names)) or "none"
            msg = f"start_timer({name!r}): no @on.timer({name!r}) handler is declared (timers: {known})"
            raise ValueError(msg)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            msg = f"start_timer({name!r}, {seconds!r}): seconds must be a number >= 0"
            raise ValueError(msg)
        self._arm(f"timer:{name}", seconds, "timer", name)

    def cancel_timer(self, name: str) -> None:
        """Cancel the named timer; nothing happens if it is not running."""
        self._disarm(f"timer:{name}")

    def _arm(self, key: str, seconds: float, kind: EventKind, event: str) -> None:
        if get_ident() != self._loop_thread:  # start_timer() from a sync handler, in a worker thread
            anyio.from_thread.run_sync(self._arm, key, seconds, kind, event)
            return
        if self._timers is None:
            self._timers = {}
        self._generation += 1
        deadline = anyio.current_time() + seconds
        self._timers[key] = [deadline, self._generation, kind, event, seconds]
        if deadline < self._due and _IN_INVOKED_TASK.get():
            # the loop may be waiting for a later deadline: post a wake-up (None: serve the timers)
            self._due = deadline
            self._tasks.start_soon(self._mailbox.put, (INTERNAL, None))

    def _disarm(self, key: str) -> None:
        if self._timers:
            self._timers.pop(key, None)

    def _next_deadline(self) -> float:
        timers = self._timers
        due: float = min((entry[0] for entry in timers.values()), default=math.inf) if timers else math.inf
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
        due = sorted((entry[0], key) for key, entry in timers.items() if entry[0] <= now)
        for _, key in due:
            entry = timers.get(key)
            if entry is None or entry[0] > now:
                continue  # a handler before it disarmed or re-armed it
            del timers[key]
            _, _, kind, event, seconds = entry
            name = event.rsplit(".", 1)[-1] if kind == "timeout" else event
            await self._event(kind, event, Timeout(name, seconds))
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
        key = f"task:{state}:{task}"
        if self._timers is None:
            self._timers = {}
        self._timers[key] = [math.inf, self._generation, "done", task, 0.0]
        self._tasks.start_soon(self._run_task, key, self._generation, task, scope)

    async def _run_task(self, key: str, generation: int, task: str, scope: anyio.CancelScope) -> None:
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
        entry = (self._timers or {}).get(fired.key)
        if entry is None or entry[1] != fired.generation:
            return False  # its state was left, or it was re-armed: stale
        del self._timers[fired.key]  # type: ignore[union-attr]
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
            await self._event("client", "receive", Frame(text, data))
            return self.state == CLOSED
        return await super()._on_client_event(message)


@library_class
class JsonStateActor(_MachineActor, JsonWebsocketActor):
    """A state actor that speaks JSON: client event types come from the ``"type"`` key.

    A client message that is not a JSON object with a str ``"type"`` closes the
    connection with 1007, as malformed JSON does.
    """

    async def receive_json(self, content: Any) -> None:
        """Feed ``{"type": ..., ...}`` to the machine as a client event."""
        kind = content.get("type") if isinstance(content, dict) else None
        if not isinstance(kind, str) or not kind:
            msg = f"expected a JSON object with a str 'type' naming the event, got {str(content)[:60]}"
            raise MalformedMessage(msg, close_code=1007)
        await self._event("client", kind, content)
