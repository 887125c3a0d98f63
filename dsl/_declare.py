"""The declaration vocabulary: :class:`State` attributes and ``@on...`` decorators.

A state machine is declared in the actor's class body::

    class Chat(JsonStateActor):
        authenticating = State(initial=True, timeout=10, defer=["chat.message"])
        lobby = State()
        in_room = State(terminal=True)

        @on.client("login", source=authenticating, target=lobby, guard="token_ok")
        async def login(self, event: dict[str, Any]) -> None: ...

        @on.timeout(authenticating)
        async def too_slow(self, event: Timeout) -> None:
            await self.close(4001, "log in within 10 s")

Nothing here runs anything: decorators only attach :class:`HandlerDecl` records to
the functions, and ``interlock.dsl._compile`` turns a class into a checked
:class:`~interlock.dsl.MachineSpec` when the class is created.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple, TypeVar

import attrs

__all__ = [
    "Crossing",
    "EventKind",
    "Frame",
    "HandlerDecl",
    "History",
    "State",
    "StateRef",
    "TaskFailed",
    "Timeout",
    "on",
]

F = TypeVar("F", bound=Callable[..., Any])

EventKind = Literal["client", "message", "timeout", "after", "idle", "timer", "done", "error", "always"]
"""Where an event comes from: the client, the channel layer, a clock, an invoked task, or
nowhere (``always``: an eventless choice, taken as soon as its guard holds)."""

HANDLERS_ATTR: Final = "__interlock_handlers__"
HOOKS_ATTR: Final = "__interlock_hooks__"

_order = itertools.count()


class State:
    """A user state, nested under the built-in ``open`` state (or under another State).

    :param initial: entered when the parent is entered (default: the first declared child).
    :param parent: the enclosing user state; by default ``open``.
    :param tags: labels for :meth:`~interlock.actors.StateActor.has_tag` and diagrams.
    :param timeout: seconds after entry at which an ``@on.timeout(state)`` event fires,
        unless the state was left first.
    :param defer: event types postponed while in this state and replayed, in order,
        after the next state change.
    :param invoke: names of ``async def`` methods started on entry and cancelled on
        exit; each one's result arrives as an ``@on.done(name)`` event, its exception
        as ``@on.error(name)``.
    :param terminal: the actor may stay here until the connection ends (no way out is
        then not an error).
    :param region: the name of a parallel region of ``open`` this state belongs to (for
        the region's top states; nested ones inherit their parent's). While the
        connection is open the actor is in one state of the main hierarchy *and* in one
        state of each region (``self.regions``); every event is offered to the main
        state, then to each region's, and each takes it if it has a transition for it.
    :param after: named delays, ``{"move": 30}``: each fires an ``@on.after("move")``
        event that many seconds after entry, unless the state was left first. Every
        delay (and ``timeout``) can be changed per class (``delays = {...}``) or per
        instance (``as_asgi(delays={...})``).

    A subclass may declare a state of the same name again to change it (``a =
    Base.a.replace(timeout=1)``): the parent's transitions then apply to the new one.
    Target ``state.history`` (or ``state.deep_history``) to re-enter a state where it
    was last left.
    """

    __slots__ = ("after", "defer", "initial", "invoke", "name", "parent", "region", "tags", "terminal", "timeout")

    def __init__(
        self,
        *,
        initial: bool = False,
        parent: StateRef | None = None,
        tags: Iterable[str] = (),
        timeout: float | None = None,
        defer: Iterable[str] = (),
        invoke: Iterable[str] = (),
        terminal: bool = False,
        after: Mapping[str, float] | None = None,
        region: str | None = None,
    ) -> None:
        if timeout is not None and not _is_seconds(timeout):
            msg = f"State(timeout={timeout!r}): a timeout is a positive number of seconds"
            raise ValueError(msg)
        delays = dict(after or {})
        for name, seconds in delays.items():
            if not isinstance(name, str) or not name.isidentifier():
                msg = f"State(after={{{name!r}: ...}}): a delay's name is an identifier, such as 'move'"
                raise ValueError(msg)
            if not _is_seconds(seconds):
                msg = f"State(after={{{name!r}: {seconds!r}}}): a delay is a positive number of seconds"
                raise ValueError(msg)
        for what, values in (("tags", tags), ("defer", defer), ("invoke", invoke)):
            if isinstance(values, str):
                msg = f"State({what}={values!r}): pass a list of names, not a single str"
                raise TypeError(msg)
        self.initial = initial
        self.parent = parent
        self.tags = frozenset(tags)
        self.timeout = timeout
        self.defer = tuple(defer)
        self.invoke = tuple(invoke)
        self.terminal = terminal
        if region is not None and (not isinstance(region, str) or not region.isidentifier()):
            msg = f"State(region={region!r}): a region's name is an identifier, such as 'audio'"
            raise ValueError(msg)
        self.after = delays
        self.region = region
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<State {self.name or '?'}>"

    def replace(self, **changes: Any) -> State:
        """A copy of this declaration with *changes* (``timeout=``, ``after=``, ``tags=`` …).

        For subclasses that change a state of their base: ``a = Base.a.replace(timeout=1)``.
        """
        fields: dict[str, Any] = {
            "initial": self.initial,
            "parent": self.parent,
            "tags": self.tags,
            "timeout": self.timeout,
            "defer": self.defer,
            "invoke": self.invoke,
            "terminal": self.terminal,
            "after": self.after,
            "region": self.region,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            msg = f"State.replace(): unknown field(s) {', '.join(sorted(unknown))}; the fields are {', '.join(fields)}"
            raise TypeError(msg)
        fields.update(changes)
        return State(**fields)

    @property
    def history(self) -> History:
        """A target that re-enters this state's child that was active when it was last left."""
        return History(self, deep=False)

    @property
    def deep_history(self) -> History:
        """A target that re-enters the exact state below this one that was last active."""
        return History(self, deep=True)

    def enter(self, fn: F) -> F:
        """Decorate a method to run each time this state is entered."""
        _hooks(fn).append(("enter", self))
        return fn

    def exit(self, fn: F) -> F:
        """Decorate a method to run each time this state is left."""
        _hooks(fn).append(("exit", self))
        return fn


