"""The actor runtime: one instance per scope, one event at a time, one mailbox.

Theory of operation
-------------------
``Actor.as_asgi()`` returns an ASGI app; each call builds one actor and runs it.

* **Mailbox.** Without a channel layer (or timers) the actor awaits the server's
  ``receive()`` directly. With a layer it gets a ``channel_name`` and one
  :class:`~interlock.actors._mailbox.Mailbox` takes everything: a pump feeds it the
  client's events (on asyncio no task, :mod:`._pump`; on trio a task,
  :mod:`._taskset`), a ``WatchableLayer`` posts a token per channel message (another
  layer gets a pump task too), background tasks post their results and failures;
  timers are served by the loop itself, waiting on the mailbox with a deadline. The
  actor handles what the mailbox yields, in order, start to finish.
* **Handlers** may be ``def`` (run in a worker thread) or ``async def``. Operations
  that talk to the client (``send``, ``accept``, ``close`` …) are recorded in an
  outbox and return an awaitable that flushes it: ``await self.send(...)`` in async
  code sends at once; in a sync handler the call flushes before it returns; anything
  left is flushed when the handler returns. Order is always preserved.
* **Layer messages** reach only declared handlers: ``type`` ``"chat.message"`` calls
  ``chat_message``, which must be a public method defined by the user's class, not
  one of interlock's own methods (so ``{"type": "close"}`` never closes anything).
* **Failure.** A handler exception is logged with the actor's identity, the
  connection is closed (1011 for WebSockets) and the actor stops.
* **Teardown, once.** However the actor ends — the client closes or vanishes, a send
  finds it gone (:class:`~interlock.actors.ClientGone`), a handler raises, the task is
  cancelled because the server shuts down — :meth:`BaseActor._end` runs exactly once:
  ``self.ending`` says why, connection actors run their exit hooks and
  ``disconnect(code)``, groups are left, and the channel is closed.  It runs shielded
  from cancellation and bounded by ``teardown_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from threading import get_ident
from time import monotonic as _monotonic
from typing import Any, ClassVar, Final, Literal, TypeVar, cast

import anyio
from interlock.layers import DropCountingLayer, GroupLayer, LayerUnavailable, WatchableLayer
from interlock.layers import Message as LayerMessage

from . import _ask, _conversations
from ._ending import SHUTDOWN_CODES, Ending
from ._errors import ClientGone, ClientTooSlow, NoChannelLayer, StopActor, UnknownMessageType
from ._inspect_registry import LIVE, TAP
from ._lifespan import refuse_scope, serve_lifespan
from ._mailbox import CLIENT, DROPPED, FAILED, INTERNAL, LAYER, Mailbox
from ._pump import ClientPump, steps_without_task
from ._sync import run_in_worker
from ._taskset import TaskSet, running_asyncio_loop
from ._types import LAYER_KEY, Message, Receive, Scope, Send
from ._watch import Watches

__all__ = ["ActorApp", "BaseActor", "Flush", "UnhandledPolicy", "handler", "inline", "library_class"]

logger = logging.getLogger("interlock.actors")

UnhandledPolicy = Literal["raise", "log", "ignore", "close"]

_WATCH_TOKEN: Final = (LAYER, None)  # a message waits in the watched channel


_TRIO_STREAM_ERRORS: Final = frozenset({"BrokenResourceError", "ClosedResourceError", "BusyResourceError"})


def sending_found_client_gone(exc: BaseException) -> bool:
    """Whether the server's ``send()`` raising *exc* means the client's connection is gone (or going).

    An ``OSError``; anyio's broken or closed stream; trio's, or its ``BusyResourceError``,
    which Hypercorn lets through when a send meets its own close of a connection that is
    ending (its ``send_eof()`` holds the socket): the connection ends, the actor is not at fault.
    """
    if isinstance(exc, (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)):
        return True
    kind = type(exc)
    return kind.__name__ in _TRIO_STREAM_ERRORS and kind.__module__.partition(".")[0] == "trio"


_IDENTS: dict[int, int] = {}


def _thread_ident() -> int:
    """The running thread's ident, one int object per thread (each call makes a new 32-byte int)."""
    ident = get_ident()
    return _IDENTS.setdefault(ident, ident)


_LAYER_KINDS: dict[type, tuple[bool, bool]] = {}


def _layer_kinds(layer: object) -> tuple[bool, bool]:
    """Whether *layer* is a :class:`WatchableLayer`, and a :class:`DropCountingLayer`.

    Asked once per layer class: a runtime-checkable protocol's ``isinstance`` walks the
    protocol's members every time (about 10 µs for the two, on every connection). A class
    that answers attributes dynamically (``__getattr__``, a proxy) is asked every time.
    """
    kind = type(layer)
    known = _LAYER_KINDS.get(kind)
    if known is None:
        known = (isinstance(layer, WatchableLayer), isinstance(layer, DropCountingLayer))
        if getattr(kind, "__getattr__", None) is None:
            _LAYER_KINDS[kind] = known
    return known


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_HANDLED: Final = _Marker("NOT_HANDLED")  # dispatch(): no handler took the message
DEFERRED: Final = _Marker("DEFERRED")  # dispatch(): a state actor deferred it

_LIBRARY_CLASSES: list[type] = []
C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


def library_class(cls: C) -> C:
    """Mark *cls* as interlock's own: its methods are never layer-message handlers."""
    _LIBRARY_CLASSES.append(cls)
    return cls


_THREAD, _ASYNC, _INLINE = 0, 1, 2
ASYNC: Final = _ASYNC  # a handler's mode in ``_asyncness`` once called: hot paths call such handlers directly
INLINE_ATTR: Final = "__interlock_inline__"
HANDLER_ATTR: Final = "__interlock_handler__"


def handler(fn: F) -> F:
    """Mark a method as a layer-message handler: type ``"chat.message"`` calls ``chat_message``.

    On interlock's own actor classes only marked methods receive layer messages, so a
    message's ``type`` can never reach a helper such as ``is_admin``. (Channels'
    names in :mod:`interlock.actors.compat` keep Channels' rule: every public method the
    consumer defines.) ``def`` and ``async def`` alike.
    """
    if not inspect.isfunction(fn):
        msg = f"@handler decorates a method defined with def or async def, not {fn!r}"
        raise TypeError(msg)
    setattr(fn, HANDLER_ATTR, True)
    return fn


def inline(fn: F) -> F:
    """Mark a library ``def`` hook as non-blocking: it runs on the loop, not in a thread.

    Hooks that users override with either ``def`` or ``async def`` are typed as
    returning ``Awaitable[None] | None``; the library's own defaults are plain ``def``
    that must not pay for a worker thread.
    """
    setattr(fn, INLINE_ATTR, True)
    return fn


