"""WebSocket actors: the lifecycle table in ``interlock.dsl`` drives every operation.

States (see :mod:`interlock.dsl._lifecycle`): ``connecting`` until ``accept()``,
``open`` while messages flow, ``closing`` after ``close()``/``deny()`` until the server
reports the socket gone, ``closed`` after ``disconnect``. Operations check the state
*when called* and raise :class:`~interlock.dsl.IllegalTransition` naming it.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Coroutine, Generator
from threading import get_ident
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
from interlock.dsl import CLOSED, CLOSING, CONNECTING, LIFECYCLE, OPEN, Lifecycle, MachineSpec, compile_machine, render
from interlock.layers import LayerUnavailable

from . import _conversations
from ._asgi import Headers, denial_messages, encode_headers, supports_denial
from ._base import ASYNC, FLUSHED, NO_DEADLINE, BaseActor, Flush, inline, library_class, new_flush
from ._conversations import Recovered, Recovery
from ._ending import Ending
from ._errors import ClientTooSlow, DenyConnection, MalformedMessage, StopActor
from ._types import Message

__all__ = ["JsonWebsocketActor", "WebsocketActor"]

logger = logging.getLogger("interlock.actors")

_MAX_REASON_BYTES = 123
_NO_ID: Any = object()  # a frame without an "ack" key
_DENIAL_SETTLE_TURNS = 3  # loop turns after a denial response (measured: 3 turns, no ERROR in 100)
_SLOW_GOODBYE = 1.0  # seconds the close frame to a client given up as too slow may wait

_live_connections: dict[type, int] = {}  # class -> its live connections counted against max_connections
_refusals: dict[type, int] = {}  # class -> handshakes refused since the last one admitted

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
"""A ``\\uD800``-``\\uDFFF`` escape: JSON's way to spell half of a character."""