StateRef = State | str
"""A state, as the object declared in the class body or by its (dotted) name."""


@attrs.frozen
class History:
    """A history target: ``state.history`` (shallow) or ``state.deep_history``.

    Moving to it enters *state* again where the actor last left it: a shallow history
    restores the child that was active (and that child's initial states below it), a
    deep history the exact state. Before *state* was ever left, it is entered as usual
    (its initial states).
    """

    state: StateRef
    deep: bool = False


Target = StateRef | History


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _hooks(fn: Callable[..., Any]) -> list[tuple[str, State]]:
    hooks: list[tuple[str, State]] | None = getattr(fn, HOOKS_ATTR, None)
    if hooks is None:
        hooks = []
        setattr(fn, HOOKS_ATTR, hooks)
    return hooks


Guard = Callable[[Any, Any], bool] | str


@attrs.frozen
class HandlerDecl:
    """One ``@on...`` decoration: which event, from which states, to which state, if."""

    kind: EventKind
    event: str
    message_class: type | None
    sources: tuple[StateRef, ...]
    target: Target | None
    guard: Guard | None
    order: int


def _decorate(
    kind: EventKind,
    event: str | type | None,
    source: StateRef | Iterable[StateRef] | None,
    target: Target | None,
    guard: Guard | None,
) -> Callable[[F], F]:
    message_class: type | None = None
    if isinstance(event, type):
        message_class = event
        declared = getattr(event, "type", None)
        if not isinstance(declared, str) or not declared:
            msg = (
                f"{event.__qualname__} cannot be an event: give it a class attribute "
                '`type: ClassVar[str] = "..."` naming its message type'
            )
            raise TypeError(msg)
        if not attrs.has(event):
            msg = f"{event.__qualname__} cannot be an event: it must be an attrs class"
            raise TypeError(msg)
        event = declared
    if event is None and kind in ("timeout", "always"):  # named after its state, once compiled
        event = ""
    elif not isinstance(event, str) or not event:
        msg = f"an event type must be a non-empty str or an attrs class, not {event!r}"
        raise TypeError(msg)
    if source is None:
        sources: tuple[StateRef, ...] = ("open",)
    elif isinstance(source, (State, str)):
        sources = (source,)
    else:
        sources = tuple(source)
    if guard is not None and not (callable(guard) or isinstance(guard, str)):
        msg = f"guard must be a predicate (self, event) -> bool or a method name, not {guard!r}"
        raise TypeError(msg)
    decl = HandlerDecl(kind, event, message_class, sources, target, guard, next(_order))

    def decorator(fn: F) -> F:
        declared: list[HandlerDecl] | None = getattr(fn, HANDLERS_ATTR, None)
        if declared is None:
            declared = []
            setattr(fn, HANDLERS_ATTR, declared)
        declared.append(decl)
        return fn

    return decorator


