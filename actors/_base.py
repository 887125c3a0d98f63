"""The actor runtime: one instance per scope, one event at a time, one mailbox.

Theory of operation
-------------------
``Actor.as_asgi()`` returns an ASGI app; each call builds one actor and runs it.

* **Mailbox.** Without a channel layer (or timers) the actor awaits the server's
  ``receive()`` directly. With a layer it gets a ``channel_name`` and one
  :class:`~interlock.actors._mailbox.Mailbox` takes everything: a pump task
  (:mod:`._taskset`) feeds it the client's events, a ``WatchableLayer`` posts a token
  per channel message (another layer gets a pump task too), background tasks post
  their results and failures; timers are served by the loop itself, waiting on the
  mailbox with a deadline. The actor handles what the mailbox yields, in order, start
  to finish.
* **Handlers** may be ``def`` (run in a worker thread) or ``async def``. Operations
  that talk to the client (``send``, ``accept``, ``close`` …) are recorded in an
  outbox and return an awaitable that flushes it: ``await self.send(...)`` in async
  code sends at once; in a sync handler the call flushes before it returns; anything
  left is flushed when the handler returns. Order is always preserved.
* **Layer messages** reach only declared handlers: ``type`` ``"chat.message"`` calls
  ``chat_message``, which must be a public method defined by the user's class, not
  one of interlock's own methods (so ``{"type": "close"}`` never closes anything).
* **Failure.** A handler exception is logged with the actor's identity, the
  connection is closed (1011 for WebSockets) and the actor stops; whatever happens,
  its channel is closed and discarded from every group.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Generator, Iterable, Sequence
from threading import get_ident
from typing import Any, ClassVar, Final, Literal, TypeVar, cast

import anyio
from interlock.layers import GroupLayer, WatchableLayer

from ._errors import StopActor, UnknownMessageType
from ._mailbox import Mailbox
from ._sync import run_in_worker
from ._taskset import TaskSet
from ._types import LAYER_KEY, Message, Receive, Scope, Send

__all__ = ["ActorApp", "BaseActor", "Flush", "UnhandledPolicy", "inline", "library_class"]

logger = logging.getLogger("interlock.actors")

UnhandledPolicy = Literal["raise", "log", "ignore", "close"]

CLIENT: Final = 0
LAYER: Final = 1
INTERNAL: Final = 2
FAILED: Final = 3  # a background task's exception (see _taskset)
_WATCH_TOKEN: Final = (LAYER, None)  # a message waits in the watched channel

_LIBRARY_CLASSES: list[type] = []
C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


def library_class(cls: C) -> C:
    """Mark *cls* as interlock's own: its methods are never layer-message handlers."""
    _LIBRARY_CLASSES.append(cls)
    return cls


_THREAD, _ASYNC, _INLINE = 0, 1, 2
INLINE_ATTR: Final = "__interlock_inline__"


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
            return _done().__await__()
        outbox = actor._outbox
        if len(outbox) == 1 and actor._asgi_send is not None:  # the usual case: no extra frame
            return actor._asgi_send(outbox.pop()).__await__()
        return actor._flush().__await__()


async def _done() -> None:
    return None


_FLUSHED = Flush(None)


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
        """Serve one scope with a new actor."""
        await self.actor_class(**self.initkwargs)._run(scope, receive, send)