def _refuse_lone_surrogates(content: Any) -> None:
    """Raise the client's 1007 if decoded JSON holds a string no UTF-8 text can carry.

    ``json.loads`` joins an escaped surrogate pair into one character but keeps a lone
    ``\\ud800`` as is: valid JSON, not valid text, and no channel layer can carry it.
    """
    try:
        json.dumps(content, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = f"malformed JSON: {exc.object[exc.start : exc.end]!a} is half of a character (a lone surrogate)"
        raise MalformedMessage(msg, close_code=1007) from exc


_LOW_LEVEL_HOOKS = {
    "websocket_connect": "connect() (call accept(), close() or deny() there)",
    "websocket_receive": "receive(text_data=None, bytes_data=None)",
    "websocket_disconnect": "disconnect(code)",
}
"""Channels' raw-event hooks, which WebsocketActor never calls, and what to override instead."""


def _reason(text: str) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= _MAX_REASON_BYTES:
        return text
    return encoded[: _MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


class _Diagram:
    """``Actor.diagram(fmt)`` on a class; on a live actor, the same with its state highlighted."""

    def __get__(self, actor: WebsocketActor | None, owner: type[WebsocketActor]) -> Callable[..., str]:
        spec = owner.machine_spec()
        # a live actor: its state, and its state in each parallel region (a state actor's)
        highlight = None if actor is None else (actor.state, *getattr(actor, "regions", {}).values())

        def diagram(fmt: str = "mermaid") -> str:
            """Render the state machine as ``"mermaid"``, ``"dot"`` or ``"svg"`` text."""
            return render(spec, fmt, highlight)

        return diagram


@library_class
class WebsocketActor(BaseActor):
    """An actor for one WebSocket connection.

    Override ``connect`` (default: accept), ``receive`` and ``disconnect``; add
    handlers for layer messages (``chat_message`` for ``{"type": "chat.message"}``).
    Each may be ``def`` (run in a worker thread) or ``async def``.
    """

    lifecycle: ClassVar[Lifecycle] = LIFECYCLE
    """The compiled lifecycle shared by every instance (headless: instances hold only ``state``)."""

    state: str
    """The current lifecycle state: ``connecting``, ``open``, ``closing`` or ``closed``."""

    _machine_spec: ClassVar[MachineSpec]

    close_code: int | None
    """The close code once the connection ended (the peer's, or the one we sent)."""

    diagram = _Diagram()
    """Draw the machine: ``Actor.diagram("mermaid")`` (also ``"dot"``, ``"svg"``); on an
    instance, its current state is highlighted."""

    _sendable: ClassVar[frozenset[str]] = LIFECYCLE.sources["send"]
    _receivable: ClassVar[frozenset[str]] = LIFECYCLE.sources["receive"]

    scope_types: ClassVar[frozenset[str] | None] = frozenset({"websocket"})

    shutdown_close_code: ClassVar[int] = 1001
    """The close code sent when the actor is cancelled because the server shuts down
    (1001, "going away"; uvicorn closes with 1012 itself before that happens)."""

    max_message_size: ClassVar[int | None] = 1 << 20
    """The largest client message, text (UTF-8 bytes) or binary, the actor takes: 1 MiB by
    default, None for no limit. A larger one closes the connection with 1009 ("message too
    big") before any decoding, logged as the client's fault. The server's own limit
    (uvicorn's ``--ws-max-size``, 16 MiB) applies first."""

    overflow_close_code: ClassVar[int] = 4008
    """The close code of ``channel_overflowed()``'s default: the client did not keep up and
    lost layer messages (its channel was full), so it is told to reconnect. Also the code of
    a client given up as too slow (:class:`~interlock.actors.ClientTooSlow`)."""

    _tearing_down: bool = False  # exit hooks or disconnect() run because the connection ends
    _denied_with_response: bool = False  # the handshake was refused with an HTTP response

    # -- limits: handshake_timeout, idle_timeout, max_connections (see docs/actors.md "Limits") --

    handshake_timeout: ClassVar[float | None] = None
    """Seconds from ``websocket.connect`` until ``connect()`` (or a later handler) accepted or
    refused the handshake (None: no limit). Past them the handshake is refused with HTTP 408
    (403 without the denial extension) and the actor ends through its teardown."""

    idle_timeout: ClassVar[float | None] = None
    """Seconds without activity after which the connection is idle (None: never). A plain
    actor counts client frames and closes with ``idle_close_code``; a state actor counts
    handled events and fires ``@on.idle()``."""

    idle_close_code: ClassVar[int] = 4000
    """The close code of a plain actor that reached ``idle_timeout`` (reason ``idle for N s``)."""

    max_connections: ClassVar[int | None] = None
    """Live connections of this class the process serves at once (None: no cap). Past it a
    new handshake is refused with HTTP 503 (403 without the denial extension), with one
    WARNING line per burst of refusals."""

    _plain_idle: ClassVar[bool] = True  # idle_timeout closes (state actors: @on.idle() instead)
    _handshake_due: float = math.inf  # anyio.current_time() by which the handshake must be done
    _idle_due: float = NO_DEADLINE  # when a plain actor without client frames since is idle
    _holds_slot: bool = False  # counted in _live_connections

    def _limits_need_mailbox(self) -> bool:
        """Whether the timeouts are set, so the loop must wait with a deadline (mailbox mode)."""
        return self.handshake_timeout is not None or (self._plain_idle and self.idle_timeout is not None)

    def _take_slot(self) -> bool:
        """Count this connection against ``max_connections``; False (and a denial) if full."""
        cap = self.max_connections
        if cap is None:
            return True
        cls = type(self)
        live = _live_connections.get(cls, 0)
        if live >= cap:
            refused = _refusals[cls] = _refusals.get(cls, 0) + 1
            if refused == 1:
                logger.warning(
                    "%s refuses new connections: max_connections (%d) are live in this process "
                    "(503; further refusals are counted until one is admitted)",
                    cls.__qualname__,
                    cap,
                )
            self.deny(503, "server busy: too many connections")
            return False
        refused = _refusals.pop(cls, 0)
        if refused > 1:
            logger.warning("%s admits connections again, after refusing %d", cls.__qualname__, refused)
        _live_connections[cls] = live + 1
        self._holds_slot = True
        return True

    def _release_slot(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            _live_connections[type(self)] -= 1

    async def _connect_within_limits(self) -> None:
        """Run the handshake (groups, then ``connect()``) within ``handshake_timeout``, if admitted."""
        if not self._take_slot():
            return
        timeout = self.handshake_timeout
        if timeout is None:
            await self._join_groups()
            await self._call("connect")
            return
        self._handshake_due = anyio.current_time() + timeout
        with anyio.move_on_at(self._handshake_due):
            await self._join_groups()
            await self._call("connect")
        if self.state == CONNECTING and anyio.current_time() >= self._handshake_due:
            self._handshake_expired()

    def _handshake_expired(self) -> None:
        logger.info(
            "%r refuses the handshake: not accepted within %g s (handshake_timeout)", self, self.handshake_timeout
        )
        self._handshake_due = math.inf
        self.deny(408, f"handshake not accepted within {self.handshake_timeout:g} s")

    def _next_deadline(self) -> float:
        """The next limit deadline: the handshake's while connecting, else a plain actor's idleness."""
        state = self.state  # (read for every mailbox item: each attribute and global read once)
        if state == CONNECTING:
            return self._handshake_due
        if state in self._receivable:
            due = self._idle_due
            if due == NO_DEADLINE and self._plain_idle and self.idle_timeout is not None:
                due = self._idle_due = anyio.current_time() + self.idle_timeout  # a client that never speaks
            return due
        return NO_DEADLINE

    def _serve_limits(self) -> None:
        """Act on a limit deadline that passed (the loop found it due)."""
        now = anyio.current_time()
        if self.state == CONNECTING:
            if now >= self._handshake_due:
                self._handshake_expired()
        elif self.state in self._receivable and now >= self._idle_due:
            self._idle_due = math.inf
            logger.info("%r closes: no client message for %g s (idle_timeout)", self, self.idle_timeout)
            self.close(self.idle_close_code, f"idle for {self.idle_timeout:g} s")

    def _client_spoke(self) -> None:
        """A client frame arrived: a plain actor's idle deadline moves on."""
        if self._plain_idle and self.idle_timeout is not None:
            self._idle_due = anyio.current_time() + self.idle_timeout

    async def _on_internal(self, payload: Any) -> bool:
        self._serve_limits()
        return False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, instead in _LOW_LEVEL_HOOKS.items():
            if name in cls._methods:
                msg = (
                    f"{cls.__qualname__} defines {name}(), a Channels hook that WebsocketActor never calls; "
                    f"override {instead} instead"
                )
                raise TypeError(msg)
        cls._refresh_lifecycle()

    @classmethod
    def _refresh_lifecycle(cls) -> None:
        """Cache the states where the hot operations are legal (after ``lifecycle`` changes)."""
        cls._sendable = cls.lifecycle.sources["send"]
        cls._receivable = cls.lifecycle.sources["receive"]

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        self.state = self.lifecycle.initial
        self.close_code = None
        if self._limits_need_mailbox():
            self.__dict__["_needs_mailbox"] = True  # per instance: as_asgi(idle_timeout=...) may set it

    @classmethod
    def machine_spec(cls) -> MachineSpec:
        """The compiled state machine of this class (the built-in lifecycle if it declares none)."""
        spec: MachineSpec | None = cls.__dict__.get("_machine_spec")
        if spec is None:
            spec = compile_machine(cls, idle_events=not cls._plain_idle)
            cls._machine_spec = spec
        return spec

    # -- handlers users override ------------------------------------------------------

    # These hooks are typed ``-> Awaitable[None] | None`` so that overrides may be
    # ``def`` (run in a worker thread) or ``async def`` and still type-check.

    @inline
    def connect(self) -> Awaitable[None] | None:
        """Called for the handshake; the default accepts. Call ``accept()`` or ``close()``."""
        return self.accept()

    @inline
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> Awaitable[None] | None:
        """Called for each message from the client, text or binary."""
        return None

    @inline
    def disconnect(self, code: int) -> Awaitable[None] | None:
        """Called once when the connection is gone, with its close code."""
        return None

    @inline
    def channel_overflowed(self, dropped: int) -> Awaitable[None] | None:
        """The layer dropped *dropped* messages for this actor: by default, close with
        ``overflow_close_code`` (4008) rather than let the client miss messages silently.
        Override to resynchronise the client instead."""
        if self.state in self.lifecycle.sources["close"]:
            logger.warning("%r closes: its channel was full and lost %d message(s)", self, dropped)
            return self.close(self.overflow_close_code, f"too slow: {dropped} message(s) for this connection were lost")
        return None

    # -- operations -------------------------------------------------------------------

    def _move(self, trigger: str) -> str:
        self.state = self.lifecycle.next(self.state, trigger)
        return self.state

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> Flush:
        """Accept the handshake, optionally choosing one of the client's subprotocols."""
        if subprotocol is not None:
            offered = self.scope.get("subprotocols") or []
            if subprotocol not in offered:
                msg = (
                    f"accept(subprotocol={subprotocol!r}): the client offered "
                    f"{list(offered)!r}; choose one of those or None"
                )
                raise ValueError(msg)
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers is not None:
            message["headers"] = encode_headers(headers)
        self._move("accept")
        return self._emit(message)

    def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool | int = False) -> Flush:
        """Send one text or binary message; ``close=True`` (or a code) closes afterwards."""
        if self.state not in self._sendable:
            if self._tearing_down:
                logger.debug("%r dropped a send: the connection is ending (%s)", self, self.ending)
                return Flush(None)
            self.lifecycle.next(self.state, "send")  # raises, naming the state
        if text_data is not None:
            if type(text_data) is not str:
                msg = f"send(text_data=...) takes a str, not {type(text_data).__name__}"
                raise TypeError(msg)
            if bytes_data is not None:
                msg = "send() takes text_data or bytes_data, not both"
                raise ValueError(msg)
            message: Message = {"type": "websocket.send", "text": text_data}
        elif bytes_data is not None:
            if not isinstance(bytes_data, (bytes, bytearray, memoryview)):
                msg = f"send(bytes_data=...) takes bytes, not {type(bytes_data).__name__}"
                raise TypeError(msg)
            message = {"type": "websocket.send", "bytes": bytes(bytes_data)}
        elif close:
            return self.close(None if close is True else close)
        else:
            msg = "send() needs text_data or bytes_data"
            raise ValueError(msg)
        if close:
            self._emit(message)
            return self.close(None if close is True else close)
        # what _emit() does, inlined: this is the hot path of every echo
        self._outbox.append(message)
        if get_ident() != self._loop_thread:  # a sync handler, in a worker thread
            anyio.from_thread.run(self._flush)
            return FLUSHED
        flush = new_flush(Flush)
        flush._actor = self
        return flush

    def close(self, code: int | None = None, reason: str | None = None) -> Flush:
        """Close the connection (before ``accept()``: refuse the handshake, HTTP 403).

        Closing twice is harmless. ``code`` defaults to 1000; ``reason`` is cut to the
        123 bytes the protocol allows.
        """
        state = self.state
        target = self._move("close")
        if target == state:  # already closing or closed: ignored
            return Flush(self) if self._outbox else Flush(None)
        if state == CONNECTING:
            self._ending_by_actor(code or 1000)
            return self._emit({"type": "websocket.close", "code": code or 1000})
        message: Message = {"type": "websocket.close", "code": 1000 if code is None else code}
        if reason:
            message["reason"] = _reason(reason)
        self.close_code = message["code"]
        self._ending_by_actor(message["code"])
        return self._emit(message)

    def _ending_by_actor(self, code: int) -> None:
        if self.ending is None:
            self.ending = Ending("actor", code)

    def deny(self, status: int = 403, body: bytes | str = b"", headers: Headers | None = None) -> Flush:
        """Refuse the handshake with an HTTP response.

        Servers with ASGI's WebSocket denial extension send *status*, *headers* and
        *body*; others can only answer 403, which is what the client then sees.
        """
        if not 400 <= status <= 599:
            msg = f"deny(status={status!r}): a denial status is an HTTP error, 400 to 599"
            raise ValueError(msg)
        self._move("deny")
        self._ending_by_actor(1000)
        data = body.encode() if isinstance(body, str) else body
        flush = Flush(None)
        for message in self._denial_messages(status, data, headers):
            flush = self._emit(message)
        return flush

    # -- runtime ----------------------------------------------------------------------

    def _accepts_layer_messages(self) -> bool:
        return self.state in (OPEN, CONNECTING) or self.state.startswith("open.")

    async def _on_client_event(self, message: Message) -> bool:
        kind = message["type"]
        if kind == "websocket.receive":
            if self.state not in self._receivable:
                logger.debug("%r ignored a client message: state is %s", self, self.state)
                return False
            if self.idle_timeout is not None:
                self._client_spoke()
            text = message.get("text")
            limit = self.max_message_size
            if limit is not None and len(text if text is not None else message.get("bytes") or b"") * 4 > limit:
                self._check_size(text, message.get("bytes"))  # near the limit: count exactly
            if self._asyncness.get("receive") == ASYNC:  # the hot path: what _call() does, one await less
                if text is not None:
                    await self.receive(text_data=text)  # type: ignore[misc]  # an async def override
                else:
                    await self.receive(bytes_data=message.get("bytes") or b"")  # type: ignore[misc]
                if self._outbox:
                    await self._flush()
                if self._moves:
                    await self._settle()
            elif text is not None:
                await self._call("receive", text_data=text)
            else:
                await self._call("receive", bytes_data=message.get("bytes") or b"")
            return self.state == CLOSED
        if kind == "websocket.connect":
            try:
                await self._connect_within_limits()
            except DenyConnection:
                if self.state == CONNECTING:
                    await self.deny(403)
            return False
        if kind == "websocket.disconnect":
            await self._end(self._ending_of_disconnect(message))
            return True
        logger.warning("%r ignored an unexpected ASGI event %r", self, kind)
        return False

    def _check_size(self, text: str | None, data: bytes | None) -> None:
        """Raise the client's 1009 if a frame is over ``max_message_size`` (set)."""
        limit: int = self.max_message_size  # type: ignore[assignment]  # the caller checked
        if text is not None:
            size = len(text)  # characters: a UTF-8 byte count is at least this, at most 4x
            if size * 4 <= limit or (size <= limit and len(text.encode("utf-8", "surrogatepass")) <= limit):
                return
            what = f"a text message of {size:,} characters"
        else:
            size = len(data or b"")
            if size <= limit:
                return
            what = f"a binary message of {size:,} bytes"
        msg = f"{what} is over the limit of {limit:,} bytes (max_message_size)"
        raise MalformedMessage(msg, close_code=1009)

    def _denial_messages(self, status: int, body: bytes, headers: Headers | None = None) -> list[Message]:
        messages = denial_messages(self.scope, status, body, headers, send=self._asgi_send)
        if messages[0]["type"] != "websocket.close":
            self._denied_with_response = True
        return messages

    async def _on_failure(self, exc: Exception) -> None:
        state = self.state
        if state == CONNECTING:
            for message in self._denial_messages(500, b"Internal Server Error"):
                await self._deliver(message)
        elif state not in (CLOSED, CLOSING):
            code = exc.close_code if isinstance(exc, MalformedMessage) else 1011
            reason = str(exc) if isinstance(exc, MalformedMessage) else "internal error"
            if isinstance(exc, LayerUnavailable):
                reason = "channel layer unavailable"
            await self._deliver({"type": "websocket.close", "code": code, "reason": _reason(reason)})

    def _failure_ending(self, exc: Exception) -> Ending:
        if isinstance(exc, MalformedMessage):
            return Ending("client_error", exc.close_code, exc)
        return Ending("error", 1011, exc)

    async def _teardown(self, ending: Ending) -> None:
        """Leave the lifecycle: exit hooks (innermost first), groups, then ``disconnect(code)``."""
        self._tearing_down = True
        self._release_slot()
        if self.state != CLOSED:
            self._move("fail" if ending.cause in ("error", "client_error") else "disconnect")
        self.close_code = ending.code
        await self._settle()
        await self._leave_groups(self._joined)
        try:
            await self._call("disconnect", ending.code)
        except StopActor:
            pass  # Channels' consumers raise StopConsumer here: the actor is ending anyway
        except Exception as exc:
            logger.error("%r: disconnect() failed: %s: %s", self, type(exc).__name__, exc, exc_info=exc)
        if self._denied_with_response:
            # uvicorn's websockets-sansio logs an ERROR if the app returns before its own
            # transport close ran (Kludex/uvicorn#3138); behind middleware that wraps
            # send() the protocol cannot be told apart, so let the close callback run.
            for _ in range(_DENIAL_SETTLE_TURNS):
                await anyio.lowlevel.checkpoint()

    async def _say_goodbye(self, code: int, reason: str, status: int) -> None:
        """Tell the client the actor is going away (best effort: it may be gone)."""
        state = self.state
        if state == CONNECTING:
            messages = self._denial_messages(status, reason.encode())
        elif state in (CLOSING, CLOSED):
            return
        else:
            messages = [{"type": "websocket.close", "code": code, "reason": _reason(reason)}]
        self._outbox.clear()
        try:
            for message in messages:
                await self._deliver(message)
        except Exception as exc:  # noqa: BLE001 - the client is gone already, or the server is
            logger.debug("%r could not say goodbye: %r", self, exc)

    async def _stopped(self) -> None:
        await self._say_goodbye(1000, "", 403)
        await self._end(Ending("actor", 1000))

    async def _on_slow_client(self, exc: ClientTooSlow) -> None:
        # The teardown first, the close frame last: a client that is not reading may never
        # take it, and some servers (Hypercorn) shield their writes from cancellation.
        code = self.overflow_close_code
        logger.warning("%r gives its client up, closing with %d: %s", self, code, exc)
        state = self.state
        await self._end(Ending("client_error", code, exc))
        await self._cleanup()  # the channel too: the goodbye below may never return
        if state in (CONNECTING, CLOSING, CLOSED):
            return
        with anyio.move_on_after(_SLOW_GOODBYE):
            try:
                await self._deliver({"type": "websocket.close", "code": code, "reason": "too slow: not reading"})
            except Exception as goodbye_exc:  # noqa: BLE001 - the client is gone already, or the server is
                logger.debug("%r could not say goodbye: %r", self, goodbye_exc)

    async def _on_shutdown(self) -> None:
        code = self.shutdown_close_code
        await self._say_goodbye(code, "server shutting down", 503)
        await self._end(Ending("shutdown", code))

    def _close_for_unhandled(self, error: Exception) -> bool:
        if self.state not in self.lifecycle.sources["close"]:
            return False
        logger.warning("%r closes: %s", self, error)
        self.close(self.unhandled_close_code, str(error))
        return True

    def _log_failure(self, exc: Exception) -> None:
        if isinstance(exc, MalformedMessage):
            logger.warning("%r closed: the client sent malformed data: %s", self, exc)
        else:
            super()._log_failure(exc)

    @property
    def supports_denial(self) -> bool:
        """Whether the server lets :meth:`deny` send its own status and body."""
        return supports_denial(self.scope, self._asgi_send)


class _Encoded(Flush):
    """What ``send_json()`` returns when ``encode_json`` is a coroutine (Channels 4's async codec)."""

    __slots__ = ("_coroutine",)

    def __init__(self, coroutine: Coroutine[Any, Any, None]) -> None:
        super().__init__(None)
        self._coroutine = coroutine

    def __await__(self) -> Generator[Any, None, None]:
        return self._coroutine.__await__()


@library_class
class JsonWebsocketActor(WebsocketActor):
    """A WebSocket actor that speaks JSON: override ``receive_json``, call ``send_json``.

    Set ``json_loads``/``json_dumps`` (or override ``decode_json``/``encode_json``) to
    use another codec. A frame that is not valid JSON closes the connection with 1007,
    a binary frame with 1003; both are logged as the client's fault.
    """

    json_loads: ClassVar[Callable[[str], Any]] = staticmethod(json.loads)
    json_dumps: ClassVar[Callable[[Any], str]] = staticmethod(json.dumps)

    acks: ClassVar[bool] = False
    """Answer client frames that carry an ``"ack"`` id with ``receive_json``'s return value
    (see :doc:`/conversations`)."""

    recovery: ClassVar[Recovery | None] = None
    """How sessions recover the group messages they missed (:meth:`join_recovering`)."""

    _client_asks: int = 0  # ask_client() ids handed out

    _async_codec: ClassVar[tuple[bool, bool]] = (False, False)  # encode_json, decode_json are coroutines

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._async_codec = (inspect.iscoroutinefunction(cls.encode_json), inspect.iscoroutinefunction(cls.decode_json))
        if cls.acks:  # ask_client() waits in the mailbox, with or without a channel layer
            cls._needs_mailbox = True

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode a text frame as JSON and pass it to ``receive_json``."""
        if text_data is None:
            size = len(bytes_data or b"")
            msg = f"expected a text frame holding JSON, got a binary frame of {size} bytes"
            raise MalformedMessage(msg, close_code=1003)
        if self._async_codec[1]:
            content = await self._decode_async(text_data)
        else:
            content = self.decode_json(text_data)
        if type(content) is dict and (self.acks or self._client_asks):
            await self._conversation_frame(content)
            return
        await self._call("receive_json", content)

    async def _conversation_frame(self, content: dict[str, Any]) -> None:
        """An ack to answer, a late reply to drop, or a plain frame (``_conversations``, rules 1-2)."""
        ack = content.get(_conversations.ACK, _NO_ID)
        if self.acks and ack is not _NO_ID and _conversations.valid_id(ack):
            result = await self._call("receive_json", content)
            if self.state not in self._receivable:
                return  # the handler closed: no answer
            await self.send(text_data=_conversations.answer_frame(self, ack, result))
            return
        reply = content.get(_conversations.REPLY)
        if type(reply) is int and 0 < reply <= self._client_asks:
            logger.debug("%r dropped the client's reply to ask %d: no ask_client() waits for it", self, reply)
            return
        await self._call("receive_json", content)

    async def ask_client(self, data: Any, *, timeout: float = 10.0) -> Any:
        """Send ``{"ask": id, "data": data}`` to the client and return its reply's ``result``.

        Raises :class:`~interlock.actors.AskTimeout` after *timeout* seconds,
        :class:`~interlock.actors.AskFailed` if the client replied with an error,
        :class:`~interlock.actors.ClientGone` if it left. Meanwhile this actor's other
        events wait in its mailbox (see :doc:`/conversations`).
        """
        return await _conversations.ask_client(self, data, timeout)

    async def join_recovering(self, group: str, *, recovery: Recovery | None = None) -> Recovered:
        """Join *group* and hand over what this client missed while it was away.

        The client presents the token of its last session and the last offset it saw
        (query parameters ``recover`` and ``offset``); the messages after it reach their
        handlers first, in order, then live ones, each once. Sends the client its new
        session (``{"interlock": "session", ...}``) and returns what happened. The layer
        must keep *group*'s history (``history=GroupHistory(...)``). Called from
        ``connect()`` before ``accept()``, it accepts once the actor is in the group, so
        the client misses nothing sent after its handshake. See :doc:`/conversations`.
        """
        return await _conversations.join_recovering(self, group, recovery)

    async def _decode_async(self, text_data: str) -> Any:
        try:
            return await self.decode_json(text_data)  # an async override returns an awaitable
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, MalformedMessage):
                raise
            msg = f"malformed JSON: {exc}"
            raise MalformedMessage(msg, close_code=1007) from exc

    @inline
    def receive_json(self, content: Any) -> Any:
        """Called with each decoded JSON message (``def`` or ``async def``).

        With ``acks = True``, what it returns answers a frame that carried an ``"ack"`` id.
        """
        return None

    def send_json(self, content: Any, close: bool | int = False) -> Flush:
        """Encode *content* as JSON and send it as a text frame.

        An ``async def encode_json`` override (Channels 4's pattern) works too; then the
        result must be awaited.
        """
        if self._async_codec[0]:
            return _Encoded(self._send_encoded(content, close))
        return self.send(text_data=self.encode_json(content), close=close)

    async def _send_encoded(self, content: Any, close: bool | int) -> None:
        text: str = await self.encode_json(content)  # type: ignore[misc]  # an async override
        await self.send(text_data=text, close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        """Decode a text frame; raise :class:`MalformedMessage` if it is not JSON.

        Nesting deeper than the interpreter can decode counts as malformed too.
        """
        try:
            content = cls.json_loads(text_data)
        except (ValueError, RecursionError) as exc:
            msg = f"malformed JSON: {exc}"
            raise MalformedMessage(msg, close_code=1007) from exc
        if "\\u" in text_data and _SURROGATE_ESCAPE.search(text_data):
            _refuse_lone_surrogates(content)
        return content

    @classmethod
    def encode_json(cls, content: Any) -> str:
        """Encode *content*; a ``TypeError`` names what could not be encoded."""
        return cls.json_dumps(content)