class on:  # noqa: N801 - reads as a preposition: @on.client("join")
    """Decorators binding events to handler methods.

    Every decorator takes ``source`` (a state or states the handler applies in,
    including their nested states; default ``open``: everywhere while connected),
    ``target`` (the state to move to after the handler; none for an internal
    transition that leaves the state as it is) and ``guard`` (a synchronous predicate
    ``(self, event) -> bool``, or a method name; handlers for one event are tried in
    declaration order, the first whose guard passes runs).
    """

    @staticmethod
    def client(
        event: str | type,
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle a client message: JSON ``{"type": event, ...}`` (``"receive"`` for raw frames)."""
        return _decorate("client", event, source, target, guard)

    @staticmethod
    def message(
        event: str | type,
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle a channel-layer message of type *event* (or an attrs message class)."""
        return _decorate("message", event, source, target, guard)

    @staticmethod
    def timeout(state: StateRef, *, target: Target | None = None, guard: Guard | None = None) -> Callable[[F], F]:
        """Handle *state*'s timeout (declared with ``State(timeout=...)``)."""
        return _decorate("timeout", None, state, target, guard)

    @staticmethod
    def after(
        name: str,
        *,
        source: StateRef | Iterable[StateRef],
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle the named delay *name* of the *source* state(s) (``State(after={name: s})``).

        The event is a :class:`Timeout`; the delay is armed on entry and cancelled when
        the state is left.
        """
        if not isinstance(name, str) or not name.isidentifier():
            msg = f"@on.after({name!r}): name a delay declared with State(after={{name: seconds}})"
            raise TypeError(msg)
        return _decorate("after", name, source, target, guard)

    @staticmethod
    def always(
        *,
        source: StateRef | Iterable[StateRef],
        target: Target,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """An eventless choice: taken as soon as the actor is in *source* and *guard* holds.

        Checked when *source* is entered and after every event handled while in it; the
        handler runs with the event ``None``, then the actor moves to *target*.
        """
        if target is None:
            msg = "@on.always() needs a target: an eventless choice that stays put would be taken forever"
            raise TypeError(msg)
        return _decorate("always", None, source, target, guard)

    @staticmethod
    def idle(
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle the idle timeout (class attribute ``idle_timeout``), reset by every event."""
        return _decorate("idle", "idle", source, target, guard)

    @staticmethod
    def timer(
        name: str,
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle the named timer *name*, started with ``self.start_timer(name, seconds)``."""
        return _decorate("timer", name, source, target, guard)

    @staticmethod
    def done(
        task: str,
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle the result of the invoked task *task* (the event is its return value)."""
        return _decorate("done", task, source, target, guard)

    @staticmethod
    def error(
        task: str,
        *,
        source: StateRef | Iterable[StateRef] | None = None,
        target: Target | None = None,
        guard: Guard | None = None,
    ) -> Callable[[F], F]:
        """Handle the failure of the invoked task *task* (the event is a :class:`TaskFailed`)."""
        return _decorate("error", task, source, target, guard)


class Frame(NamedTuple):
    """A raw client frame, the event of ``@on.client("receive")`` in a ``StateActor``."""

    text: str | None = None
    bytes: builtins.bytes | None = None


@attrs.frozen
class Timeout:
    """The event of a state timeout, the idle timeout or a named timer."""

    name: str
    seconds: float


@attrs.frozen
class TaskFailed:
    """The event of ``@on.error(task)``: the exception an invoked task raised."""

    task: str
    error: BaseException


@attrs.frozen
class Crossing:
    """What an enter or exit hook may take as its one argument: the move it is part of.

    Declare the hook ``def hook(self, crossing: Crossing)`` to receive it (a hook without
    a parameter is called without). During an exit hook ``self.state`` already names the
    target; ``teardown`` tells a connection's end from a transition.
    """

    kind: str
    """The event's kind (``client``, ``message``, ``timeout`` …, ``lifecycle`` for accept/close)."""
    event: str
    """The event's type (the trigger's name for lifecycle moves)."""
    payload: Any
    """The event as the handler saw it (``None`` for lifecycle moves)."""
    source: str
    """The state the actor was in when the event came."""
    target: str
    """The state the move goes to (a built-in state when the connection ends)."""
    teardown: bool = False
    """True when the connection is ending: every state is being exited."""