@library_class
class BaseActor:
    """What every actor shares: scope, channel layer, mailbox, dispatch, cleanup.

    Subclass :class:`~interlock.actors.WebsocketActor` or
    :class:`~interlock.actors.Actor` rather than this class.
    """

    groups: ClassVar[Sequence[str]] = ()
    """Groups the actor joins when its connection starts and leaves when it ends."""

    unhandled: ClassVar[UnhandledPolicy] = "raise"
    """What an event with no handler does: ``"raise"`` (fail the actor, like Channels),
    ``"log"`` (log an error and go on), ``"ignore"`` (drop it silently) or ``"close"``
    (close the connection with ``unhandled_close_code``)."""

    unhandled_close_code: ClassVar[int] = 1008
    """The close code of the ``"close"`` policy (1008: policy violation)."""

    mailbox_size: ClassVar[int] = 64
    """Events the mailbox holds before the client and the channel are made to wait."""

    channel_layer: GroupLayer | None = None
    """The layer this actor talks through; set by the router, or by ``as_asgi(channel_layer=…)``."""

    channel_name: str | None
    """This actor's own channel (its mailbox address) while it runs with a layer."""

    scope: Scope
    """The connection scope, with ``url_route`` once a router matched it."""

    _needs_mailbox: ClassVar[bool] = False
    _moves: list[tuple[str, str, str | None]] | tuple[()] = ()
    _mailbox: Mailbox[tuple[int, Any]]
    _tasks: TaskSet
    _handlers: ClassVar[frozenset[str]] = frozenset()
    _reserved: ClassVar[frozenset[str]] = frozenset()
    _asyncness: ClassVar[dict[str, int]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._asyncness = {}
        cls._reserved = frozenset(name for base in _LIBRARY_CLASSES if issubclass(cls, base) for name in dir(base))
        handlers = set()
        for klass in cls.__mro__:
            if klass in _LIBRARY_CLASSES or klass is object:
                continue
            for name, value in vars(klass).items():
                if name.startswith("_") or name in cls._reserved:
                    continue
                if inspect.isfunction(value):
                    handlers.add(name)
        cls._handlers = frozenset(handlers)
        if not isinstance(cls.groups, (list, tuple)):
            msg = f"{cls.__qualname__}.groups must be a list or tuple of group names, not {type(cls.groups).__name__}"
            raise TypeError(msg)

    def __init__(self, **initkwargs: Any) -> None:
        for key, value in initkwargs.items():
            setattr(self, key, value)
        self.channel_name = None
        self._outbox: list[Message] = []  # 56 bytes empty, a deque 600: most actors hold one
        self._asgi_send: Send | None = None
        self._loop_thread = get_ident()
        self._joined: list[str] = []

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

    # -- identity ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        scope = getattr(self, "scope", None) or {}
        parts = [type(self).__qualname__]
        if self.channel_name:
            parts.append(f"channel={self.channel_name}")
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
        return Flush(self)

    async def _flush(self) -> None:
        outbox = self._outbox
        send = self._asgi_send
        if send is None:
            msg = f"{self!r} is not running: nothing to send to"
            raise RuntimeError(msg)
        while outbox:
            await send(outbox.pop(0))

    # -- calling handlers ----------------------------------------------------------------

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        method: Callable[..., Any] = getattr(self, name)
        mode = self._asyncness.get(name)
        if mode is None:
            mode = self._asyncness[name] = _call_mode(method)
        if mode == _ASYNC:
            await method(*args, **kwargs)
        elif mode == _INLINE:
            result = method(*args, **kwargs)
            if result is not None:
                await result
        else:
            result = await run_in_worker(method, *args, **kwargs)
            if inspect.isawaitable(result):
                await result
        if self._outbox:
            await self._flush()
        if self._moves:
            await self._settle()

    async def _settle(self) -> None:
        """Run what recorded state changes imply (state actors: exit and entry work)."""

    def _handler_for(self, message_type: object) -> str | None:
        """The handler name for a message type, or None (after applying the policy)."""
        if type(message_type) is str:
            name = message_type.replace(".", "_")
            if name in self._handlers and not message_type.startswith("_"):
                return name
            if message_type.startswith("_"):
                reason = "types starting with '_' are private and never dispatched"
            elif name in self._reserved:
                reason = f"{name!r} is one of interlock's own methods, not a handler"
            else:
                reason = f"define a method named {name!r} to handle it"
        else:
            reason = "a message's 'type' must be a str"
        self._apply_unhandled(UnknownMessageType(type(self).__qualname__, message_type, reason))
        return None

    def _apply_unhandled(self, error: Exception) -> None:
        """Follow the class's ``unhandled`` policy for an event nothing handles."""
        policy = self.unhandled
        if policy == "raise" or (policy == "close" and not self._close_for_unhandled(error)):
            raise error
        if policy == "log":
            logger.error("%r dropped an event: %s", self, error)

    def _close_for_unhandled(self, error: Exception) -> bool:
        """Close the connection for the ``"close"`` policy; False if this actor cannot."""
        return False

    async def dispatch(self, message: Message) -> None:
        """Call the handler a layer message's ``type`` names, with the message."""
        name = self._handler_for(message.get("type"))
        if name is not None:
            await self._call(name, message)

    # -- running -------------------------------------------------------------------------

    def _layer_for(self, scope: Scope) -> GroupLayer | None:
        layer = self.channel_layer
        if layer is None:
            layer = scope.get(LAYER_KEY)
        return layer

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._asgi_send = send
        self._loop_thread = get_ident()
        layer = self.channel_layer = self._layer_for(scope)
        try:
            if layer is not None:
                self.channel_name = await layer.new_channel()
                await self._started()
            if layer is None and not self._needs_mailbox:
                while not await self._handle(CLIENT, await receive()):
                    pass
            else:
                await self._run_mailbox(layer, receive)
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()

    async def _run_mailbox(self, layer: GroupLayer | None, receive: Receive) -> None:
        # Bound methods, not closures, feed the mailbox: every live connection pays for them.
        mailbox: Mailbox[tuple[int, Any]] = Mailbox(self.mailbox_size)
        self._mailbox = mailbox
        async with TaskSet(self._post_failure) as tasks:
            self._tasks = tasks
            tasks.start_soon(self._pump_client, receive)
            if layer is not None and self.channel_name is not None:
                waiting = None
                if isinstance(layer, WatchableLayer):  # the channel feeds the mailbox: no pump
                    waiting = layer.watch_channel(self.channel_name, self._post_watch_token)
                if waiting is None:
                    tasks.start_soon(self._pump_channel, layer, self.channel_name)
                for _ in range(waiting or 0):
                    mailbox.put_nowait(_WATCH_TOKEN)
            await self._mailbox_started()
            while True:
                deadline = self._next_deadline()
                if deadline <= anyio.current_time():
                    if await self._handle(INTERNAL, None):  # timers due: they go first
                        break
                    continue
                item = await mailbox.get(deadline)
                if item is None:
                    continue  # the deadline passed: loop round to serve the timers
                if await self._handle(*item):
                    break

    _terminal_events: ClassVar[frozenset[str]] = frozenset(
        {"websocket.disconnect", "http.disconnect", "lifespan.shutdown"}
    )

    async def _pump_client(self, receive: Receive) -> None:
        """Feed the server's events into the mailbox, up to the last one."""
        mailbox = self._mailbox
        while True:
            message = await receive()
            await mailbox.put((CLIENT, message))
            if message.get("type") in self._terminal_events:
                return

    async def _pump_channel(self, layer: GroupLayer, channel: str) -> None:
        """Feed a layer that cannot be watched into the mailbox."""
        mailbox = self._mailbox
        while True:
            await mailbox.put((LAYER, await layer.receive(channel)))

    def _post_watch_token(self) -> None:
        """A message waits in the watched channel: its turn comes after what is queued."""
        self._mailbox.put_nowait(_WATCH_TOKEN)

    def _post_failure(self, exc: Exception) -> None:
        """A background task failed: the actor fails when the mailbox reaches it."""
        self._mailbox.put_nowait((FAILED, exc))

    async def _handle(self, kind: int, payload: Any) -> bool:
        """Handle one mailbox item, start to finish; return True when the actor must stop."""
        try:
            if kind == CLIENT:
                stop = await self._on_client_event(payload)
            elif kind == LAYER:
                stop = False
                if payload is None:  # a token: the message waits in the watched channel
                    payload = cast("WatchableLayer", self.channel_layer).take_message(cast("str", self.channel_name))
                if payload is None:
                    pass  # it expired, or the channel was flushed
                elif self._accepts_layer_messages():
                    await self.dispatch(payload)
                else:
                    logger.debug("%r dropped layer message %r: not open", self, payload.get("type"))
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
            return stop
        except StopActor:
            return True
        except Exception as exc:  # noqa: BLE001 - any handler error ends this actor only
            return await self._handler_failed(exc, kind, payload)

    async def _handler_failed(self, exc: Exception, kind: int, payload: Any) -> bool:
        """A handler raised *exc* for a mailbox item: fail the actor (True: it must stop)."""
        await self._fail(exc)
        return True

    def _log_failure(self, exc: Exception) -> None:
        logger.error("%r failed: %s: %s", self, type(exc).__name__, exc, exc_info=exc)

    async def _fail(self, exc: Exception) -> None:
        self._log_failure(exc)
        self._outbox.clear()
        try:
            with anyio.CancelScope(shield=True):
                await self._on_failure(exc)
        except Exception as close_exc:  # noqa: BLE001 - the peer may be gone already
            logger.debug("%r could not report its failure to the peer: %r", self, close_exc)

    async def _join_groups(self) -> None:
        layer = self.channel_layer
        if layer is None or not self.groups:
            return
        assert self.channel_name is not None
        for group in self.groups:
            await layer.group_add(group, self.channel_name)
            self._joined.append(group)

    async def _leave_groups(self, groups: Iterable[str]) -> None:
        layer = self.channel_layer
        if layer is None or self.channel_name is None:
            return
        for group in groups:
            await layer.group_discard(group, self.channel_name)

    async def _cleanup(self) -> None:
        layer = self.channel_layer
        channel = self.channel_name
        if layer is None or channel is None:
            return
        try:
            await layer.close_channel(channel)
        except Exception:
            logger.exception("%r could not close its channel %r", self, channel)

    # -- hooks for subclasses ----------------------------------------------------------------

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