def _call_mode(method: Callable[..., Any]) -> int:
    if inspect.iscoroutinefunction(method):
        return _ASYNC
    if getattr(method, INLINE_ATTR, False):
        return _INLINE
    return _THREAD


_STUCK_SEND: Final = 2.0  # seconds one send may wait, once the channel overflowed, before the client is given up
_SLOW_DETACH: Final = 1.0  # seconds an abandoned send may take to return before the channel is closed anyway
_GONE_GRACE: Final = 0.1  # seconds a failed send waits for the server's word on how the client left
_DROP_LOG_INTERVAL: Final = 60.0  # seconds between WARNING lines for one class and event
_OUTAGE_LOG_INTERVAL: Final = 10.0  # seconds between WARNING lines about actors failed by an unreachable layer
_outage = {"logged": -math.inf, "since": 0}  # when the last such line was logged, failures since


def _log_outage(what: str, exc: LayerUnavailable) -> None:
    """One outage fails every connection (and its teardown): one WARNING line, no traceback, every so often."""
    now = _monotonic()
    if now - _outage["logged"] < _OUTAGE_LOG_INTERVAL:
        _outage["since"] += 1
        return
    logger.warning(
        "%s: the channel layer is unavailable: %s (%d more such failures since the previous line; "
        "they are logged at most every %.0f s, without a traceback)",
        what,
        exc,
        _outage["since"],
        _OUTAGE_LOG_INTERVAL,
    )
    _outage["logged"], _outage["since"] = now, 0


_drops: dict[tuple[type, str], list[float]] = {}  # (class, event) -> [last logged, dropped since]


def _log_dropped(actor: BaseActor, error: Exception) -> None:
    """Log an unhandled event: once a minute per class and event, with how many went unlogged.

    One bad message sent to a group reaches every member: a line per member would flood
    the log, so the members of a class share one line, and the next one counts the rest.
    """
    key = (type(actor), str(getattr(error, "message_type", getattr(error, "event", ""))))
    now = time.monotonic()
    entry = _drops.get(key)
    if entry is not None and now - entry[0] < _DROP_LOG_INTERVAL:
        entry[1] += 1
        logger.debug("%r dropped an event: %s", actor, error)
        return
    unlogged = entry[1] if entry is not None else 0
    _drops[key] = [now, 0]
    more = f" ({unlogged} more like it dropped since the last line)" if unlogged else ""
    logger.warning("%r dropped an event: %s%s", actor, error, more)


def _is_cancellation(exc: BaseException) -> bool:
    """Whether *exc* is the event loop's cancellation (on trio, maybe a nursery's group of them)."""
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)[1] is None
    return isinstance(exc, cancelled)


class Flush:
    """What client-facing operations return: awaiting it sends everything recorded so far.

    Not awaiting it is not an error: the runtime flushes after the handler returns.
    """

    __slots__ = ("_actor",)

    def __init__(self, actor: BaseActor | None) -> None:
        self._actor = actor

    def __await__(self) -> Generator[Any, None, None]:
        actor = self._actor
        if actor is None:
            return iter(_NOTHING)  # type: ignore[return-value]  # an empty iterator: awaited, it returns None
        outbox = actor._outbox
        if actor._asgi_send is not None:
            if len(outbox) == 1:  # the usual case: no extra frame
                return actor._deliver(outbox.pop()).__await__()
            if not outbox:  # flushed already (by the handler's own return, a later await): no coroutine
                return iter(_NOTHING)  # type: ignore[return-value]
        return actor._flush().__await__()  # several messages, or not running (which raises)


_NOTHING: Final[tuple[()]] = ()
_CONVERSATION, _ASK_ID, _REPLY_TO = _ask.CONVERSATION, _ask.ASK_ID, _ask.REPLY_TO  # read for every layer message
NO_DEADLINE: Final = math.inf  # what _next_deadline() returns without a timer (one global load, not two)

_FLUSHED = Flush(None)
_new_flush = object.__new__
FLUSHED: Final = _FLUSHED  # for the modules that build Flush objects on a hot path (WebsocketActor.send)
new_flush: Final = _new_flush


class ActorApp:
    """The ASGI application for one actor class: builds an actor per scope and runs it."""

    __slots__ = ("actor_class", "initkwargs")

    def __init__(self, actor_class: type[BaseActor], initkwargs: dict[str, Any]) -> None:
        self.actor_class = actor_class
        self.initkwargs = initkwargs

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.initkwargs.items())
        return f"{self.actor_class.__qualname__}.as_asgi({args})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scope with a new actor; answer lifespan events for a bare actor app."""
        kind = scope["type"]
        actor_class = self.actor_class
        if kind == "lifespan" and not actor_class._serves_lifespan:
            await serve_lifespan(receive, send, self.initkwargs.get("channel_layer"))
            return
        accepted = actor_class.scope_types
        if accepted is not None and kind not in accepted:
            await refuse_scope(actor_class.__qualname__, accepted, scope, receive, send)
            return
        await actor_class(**self.initkwargs)._run(scope, receive, send)


@library_class
class BaseActor:
    """What every actor shares: scope, channel layer, mailbox, dispatch, cleanup.

    Subclass :class:`~interlock.actors.WebsocketActor` or
    :class:`~interlock.actors.Actor` rather than this class.
    """

    groups: ClassVar[Sequence[str]] = ()
    """Groups the actor joins when its connection starts and leaves when it ends."""

    unhandled: ClassVar[UnhandledPolicy] = "log"
    """What a layer message no handler takes does: ``"log"`` (the default: drop it with a
    WARNING line, at most one a minute per class and type, with a count), ``"ignore"``
    (drop it silently), ``"close"`` (close the connection with ``unhandled_close_code``)
    or ``"raise"`` (fail the actor). The sender's mistake, so by default it never fails
    the receivers."""

    implicit_handlers: ClassVar[bool] = False
    """Whether every public method the class defines is a layer-message handler, as in
    Channels (True for the names in :mod:`interlock.actors.compat`); otherwise only
    methods marked with :func:`handler` are."""

    unhandled_close_code: ClassVar[int] = 1008
    """The close code of the ``"close"`` policy (1008: policy violation)."""

    mailbox_size: ClassVar[int] = 64
    """Events the mailbox holds before the client and the channel are made to wait."""

    send_timeout: ClassVar[float | None] = None
    """Seconds one send may wait for the client to take it (None, the default: as long as
    the server lets it). Past them the send raises :class:`ClientTooSlow` and, left
    uncaught, the connection is given up as the client's fault. Without it, a client
    that stops reading is still given up once the actor's channel overflows while the
    actor waits on it (see *Slow clients* in the docs)."""

    teardown_timeout: ClassVar[float] = 5.0
    """Seconds the teardown (exit hooks, ``disconnect()``, leaving groups, closing the
    channel) may take once the actor is cancelled or its connection ended; past them the
    rest is abandoned."""

    scope_types: ClassVar[frozenset[str] | None] = None
    """The ASGI scope types the actor serves (None: any). Others are refused by ``as_asgi()``."""

    ending: Ending | None = None
    """Why the connection ended: None while it is live, set once before exit hooks run."""

    scope: Scope
    """The connection scope, with ``url_route`` once a router matched it."""

    _needs_mailbox: ClassVar[bool] = False
    _serves_lifespan: ClassVar[bool] = False  # the class handles lifespan events itself
    _ended: bool = False
    _channel_layer: GroupLayer | None = None
    _channel_name: str | None = None
    _receive: Receive | None = None  # the server's receive(), in direct mode
    _moves: list[tuple[str, str, str | None]] | tuple[()] = ()
    _sending: float = 0.0  # since when (time.monotonic()) the actor waits for the server to take a send
    # What giving up a slow client cancels while the mailbox loop runs: on trio the nursery
    # around it (TaskSet.cancel()), on asyncio the actor's own task (no scope: 600 bytes a
    # connection less).
    _loop_scope: TaskSet | asyncio.Task[Any] | None = None
    _loop_left: anyio.Event | None = None  # set when the loop has left, for a give-up's watcher (trio)
    _cut: bool = False  # asyncio: the client was given up, the loop stops after the item it handles
    _cut_task: bool = False  # asyncio: ... and the actor's task was cancelled for it (to uncancel)
    _unstoppable: bool = False  # asyncio: a send under way must not be cut (a failure's close, a sync handler)
    _too_slow: ClientTooSlow | None = None  # why the client was given up, once it was
    _closed_channel: bool = False
    _drops_pending: int = 0  # dropped for this channel since the actor last heard of it
    _watches: Watches | None = None  # the channels this actor watches (watch())
    _answering: LayerMessage | None = None  # the ask whose handler runs now (reply())
    _floors: dict[str, int] | None = None  # group -> last offset a recovery handed over (._conversations)
    _watching_send: bool = False  # a watcher checks whether the send under way is stuck
    _raised: deque[LayerMessage] | None = None  # events a state actor raised (raise_event()), handled next
    _mailbox: Mailbox[tuple[int, Any]]
    _task_set: TaskSet | None = None  # see _tasks
    _handlers: ClassVar[frozenset[str]] = frozenset()  # what layer messages may call
    _handler_names: ClassVar[dict[str, str]] = {}  # message type -> the handler it found (dispatch's cache)
    _methods: ClassVar[frozenset[str]] = frozenset()  # every public method the user's classes define
    _reserved: ClassVar[frozenset[str]] = frozenset()
    _asyncness: ClassVar[dict[str, int]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._asyncness = {}
        cls._reserved = frozenset(name for base in _LIBRARY_CLASSES if issubclass(cls, base) for name in dir(base))
        methods, marked = set(), set()
        for klass in cls.__mro__:
            if klass in _LIBRARY_CLASSES or klass is object:
                continue
            for name, value in vars(klass).items():
                is_marked = getattr(value, HANDLER_ATTR, False)
                if is_marked and (name.startswith("_") or name in cls._reserved):
                    kind = "private" if name.startswith("_") else "one of interlock's own methods"
                    msg = f"{cls.__qualname__}.{name} is marked @handler but is {kind}: rename it"
                    raise TypeError(msg)
                if name.startswith("_") or name in cls._reserved or not inspect.isfunction(value):
                    continue
                methods.add(name)
                if is_marked:
                    marked.add(name)
        cls._methods = frozenset(methods)
        cls._handlers = frozenset(methods if cls.implicit_handlers else marked)
        cls._handler_names = {}
        cls._serves_lifespan = cls.scope_types is None and "lifespan_startup" in methods
        if not isinstance(cls.groups, (list, tuple)):
            msg = f"{cls.__qualname__}.groups must be a list or tuple of group names, not {type(cls.groups).__name__}"
            raise TypeError(msg)

    def __init__(self, **initkwargs: Any) -> None:
        # Every attribute a running actor sets, set here first and always in this order:
        # CPython lets instances whose keys arrive in one order share one key table, and an
        # actor that added its keys after an await, in whatever order the connections
        # interleaved, had a dict of its own (about 300 bytes a connection more).
        self._channel_layer = self._channel_layer
        self._outbox: list[Message] = []  # 56 bytes empty, a deque 600: most actors hold one
        self._asgi_send: Send | None = None
        self._loop_thread = _thread_ident()
        self._joined: tuple[str, ...] = ()  # the groups joined (a tuple: most actors join one or none)
        self.scope = None  # type: ignore[assignment]  # the connection's, once it runs
        self._channel_name = None
        self._mailbox = None  # type: ignore[assignment]  # in mailbox mode, once it runs
        self._loop_scope = None
        self._sending = 0.0
        for key, value in initkwargs.items():
            setattr(self, key, value)

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ActorApp:
        """Return an ASGI app that serves each scope with a new ``cls(**initkwargs)``.

        Keyword arguments override class attributes per instance, e.g.
        ``ChatActor.as_asgi(channel_layer=layer)``; unknown names are refused here,
        not at the first connection.
        """
        for key in initkwargs:
            if key.startswith("_") or not hasattr(cls, key):
                msg = (
                    f"{cls.__qualname__}.as_asgi() got an unexpected keyword argument {key!r}: "
                    "keywords set existing public class attributes"
                )
                raise TypeError(msg)
        groups = initkwargs.get("groups", cls.groups)
        if isinstance(groups, str) or not isinstance(groups, (list, tuple)):
            msg = (
                f"{cls.__qualname__}.as_asgi(groups=...) takes a list or tuple of group names, "
                f"not {type(groups).__name__} ({groups!r})"
            )
            raise TypeError(msg)
        return ActorApp(cls, dict(initkwargs))

    # -- the layer ------------------------------------------------------------------------

    @property
    def channel_layer(self) -> GroupLayer:
        """The layer this actor talks through (set by the router, or ``as_asgi(channel_layer=…)``).

        Reading it on an actor that runs without a layer raises
        :class:`~interlock.actors.NoChannelLayer` (an ``AttributeError``, so
        ``getattr(self, "channel_layer", None)`` tells).
        """
        layer = self._channel_layer
        if layer is None:
            raise NoChannelLayer(type(self).__qualname__, "channel_layer")
        return layer

    @channel_layer.setter
    def channel_layer(self, layer: GroupLayer | None) -> None:
        self._channel_layer = layer

    @property
    def channel_name(self) -> str:
        """This actor's own channel, its mailbox address, while it runs with a layer.

        Without a layer it raises :class:`~interlock.actors.NoChannelLayer`.
        """
        channel = self._channel_name
        if channel is None:
            raise NoChannelLayer(type(self).__qualname__, "channel_name")
        return channel

    def watch(self, channel: str) -> None:
        """Be told when *channel* is gone: closed, unknown, or its process's lease ended.

        The actor then gets the layer message ``{"type": "peer.gone", "channel": ...,
        "reason": "closed" | "unknown" | "lease"}`` in its mailbox (handle it with
        ``@on.message("peer.gone")`` or a ``@handler`` named ``peer_gone``), once per
        watch. Watching twice is one watch; the watches end with the actor. Raises
        :class:`TypeError` if the layer cannot tell (see ``PeerWatchingLayer``).
        """
        if self._watches is None:
            self._watches = Watches(self)
        self._watches.add(channel)

    def unwatch(self, channel: str) -> None:
        """Stop watching *channel* (nothing happens if it is not watched)."""
        if self._watches is not None:
            self._watches.discard(channel)

    def _post_peer_gone(self, message: Message) -> None:
        mailbox = getattr(self, "_mailbox", None)
        if not self._ended and mailbox is not None:
            mailbox.put_nowait((LAYER, message))

    # -- identity ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        scope = getattr(self, "scope", None) or {}
        parts = [type(self).__qualname__]
        if self._channel_name:
            parts.append(f"channel={self._channel_name}")
        if "path" in scope:
            parts.append(f"path={scope['path']}")
        client = scope.get("client")
        if client:
            parts.append(f"client={client[0]}:{client[1]}")
        state = getattr(self, "state", None)
        if state:
            parts.append(f"state={state}")
        return f"<{' '.join(parts)}>"

    # -- outbox ------------------------------------------------------------------------------

    def _emit(self, message: Message) -> Flush:
        self._outbox.append(message)
        if get_ident() != self._loop_thread:  # a sync handler, in a worker thread
            anyio.from_thread.run(self._flush)
            return _FLUSHED
        flush = _new_flush(Flush)  # Flush(self), without a Python-level __init__ call per send
        flush._actor = self
        return flush

    async def _flush(self) -> None:
        outbox = self._outbox
        if self._asgi_send is None:
            msg = f"{self!r} is not running: nothing to send to"
            raise RuntimeError(msg)
        while outbox:
            await self._deliver(outbox.pop(0))

    async def _deliver(self, message: Message) -> None:
        """Hand one message to the server; its ``OSError`` means the client is gone."""
        if self._channel_name is not None:  # only a layer's drops ask how long a send has waited
            self._sending = _monotonic()
        timeout = self.send_timeout
        waited: anyio.CancelScope | None = None
        try:
            if timeout is None:
                await self._asgi_send(message)  # type: ignore[misc]  # set while running
            else:
                with anyio.move_on_after(timeout) as waited:
                    await self._asgi_send(message)  # type: ignore[misc]
        except Exception as exc:
            if not sending_found_client_gone(exc):
                raise
            self._outbox.clear()
            msg = f"{self!r} could not send {message.get('type')!r}: the client is gone ({exc!r})"
            raise ClientGone(msg) from exc
        finally:
            self._sending = 0.0
        if waited is not None and waited.cancelled_caught:
            self._outbox.clear()
            raise self._give_up(f"a send waited longer than send_timeout ({timeout:g} s)")

    def _give_up(self, reason: str) -> ClientTooSlow:
        """The client does not take what the actor sends: remember why, once."""
        if self._too_slow is None:
            self._too_slow = ClientTooSlow(f"the client stopped reading: {reason}")
        return self._too_slow

    # -- calling handlers ----------------------------------------------------------------

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run the handler *name*, whatever its kind; return what it returned."""
        method: Callable[..., Any] = getattr(self, name)
        mode = self._asyncness.get(name)
        if mode is None:
            mode = self._asyncness[name] = _call_mode(method)
        if mode == _ASYNC:
            result = await method(*args, **kwargs)
        elif mode == _INLINE:
            result = method(*args, **kwargs)
            if result is not None:
                result = await result
        else:
            # The worker's sends run in another task: cancelling this one would let the
            # teardown run beside the handler (see _give_up_if_stuck).
            unstoppable, self._unstoppable = self._unstoppable, True
            try:
                result = await run_in_worker(method, *args, **kwargs)
            finally:
                self._unstoppable = unstoppable
            if inspect.isawaitable(result):
                result = await result
        if self._outbox:
            await self._flush()
        if self._moves:
            await self._settle()
        return result

    async def _settle(self) -> None:
        """Run what recorded state changes imply (state actors: exit and entry work)."""

    def _handler_for(self, message_type: object, handlers: frozenset[str] | None = None) -> str | None:
        """The handler name for a message type, or None (after applying the policy).

        *handlers* are the methods the type may name (by default the layer-message handlers).
        """
        trusted = handlers is not None  # the server's own events: a missing handler is a bug
        if handlers is None:
            handlers = self._handlers
        if type(message_type) is str:
            name = message_type.replace(".", "_")
            if name in handlers and not name.startswith("_"):
                return name
            if name.startswith("_"):
                reason = f"it maps to method {name!r}, and methods starting with '_' are private, never handlers"
            elif name in self._reserved:
                reason = f"{name!r} is one of interlock's own methods, not a handler"
            elif name in self._methods:
                reason = f"{name!r} is not marked as a handler; decorate it with @handler to let layer messages call it"
            else:
                reason = f"define a method named {name!r}, marked @handler, to handle it"
        else:
            reason = "a message's 'type' must be a str"
        error = UnknownMessageType(type(self).__qualname__, message_type, reason)
        self._apply_unhandled(error, "raise" if trusted else None)
        return None

    def _apply_unhandled(self, error: Exception, policy: UnhandledPolicy | None = None) -> None:
        """Follow *policy* (by default the class's ``unhandled``) for an event nothing handles."""
        if policy is None:
            policy = self.unhandled
        if policy == "raise" or (policy == "close" and not self._close_for_unhandled(error)):
            raise error
        if policy == "log":
            _log_dropped(self, error)

    def _close_for_unhandled(self, error: Exception) -> bool:
        """Close the connection for the ``"close"`` policy; False if this actor cannot."""
        return False

    async def dispatch(self, message: Message) -> Any:
        """Call the handler a layer message's ``type`` names, with the message; return its result."""
        kind = message.get("type")
        # A type that found its handler once finds it again: only types that map to a
        # handler are kept, so the cache holds a few names per handler at most.
        name = self._handler_names.get(kind) if type(kind) is str else None
        if name is None:
            name = self._handler_for(kind)
            if name is None:
                return NOT_HANDLED
            self._handler_names[cast("str", kind)] = name
        if self._asyncness.get(name) == _ASYNC:  # the hot path: what _call() does, one await less
            result = await getattr(self, name)(message)
            if self._outbox:
                await self._flush()
            if self._moves:
                await self._settle()
            return result
        return await self._call(name, message)

    # -- conversations (see ._ask) --------------------------------------------------------------

    async def ask(self, channel: str, message: LayerMessage, *, timeout: float = 10.0) -> Any:
        """Send *message* to *channel* and return the handler's answer there.

        The receiving handler answers by returning a value (or with ``await
        self.reply(value)``). Raises :class:`~interlock.actors.AskTimeout` after
        *timeout* seconds, :class:`~interlock.actors.PeerGone` as soon as the layer
        knows the channel is gone, :class:`~interlock.actors.AskFailed` if the handler
        failed, :class:`~interlock.actors.AskDeadlock` if the asked actor was asking this
        one. Meanwhile this actor's other events wait in its mailbox (see
        :mod:`interlock.actors._ask`).
        """
        return await _ask.ask(self, channel, message, timeout)

    async def reply(self, value: Any = None) -> None:
        """Answer the ask being handled now with *value* (its handler's return value is then ignored)."""
        asked = self._answering
        if asked is None:
            msg = (
                f"{type(self).__qualname__}.reply(): no ask is being handled (reply() answers the message of an ask())"
            )
            raise RuntimeError(msg)
        self._answering = None
        await self._send_reply(asked, _ask.reply_for(asked, value))

    def _in_loop(self) -> bool:
        """Whether the caller runs in the actor's own loop (a handler), where ask() may wait."""
        return get_ident() == self._loop_thread

    async def _serve_ask(self, message: LayerMessage) -> None:
        """Run the handler of an ask and send its answer (or its failure) back (see ._ask)."""
        self._answering = message
        try:
            value = await self.dispatch(message)
        except Exception as exc:
            if self._answering is message:
                await self._send_reply(message, _ask.reply_for(message, error=exc))
            raise
        finally:
            answering, self._answering = self._answering, None
        if answering is message:  # not answered with reply()
            await self._answer_ask(message, value)

    async def _answer_ask(self, message: LayerMessage, value: Any) -> None:
        """Send *value* as the answer to the ask *message* (if the event was not deferred)."""
        if value is DEFERRED:
            return
        if value is NOT_HANDLED:
            error = UnknownMessageType(type(self).__qualname__, message.get("type"), "no handler takes it")
            await self._send_reply(message, _ask.reply_for(message, error=error))
            return
        await self._send_reply(message, _ask.reply_for(message, value))

    async def _send_reply(self, asked: LayerMessage, reply: LayerMessage) -> None:
        layer = self._channel_layer
        if layer is None:
            return
        try:
            await layer.send(asked[_ask.REPLY_TO], reply)
        except Exception as exc:  # noqa: BLE001 - an answer the layer refuses: say so, small
            if "error" in reply:
                logger.warning("%r could not send the failure of an ask back: %r", self, exc)
                return
            logger.warning("%r: the answer to %r was refused by the layer: %s", self, asked.get("type"), exc)
            try:
                await layer.send(asked[_ask.REPLY_TO], _ask.reply_for(asked, error=exc))
            except Exception as again:  # noqa: BLE001 - the asker is gone, say
                logger.debug("%r could not send the refusal back either: %r", self, again)

    # -- running -------------------------------------------------------------------------

    def _layer_for(self, scope: Scope) -> GroupLayer | None:
        layer = self._channel_layer
        if layer is None:
            layer = scope.get(LAYER_KEY)
        return layer

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._asgi_send = send
        self._loop_thread = _thread_ident()
        layer = self._channel_layer = self._layer_for(scope)
        LIVE[id(self)] = self  # what the inspector lists (actors/_inspect_registry.py)
        try:
            if layer is not None:
                self._channel_name = await layer.new_channel()
                await self._started()
            if layer is None and not self._needs_mailbox:
                await self._run_direct(receive)
            elif running_asyncio_loop() is not None:  # no nursery, no cancel scope: see _serve_mailbox
                await self._serve_mailbox(layer, receive, asyncio.current_task())
            else:
                await self._run_mailbox(layer, receive)
        except Exception as exc:  # noqa: BLE001 - the layer failed to give a channel, say
            await self._fail(exc)
        except BaseException as exc:
            if _is_cancellation(exc):  # the server shuts down (or the host cancelled the app)
                with anyio.move_on_after(self.teardown_timeout, shield=True) as bounded:
                    await self._on_shutdown()
                self._warn_if_cut_short(bounded)
            raise
        finally:
            LIVE.pop(id(self), None)
            if not self._ended:  # not reached through an event: the server went quiet
                with anyio.move_on_after(self.teardown_timeout, shield=True) as bounded:
                    await self._end(self._lost_ending())
                self._warn_if_cut_short(bounded)
            if self._channel_name is not None:  # no shielded scope to pay for without one
                with anyio.CancelScope(shield=True):  # the channel is closed whatever happened before
                    await self._cleanup()

    def _lost_ending(self) -> Ending:
        """How a connection the server stopped serving without a last event ended."""
        return Ending("lost", 1006)

    def _warn_if_cut_short(self, scope: anyio.CancelScope) -> None:
        if scope.cancelled_caught:
            logger.warning(
                "%r: the teardown took longer than teardown_timeout (%g s); the rest of it was abandoned",
                self,
                self.teardown_timeout,
            )

    async def _run_direct(self, receive: Receive) -> None:
        """No layer, no timers: await the server's events one by one.

        Each event takes what :meth:`_handle` does for a client event inline, in one
        ``try`` (a coroutine less per event: every line of a TCP burst and every frame of
        an echo pays for it), unless the class overrides ``_handle``; events a handler
        raised meanwhile go through ``_handle``.
        """
        self._receive = receive
        # A class that overrides _handle adds to every item's handling: each event goes through it.
        handle = self._handle if type(self)._handle is not BaseActor._handle else None
        on_event = self._on_client_event
        while True:
            try:
                message = await receive()
            except Exception as exc:  # noqa: BLE001 - the server's receive() failed: this actor fails
                await self._fail(exc)
                return
            if handle is not None:
                if await handle(CLIENT, message):
                    return
                continue
            if TAP.watching:  # an inspector counts the message rates
                TAP.event(self, CLIENT)
            try:
                stop = await on_event(message)
                # Flush, then settle: the same pair as in _handle, LineActor._on_client_event and
                # LineActor._more_lines, inline on purpose (a helper coroutine per event is the cost).
                if self._outbox:  # as in _handle: what no handler call flushed or settled
                    await self._flush()
                if self._moves:
                    await self._settle()
            except Exception as exc:  # noqa: BLE001 - any handler error ends this actor only
                stop = await self._caught(exc, CLIENT, message)
            if stop:
                return
            raised = self._raised
            if raised and await self._handle(LAYER, raised.popleft()):
                return

    async def _run_mailbox(self, layer: GroupLayer | None, receive: Receive) -> None:
        """Mailbox mode on trio: the loop in the nursery of its tasks, whose cancellation gives a slow client up."""
        async with TaskSet(self._post_failure) as tasks:
            self._task_set = tasks
            self._loop_scope = tasks  # the give-up cancels the nursery's own scope: no scope of its own to pay for
            try:
                await self._serve_mailbox(layer, receive, None)
            finally:
                self._loop_scope = None
        if self._too_slow is not None and not self._ended:
            await self._on_slow_client(self._too_slow)

    async def _serve_mailbox(self, layer: GroupLayer | None, receive: Receive, host: asyncio.Task[Any] | None) -> None:
        """Start the feeds, then handle what the mailbox yields until the actor stops.

        On asyncio (*host*: the actor's task) ``_run`` calls it directly, with no block
        around it: giving a slow client up cancels *host*, the tasks come with the first
        one started (``_tasks``), the client's pump is no task (``._pump``); each block or
        frame less is paid by every idle connection.
        """
        # Bound methods, not closures, feed the mailbox: every live connection pays for them.
        mailbox: Mailbox[tuple[int, Any]] = Mailbox(self.mailbox_size)
        self._mailbox = mailbox
        pump = self._start_client_pump(receive, host is not None)
        item: tuple[int, Any] | None
        waiting = mailbox.items
        try:
            channel = self._channel_name
            if layer is not None and channel is not None:
                self._feed_from(layer, channel)
            await self._mailbox_started()
            if host is not None:
                self._loop_scope = host
            while True:
                deadline = self._next_deadline()
                if deadline == NO_DEADLINE:  # no timer: wait on the mailbox's future itself, no frame
                    if not waiting:
                        await mailbox.arrival()
                        if not waiting:  # (never so: put_nowait() wakes it; but the loop must not guess)
                            continue
                    item = mailbox.get_nowait()  # the arrival at once (a timer set meanwhile comes after it)
                # a timer: only now the clock (anyio.current_time() costs a microsecond per item)
                elif deadline <= anyio.current_time():
                    if await self._handle(INTERNAL, None) or self._cut:  # timers due: they go first
                        break
                    continue
                else:
                    got = await mailbox.get(deadline)
                    if got is None:
                        continue  # the deadline passed: loop round to serve the timers
                    item, got = got, None
                stop = await self._handle(*item)
                item = None  # not kept while the actor idles (a connection's first event, say)
                if stop or self._cut:
                    break
        except asyncio.CancelledError:  # asyncio only: trio's cancellation is another class
            if not self._cut_task:
                raise
            self._cut_task = False
            if cast("asyncio.Task[Any]", host).uncancel():  # the server cancels it too: let that through
                raise
        finally:
            await self._leave_loop(pump, host is not None)
        if host is None:
            return  # trio: _run_mailbox ends the nursery, then the slow client
        if self._cut_task:  # the server's send swallowed the cancellation: the loop left on _cut
            self._cut_task = False
            host.uncancel()
        if self._too_slow is not None and not self._ended:
            await self._on_slow_client(self._too_slow)

    async def _leave_loop(self, pump: ClientPump | None, on_asyncio: bool) -> None:
        """The mailbox loop has left: tell a give-up's watcher; on asyncio stop the pump and the tasks."""
        if self._loop_left is not None:  # (trio's watcher: see _give_up_if_stuck)
            self._loop_left.set()
        if not on_asyncio:
            return  # trio: _run_mailbox's nursery ends the tasks, the pump among them
        self._loop_scope = None
        if pump is not None:
            pump.stop()
        tasks = self._task_set
        if tasks is not None:  # rule 1 of ._taskset: they end with the loop
            await tasks.__aexit__(None, None, None)

    @property
    def _tasks(self) -> TaskSet:
        """The actor's background tasks (on asyncio made by the first task started)."""
        tasks = self._task_set
        if tasks is None:  # asyncio: a TaskSet needs no entering there (trio's is opened by _run_mailbox)
            tasks = self._task_set = TaskSet(self._post_failure)
        return tasks

    def _start_client_pump(self, receive: Receive, on_asyncio: bool) -> ClientPump | None:
        """Start feeding the server's events into the mailbox; the pump to stop, if it is not a task.

        On asyncio a ``receive`` known to need no task is stepped by a :class:`ClientPump`
        (about a kilobyte a connection less, see ``._pump``); any other gets a task, and so
        does a class with a pump of its own (an HTTP actor's cancels its handler).
        """
        # A worker's events come from its channel, where no type is the last one.
        terminal = self._terminal_events if self.scope["type"] != "channel" else frozenset()
        if on_asyncio and type(self)._pump_client is BaseActor._pump_client and steps_without_task(receive):
            pump = ClientPump(self, receive, terminal)
            pump.start()
            return pump
        self._tasks.start_guarded(self._pump_client, receive, terminal)
        return None

    def _feed_from(self, layer: GroupLayer, channel: str) -> None:
        """Have *layer* feed the actor's channel into the mailbox: watched if it can be, else a pump."""
        waiting = None
        watchable, counts_drops = _layer_kinds(layer)
        if watchable:  # the channel feeds the mailbox: no pump
            watched = cast("WatchableLayer", layer)
            notify = self._post_watch_token  # one bound method for both hooks: 64 bytes a connection less
            if counts_drops:  # it says when the channel overflowed
                waiting = watched.watch_channel(channel, notify, on_drop=notify)
            else:
                waiting = watched.watch_channel(channel, notify)
        if waiting is None:
            self._tasks.start_soon(self._pump_channel, layer, channel)
        for _ in range(waiting or 0):
            self._mailbox.put_nowait(_WATCH_TOKEN)

    _terminal_events: ClassVar[frozenset[str]] = frozenset(
        {"websocket.disconnect", "http.disconnect", "lifespan.shutdown"}
    )

    async def _pump_client(self, receive: Receive, terminal: frozenset[str]) -> None:
        """Feed the server's events into the mailbox, up to the last one (*terminal*: the types that are)."""
        mailbox = self._mailbox
        try:  # its own guard (TaskSet.start_guarded): one coroutine frame per connection, not two
            while True:
                message = await receive()
                await mailbox.put((CLIENT, message))
                if message.get("type") in terminal:
                    return
        except Exception as exc:  # noqa: BLE001 - the actor fails when the mailbox reaches it
            self._post_failure(exc)

    async def _pump_channel(self, layer: GroupLayer, channel: str) -> None:
        """Feed a layer that cannot be watched into the mailbox."""
        mailbox = self._mailbox
        while True:
            await mailbox.put((LAYER, await layer.receive(channel)))

    def _post_watch_token(self, dropped: int = 0) -> None:
        """A message waits in the watched channel: its turn comes after what is queued.

        Called with a count, it is the layer's drop hook: see :meth:`_post_drops`.
        """
        if dropped:
            self._post_drops(dropped)
            return
        self._mailbox.put_nowait(_WATCH_TOKEN)

    def _post_drops(self, count: int) -> None:
        """The layer dropped *count* messages for this channel: the actor hears of it in turn.

        Drops add up until the actor takes them, so a storm is one mailbox item and one
        ``channel_overflowed()`` call. And if the actor is waiting for its client to take
        a send meanwhile, a watcher checks, :data:`_STUCK_SEND` later, whether that same
        send still waits: then the client stopped reading and is given up.
        """
        pending = self._drops_pending
        self._drops_pending = pending + count
        if not pending:
            self._mailbox.put_nowait((DROPPED, None))
        since = self._sending
        if since and not self._watching_send and self._too_slow is None and self._loop_scope is not None:
            self._watching_send = True
            self._tasks.start_soon(self._give_up_if_stuck, since)

    async def _give_up_if_stuck(self, since: float) -> None:
        """Give the client up if the send that waited at *since* still waits (see ``_post_drops``)."""
        await anyio.sleep(_STUCK_SEND)
        self._watching_send = False
        scope = self._loop_scope
        if self._sending != since or scope is None or self._ended:
            return  # that send went through: the client reads, if slowly
        self._give_up(f"its channel overflowed while a send to it waited over {_STUCK_SEND:g} s")
        if isinstance(scope, TaskSet):  # trio: a shielded send is cut once its shield ends
            scope.cancel()
        else:  # asyncio: the task is cancelled, unless its send must not be cut (then the loop stops after it)
            self._cut = True
            if not self._unstoppable:
                self._cut_task = True
                scope.cancel()
        # A server may shield its writes from cancellation (Hypercorn does): then the
        # teardown waits until the server drops the connection, but the channel is
        # closed now, which takes the actor out of its groups: nothing more is sent to
        # it or counted as lost. On trio this task is in the nursery just cancelled: it
        # waits on shielded, until the loop has left or the time is up.
        if isinstance(scope, TaskSet):
            left = self._loop_left = anyio.Event()
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(_SLOW_DETACH):
                    await left.wait()
                await self._detach_if_still_sending()
            return
        await anyio.sleep(_SLOW_DETACH)  # asyncio: cancelled when the loop leaves (its TaskSet ends)
        await self._detach_if_still_sending()

    async def _detach_if_still_sending(self) -> None:
        """The give-up's send still waits :data:`_SLOW_DETACH` later: close the channel now."""
        if self._loop_scope is not None and not self._ended:
            logger.warning(
                "%r: the server does not let a send to a client that stopped reading be abandoned; "
                "its channel is closed now, its teardown waits for the server to drop the connection",
                self,
            )
            await self._cleanup()

    def _post_failure(self, exc: Exception) -> None:
        """A background task failed: the actor fails when the mailbox reaches it."""
        self._mailbox.put_nowait((FAILED, exc))

    async def _handle(self, kind: int, payload: Any) -> bool:
        """Handle one mailbox item, start to finish; return True when the actor must stop.

        Events a handler raised meanwhile (a state actor's ``raise_event()``) are handled
        next, in order, in this same loop rather than by an override wrapping this one:
        every level of ``await`` here is paid by every client frame.
        """
        while True:
            if TAP.watching:  # an inspector counts the message rates
                TAP.event(self, kind)
            try:
                if kind == CLIENT:
                    stop = await self._on_client_event(payload)
                elif kind == LAYER:
                    stop = False
                    if payload is None:  # a token: the message waits in the watched channel
                        # (no cast() calls: each is a Python call, and this runs for every layer message)
                        layer: WatchableLayer = self._channel_layer  # type: ignore[assignment]  # watched: set
                        payload = layer.take_message(self._channel_name)  # type: ignore[arg-type]  # as is this
                    if payload is None:
                        pass  # it expired, or the channel was flushed
                    elif self._accepts_layer_messages():
                        # _ask.is_conversation() and is_ask(), inline: every layer message asks
                        if payload.get("type") in _CONVERSATION:  # a late reply, or a gone notice after it
                            logger.debug("%r dropped %r: no ask waits for it", self, payload.get("type"))
                        elif _ASK_ID in payload and _REPLY_TO in payload:
                            await self._serve_ask(payload)
                        elif self._floors is None or not _conversations.replayed(self, payload):
                            await self.dispatch(payload)
                    else:
                        logger.debug("%r dropped layer message %r: not open", self, payload.get("type"))
                elif kind == DROPPED:
                    stop = False
                    dropped, self._drops_pending = self._drops_pending, 0
                    # A client given up (or a channel already closed for it) has nothing to resync:
                    # the give-up said why, and closing again would race the teardown.
                    if dropped and self._too_slow is None and not self._closed_channel:
                        await self._call("channel_overflowed", dropped)
                elif kind == FAILED:  # the client pump (or another task) failed
                    raise payload
                else:
                    stop = await self._on_internal(payload)
                # What no handler call flushed or settled (the "close" policy on an event
                # nothing handles, a close during a replayed deferred event) is done here.
                if self._outbox:
                    await self._flush()
                if self._moves:
                    await self._settle()
            except Exception as exc:  # noqa: BLE001 - any handler error ends this actor only
                stop = await self._caught(exc, kind, payload)
            raised = self._raised
            if stop or not raised:
                return stop
            kind, payload = LAYER, raised.popleft()

    async def _caught(self, exc: Exception, kind: int, payload: Any) -> bool:
        """Handling a mailbox item raised *exc*: end the actor as it says (True: it must stop).

        :class:`StopActor` stops it, a client gone or too slow ends it as the client's
        doing, anything else is the handler's failure (:meth:`_handler_failed`).
        """
        if isinstance(exc, StopActor):
            await self._stopped()
            return True
        if isinstance(exc, ClientTooSlow):  # before ClientGone: it is one
            await self._on_slow_client(exc)
            return True
        if isinstance(exc, ClientGone):
            logger.debug("%s", exc)
            await self._end(await self._ending_after_gone(exc))
            return True
        return await self._handler_failed(exc, kind, payload)

    async def _handler_failed(self, exc: Exception, kind: int, payload: Any) -> bool:
        """A handler raised *exc* for a mailbox item: fail the actor (True: it must stop)."""
        await self._fail(exc)
        return True

    def _log_failure(self, exc: Exception) -> None:
        if isinstance(exc, LayerUnavailable):
            _log_outage(f"{self!r} failed", exc)
            return
        logger.error("%r failed: %s: %s", self, type(exc).__name__, exc, exc_info=exc)

    async def _fail(self, exc: Exception) -> None:
        self._log_failure(exc)
        self._outbox.clear()
        with anyio.CancelScope(shield=True):
            if not self._ended:
                unstoppable, self._unstoppable = self._unstoppable, True  # shielded on asyncio too
                try:
                    await self._on_failure(exc)
                except Exception as close_exc:  # noqa: BLE001 - the peer may be gone already
                    logger.debug("%r could not report its failure to the peer: %r", self, close_exc)
                finally:
                    self._unstoppable = unstoppable
            await self._end(self._failure_ending(exc))

    async def _ending_after_gone(self, exc: ClientGone) -> Ending:
        """A send found the client gone: why, in the server's words if it has them already.

        A client that closed cleanly while the actor was sending to it has its
        ``websocket.disconnect`` queued behind the send that failed; it, not the failed
        send, says how the connection ended. It is awaited briefly, nothing else is handled.
        """
        deadline = anyio.current_time() + _GONE_GRACE
        message: Any = None
        with anyio.move_on_after(_GONE_GRACE, shield=True):
            mailbox = getattr(self, "_mailbox", None)
            while True:
                if mailbox is not None:
                    item = await mailbox.get(deadline)
                    if item is None:
                        break
                    kind, message = item
                    if kind != CLIENT:
                        continue
                elif self._receive is not None:
                    message = await self._receive()
                else:
                    break
                if message.get("type") in self._terminal_events:
                    return self._ending_of_disconnect(message, exc)
        return Ending("lost", 1006, exc)

    def _ending_of_disconnect(self, message: Message, exc: BaseException | None = None) -> Ending:
        code = message.get("code", 1005)
        return Ending("shutdown" if code in SHUTDOWN_CODES else "client", code, exc)

    def _failure_ending(self, exc: Exception) -> Ending:
        return Ending("error", 1011, exc)

    async def _end(self, ending: Ending) -> None:
        """End the actor once, whatever path reaches here first (see the module's *Teardown*)."""
        if self._ended:
            return
        self._ended = True
        if self.ending is None:
            self.ending = ending
        self._outbox.clear()
        await self._teardown(ending)

    async def _teardown(self, ending: Ending) -> None:
        """What ending means for this kind of actor (connection actors: hooks, ``disconnect()``)."""

    async def _stopped(self) -> None:
        """A handler raised :class:`StopActor`."""
        await self._end(Ending("actor", 1000))

    async def _on_shutdown(self) -> None:
        """The actor's task was cancelled (the server shuts down): end it."""
        await self._end(Ending("shutdown", 1001))

    async def _on_slow_client(self, exc: ClientTooSlow) -> None:
        """The client stopped taking sends: end the actor as the client's fault."""
        logger.warning("%r gives its client up: %s", self, exc)
        await self._end(Ending("client_error", 1006, exc))

    async def _join_groups(self) -> None:
        layer = self._channel_layer
        channel = self._channel_name
        if layer is None or channel is None or not self.groups:
            return
        for group in self.groups:
            await layer.group_add(group, channel)
            self._joined = (*self._joined, group)

    async def _leave_groups(self, groups: Iterable[str]) -> None:
        layer = self._channel_layer
        channel = self._channel_name
        if layer is None or channel is None:
            return
        for group in groups:
            try:
                await layer.group_discard(group, channel)
            except LayerUnavailable as exc:
                _log_outage(f"{self!r} could not leave group {group!r}", exc)
            except Exception:
                logger.exception("%r could not leave group %r", self, group)

    async def _cleanup(self) -> None:
        if self._watches is not None:
            self._watches.clear()
        layer = self._channel_layer
        channel = self._channel_name
        if layer is None or channel is None or self._closed_channel:
            return
        self._closed_channel = True
        try:
            await layer.close_channel(channel)
        except LayerUnavailable as exc:
            _log_outage(f"{self!r} could not close its channel {channel!r}", exc)
        except Exception:
            logger.exception("%r could not close its channel %r", self, channel)

    # -- hooks for subclasses ----------------------------------------------------------------

    @inline
    def channel_overflowed(self, dropped: int) -> Awaitable[None] | None:
        """Called when the layer dropped *dropped* messages meant for this actor's channel.

        The channel was full: the actor (or its client) did not keep up. This default logs
        a WARNING; a WebSocket actor closes the connection instead (its client missed
        messages and should reconnect). Override to resynchronise instead.
        """
        logger.warning("%r lost %d layer message(s): its channel was full", self, dropped)
        return None

    async def _on_client_event(self, message: Message) -> bool:
        raise NotImplementedError  # pragma: no cover - every concrete actor overrides

    async def _on_failure(self, exc: Exception) -> None:
        """Tell the peer the actor failed (subclasses know how)."""

    async def _started(self) -> None:
        """Called once the actor has its channel, before its first event."""

    async def _mailbox_started(self) -> None:
        """Called in mailbox mode once ``self._tasks`` and ``self._mailbox`` exist."""

    def _next_deadline(self) -> float:
        """When the actor's next timer is due (``anyio.current_time()`` clock)."""
        return math.inf

    async def _on_internal(self, payload: Any) -> bool:
        """Handle an item the actor put in its own mailbox (tasks), or None: timers are due."""
        raise NotImplementedError  # pragma: no cover - only actors that post them get them

    def _accepts_layer_messages(self) -> bool:
        return True
