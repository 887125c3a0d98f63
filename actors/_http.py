"""HTTP actors: one actor per request, its response checked against a lifecycle table.

Theory of operation
-------------------
The table is :data:`interlock.dsl.http.HTTP_LIFECYCLE` (``receiving → responding →
streaming → done``, and ``gone`` when the client leaves first); every operation checks it
*when called* and raises :class:`~interlock.dsl.IllegalTransition` naming the state.

* **The request.** ``http.request`` events are read into one body (at most
  ``max_body_size`` bytes: a ``Content-Length`` or a body beyond it is answered 413, the
  client's fault, no traceback), or handed chunk by chunk to ``receive_body()`` when
  ``stream_body`` is set; then ``handle(body)`` runs, once.
* **The response may outlive** ``handle()``. With a channel layer (or ``watch_client``, or
  a timer) the actor runs its mailbox (one client pump task, as a WebSocket actor with a
  layer does), so a ``handle()`` that returns with the response unfinished leaves the actor
  alive: layer messages (its channel, its groups) and timers reach it until the response
  is finished or the client leaves. Layer messages that arrive before ``handle()`` ran wait
  for it (at most ``mailbox_size`` of them). Without any (direct mode) the actor reads the
  server's events itself, one at a time: the cheapest request (``bench/http_inprocess.py``:
  8.2 µs against raw ASGI's 1.1; with the pump task and the mailbox it was 4 to 5 times
  that), and a ``handle()`` that leaves the response unfinished fails at once, since
  nothing could finish it.
* **The client leaving** is ``http.disconnect``: the pump sees it first and cancels
  ``handle()`` if it is still running with the response unfinished (a ``handle()`` looping
  over ``send_body()``, Channels' SSE pattern, ends there); the actor then ends as ``gone``.
  A send after that raises :class:`~interlock.actors.ClientGone` (servers drop HTTP sends
  to a departed client silently).
* **The end, once.** A finished response (``done``) ends the actor after the handler that
  finished it returns; teardown runs through :meth:`BaseActor._end`: ``disconnect()``
  once, groups left, the channel closed.
* **Failures.** A handler that raises before the headers went out answers 500 (an
  :class:`HttpError` answers its own status, logged without a traceback); after them the
  stream is cut (the app returns with the response unfinished, the server closes the
  connection) and the error is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from threading import get_ident
from typing import Any, ClassVar, Final

import anyio
from interlock.dsl import Lifecycle
from interlock.dsl.http import DONE, GONE, HTTP_LIFECYCLE, LIVE, RECEIVING, RESPONDING, STREAMING, render_lifecycle

from ._asgi import Headers, encode_headers
from ._base import BaseActor, Flush, inline, library_class, sending_found_client_gone
from ._ending import Ending
from ._errors import ClientGone
from ._mailbox import CLIENT
from ._types import Message, Receive

__all__ = ["HttpActor", "HttpError", "HttpExchange", "RequestTooLarge"]

logger = logging.getLogger("interlock.actors")

_JSON_TYPE: Final = (b"content-type", b"application/json")
_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """Raise from a handler to answer with *status* and *detail* (before the headers went out).

    It is the application's deliberate answer, not a failure: logged at INFO, without a
    traceback. After the headers went out it can only cut the stream, as any error does.
    """

    def __init__(self, status: int, detail: str | None = None, headers: Headers | None = None) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            msg = f"HttpError(status={status!r}): an error status is an int from 400 to 599"
            raise ValueError(msg)
        self.status = status
        self.detail = detail if detail is not None else _REASONS.get(status, "Error")
        self.headers = headers
        super().__init__(f"{status} {self.detail}")


class RequestTooLarge(HttpError):
    """The client sent (or announced) a body over ``max_body_size``: the client's fault, 413."""


def _check_status(status: object, what: str) -> int:
    if type(status) is not int or not 100 <= status <= 599:
        msg = f"{what}(status={status!r}): a status is an int from 100 to 599"
        raise ValueError(msg)
    return status


def _body_bytes(body: object, what: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        msg = f"{what}() takes bytes, not str: encode it first ({what}(text.encode()))"
        raise TypeError(msg)
    msg = f"{what}() takes bytes, not {type(body).__name__}"
    raise TypeError(msg)


class _Diagram:
    """``HttpActor.diagram(fmt)``: the HTTP lifecycle; on a live actor, its state highlighted."""

    def __get__(self, actor: HttpActor | None, owner: type[HttpActor]) -> Callable[..., str]:
        highlight = actor.response_state if actor is not None else None

        def diagram(fmt: str = "mermaid") -> str:
            """Render the HTTP lifecycle as ``"mermaid"``, ``"dot"`` or ``"svg"`` text."""
            return render_lifecycle(owner.__qualname__, fmt, highlight)

        return diagram


@library_class
class HttpExchange(BaseActor):
    """What every HTTP actor shares: the request, the checked response, the client's leaving.

    Subclass :class:`HttpActor` (or :class:`~interlock.actors.HttpStateActor`) instead.
    """

    response_state: str
    """The response's state: ``receiving``, ``responding``, ``streaming``, ``done`` or ``gone``."""

    status: int | None
    """The status sent, once the headers went out."""

    scope_types: ClassVar[frozenset[str] | None] = frozenset({"http"})

    max_body_size: ClassVar[int | None] = 1 << 20
    """The largest request body read (bytes; 1 MiB by default, None: no limit). A larger
    ``Content-Length``, or a body that grows past it, is answered 413 before ``handle()``,
    logged as the client's fault (WARNING, no traceback)."""

    methods: ClassVar[frozenset[str] | None] = None
    """The request methods the actor answers (None: any). Another is answered ``405 Method
    Not Allowed`` with an ``Allow`` header, before the body is read, logged at INFO."""

    stream_body: ClassVar[bool] = False
    """Hand the request body to ``receive_body(chunk, more_body)`` chunk by chunk, then call
    ``handle(b"")``, instead of reading it whole first."""

    watch_client: ClassVar[bool] = False
    """Read the server's events beside ``handle()`` (a pump task per request), so a client
    that leaves while ``handle()`` still runs cancels it: set it for a ``handle()`` that loops
    over ``send_body()``. On for :class:`SseActor`, :class:`LongPollActor` and Channels'
    ``AsyncHttpConsumer``; an actor with a channel layer or a timer always reads them so.
    Without it (no layer) ``handle()`` runs alone and a request costs least."""

    _tearing_down: bool = False
    _left: bool = False  # the server said http.disconnect
    _handled: bool = False  # handle() ran
    _running: anyio.CancelScope | None = None  # handle(), while it runs: the client's leaving cancels it
    _delivered: int = 0  # response messages handed to the server
    _default_disconnect: ClassVar[bool] = True  # disconnect() is the library's: nothing to call
    _waits: ClassVar[bool] = False  # the class overrides _request_handled()
    _early: list[Message] | None = None  # layer messages that came before handle()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._needs_mailbox = cls.watch_client
        cls._default_disconnect = cls.disconnect is HttpExchange.disconnect
        cls._waits = cls._request_handled is not HttpExchange._request_handled

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        if self.watch_client and not self._needs_mailbox:
            self.__dict__["_needs_mailbox"] = True  # per instance: as_asgi(watch_client=True)
        self.response_state = RECEIVING
        self.status = None
        self._chunks: list[bytes] = []
        self._received = 0

    # -- the request -------------------------------------------------------------------------

    @property
    def method(self) -> str:
        """The request method (``GET``, ``POST`` ...)."""
        return str(self.scope.get("method", "GET"))

    def header(self, name: str) -> str | None:
        """The first value of request header *name* (any case), decoded as latin-1, or None."""
        key = name.lower().encode("latin-1")
        for header, value in self.scope.get("headers") or ():
            if header.lower() == key:
                return bytes(value).decode("latin-1")
        return None

    # -- handlers users override ---------------------------------------------------------------

    # Typed ``-> Awaitable[None] | None`` so overrides may be ``def`` (a worker thread) or ``async def``.

    def handle(self, body: bytes) -> Awaitable[None] | None:
        """Called once the request is in, with its body (``b""`` when ``stream_body`` is set)."""
        msg = f"{type(self).__qualname__} must define handle(body) to answer the request"
        raise NotImplementedError(msg)

    @inline
    def receive_body(self, chunk: bytes, more_body: bool) -> Awaitable[None] | None:
        """With ``stream_body``: called for each chunk of the request body, in order."""
        return None

    @inline
    def disconnect(self) -> Awaitable[None] | None:
        """Called once when the actor ends: response done, client gone, failure or shutdown."""
        return None

    # -- operations -------------------------------------------------------------------------------

    def _step(self, trigger: str) -> str:
        """Move the response's lifecycle (raises ``IllegalTransition`` naming the state)."""
        self.response_state = HTTP_LIFECYCLE.next(self.response_state, trigger)
        return self.response_state

    def _dropped(self, what: str) -> Flush | None:
        """During the teardown a send to the finished or departed response is dropped."""
        if self._tearing_down and self.response_state not in LIVE:
            logger.debug("%r dropped %s: the request is ending (%s)", self, what, self.ending)
            return Flush(None)
        return None

    def send_headers(self, status: int = 200, headers: Headers | None = None) -> Flush:
        """Start the response: *status* and *headers* (a mapping or pairs of str/bytes)."""
        dropped = self._dropped("send_headers()")
        if dropped is not None:
            return dropped
        status = _check_status(status, "send_headers")
        encoded = encode_headers(headers)
        self._step("send_headers")
        self.status = status
        return self._emit({"type": "http.response.start", "status": status, "headers": encoded})

    def send_body(self, body: bytes = b"", more_body: bool = False) -> Flush:
        """Send a part of the body; the last one has ``more_body=False`` and ends the response."""
        if self.response_state != STREAMING:
            dropped = self._dropped("send_body()")
            if dropped is not None:
                return dropped
            HTTP_LIFECYCLE.next(self.response_state, "send_body")  # raises, naming the state
        data = _body_bytes(body, "send_body")
        if not more_body:
            self._step("finish")
        return self._emit({"type": "http.response.body", "body": data, "more_body": bool(more_body)})

    def send_response(self, status: int, body: bytes, headers: Headers | None = None) -> Flush:
        """Send a whole response; ``Content-Length`` is added unless *headers* give one."""
        data = body if type(body) is bytes else _body_bytes(body, "send_response")
        if headers is None:
            return self._respond(status, data, [(b"content-length", str(len(data)).encode())])
        encoded = encode_headers(headers)
        if not any(name == b"content-length" for name, _ in encoded):
            encoded.append((b"content-length", str(len(data)).encode()))
        return self._respond(status, data, encoded)

    def send_json(self, content: Any, status: int = 200, headers: Headers | None = None) -> Flush:
        """Send *content* encoded as JSON (``application/json``), a whole response."""
        data = json.dumps(content).encode()
        length = (b"content-length", str(len(data)).encode())
        if headers is None:
            return self._respond(status, data, [_JSON_TYPE, length])
        encoded = encode_headers(headers)
        if not any(name == b"content-type" for name, _ in encoded):
            encoded.append(_JSON_TYPE)
        if not any(name == b"content-length" for name, _ in encoded):
            encoded.append(length)
        return self._respond(status, data, encoded)

    def _respond(self, status: int, data: bytes, headers: list[tuple[bytes, bytes]]) -> Flush:
        """A whole response: *headers* are encoded and hold its ``Content-Length``."""
        dropped = self._dropped("send_response()")
        if dropped is not None:
            return dropped
        if type(status) is not int or not 100 <= status <= 599:
            _check_status(status, "send_response")
        self._step("send_response")
        self.status = status
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if get_ident() != self._loop_thread:  # a sync handler, in a worker thread
            self._emit(start)
            return self._emit({"type": "http.response.body", "body": data, "more_body": False})
        self._outbox += (start, {"type": "http.response.body", "body": data, "more_body": False})
        return Flush(self)

    # -- the runtime ------------------------------------------------------------------------------

    async def _started(self) -> None:
        await self._join_groups()

    def _lost_ending(self) -> Ending:
        return Ending("lost", self.status or 0)

    async def _pump_client(self, receive: Receive, terminal: frozenset[str]) -> None:
        """Feed the server's events to the mailbox; the client's leaving cancels a running handler."""
        mailbox = self._mailbox
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                self._left = True
                running = self._running
                if running is not None and self.response_state in LIVE:
                    running.cancel()  # the handler cannot finish the response any more
                await mailbox.put((CLIENT, message))
                return
            await mailbox.put((CLIENT, message))

    async def _deliver(self, message: Message) -> None:
        if self._left:
            self._outbox.clear()
            msg = f"{self!r} could not send {message.get('type')!r}: the client is gone"
            raise ClientGone(msg)
        self._delivered += 1
        try:
            await self._asgi_send(message)  # type: ignore[misc]  # set while running
        except Exception as exc:  # as BaseActor._deliver: the client is gone
            if not sending_found_client_gone(exc):
                raise
            self._outbox.clear()
            msg = f"{self!r} could not send {message.get('type')!r}: the client is gone ({exc!r})"
            raise ClientGone(msg) from exc

    async def _handle(self, kind: int, payload: Any) -> bool:
        """Handle one mailbox item; end the actor once the response is done."""
        stop = await super()._handle(kind, payload)
        if not stop and not self._ended and self.response_state == DONE:
            await self._end(Ending("actor", self.status or 0))
            return True
        return stop

    async def _on_client_event(self, message: Message) -> bool:
        kind = message["type"]
        if kind == "http.request":
            if self.response_state != RECEIVING or self._handled:
                logger.debug("%r ignored more request body: state is %s", self, self.response_state)
                return False
            await self._read(message)
            return False
        if kind == "http.disconnect":
            await self._end(Ending("client", self.status or 0))
            return True
        logger.warning("%r ignored an unexpected ASGI event %r", self, kind)
        return False

    async def _read(self, message: Message) -> None:
        allowed = self.methods
        if allowed is not None and not self._received and self.method not in allowed:
            listed = ", ".join(sorted(allowed))
            raise HttpError(405, f"{self.method} is not allowed here; use {listed}", {"allow": listed})
        limit = self.max_body_size
        chunk = message.get("body") or b""
        more = bool(message.get("more_body", False))
        if limit is not None and more and not self._received:  # more is coming: what was announced?
            announced = self.header("content-length")
            if announced is not None and announced.isdigit() and int(announced) > limit:
                msg = f"the request body of {int(announced):,} bytes is over the limit of {limit:,} bytes"
                raise RequestTooLarge(413, msg)
        self._received += len(chunk)
        if limit is not None and self._received > limit:
            msg = f"the request body is over the limit of {limit:,} bytes (max_body_size)"
            raise RequestTooLarge(413, msg)
        if self.stream_body:
            await self._call("receive_body", bytes(chunk), more)
        elif chunk:
            self._chunks.append(bytes(chunk))
        if more:
            return
        body = b"".join(self._chunks)
        self._chunks = []
        if self.response_state == RECEIVING:
            self._step("request")
        elif self.response_state not in LIVE:
            return  # receive_body() answered already
        self._handled = True
        if self._receive is not None:  # direct mode: nothing reads the server's events meanwhile
            await self._answer(body)
            if self.response_state in (RESPONDING, STREAMING):
                msg = (
                    f"handle() returned with the response unfinished ({self.response_state}), and nothing can "
                    "finish it: the actor has no channel layer and no timer; finish the response in handle(), "
                    "or give the actor a layer (ProtocolTypeRouter(..., channel_layer=...)) to feed it"
                )
                raise RuntimeError(msg)
        else:
            with anyio.CancelScope() as scope:  # the client's leaving cancels it (a handler that loops)
                self._running = scope
                await self._answer(body)
            self._running = None
            if scope.cancelled_caught:
                return  # the client left: its http.disconnect is next in the mailbox
        if self._waits:
            await self._request_handled()
        early = self._early
        if early is not None:
            self._early = None
            for held in early:
                if self.response_state not in LIVE:
                    break
                await super().dispatch(held)

    async def _answer(self, body: bytes) -> None:
        """The request is in: answer it (``handle(body)``; state actors enter their states first)."""
        await self._call("handle", body)

    async def _request_handled(self) -> None:
        """Called once ``handle()`` returned (subclasses start their waiting here)."""

    async def dispatch(self, message: Message) -> None:
        """Call the layer message's handler; before ``handle()`` ran, hold it until then."""
        if self._handled:
            await super().dispatch(message)
            return
        early = self._early
        if early is None:
            early = self._early = []
        if len(early) < self.mailbox_size:
            early.append(message)
        else:
            logger.warning(
                "%r dropped layer message %r: %d are held until handle() runs", self, message.get("type"), len(early)
            )

    def _accepts_layer_messages(self) -> bool:
        return self.response_state in LIVE

    # -- failure and ending --------------------------------------------------------------------------

    def _log_failure(self, exc: Exception) -> None:
        if isinstance(exc, RequestTooLarge):
            logger.warning("%r refused the request: %s", self, exc.detail)
        elif isinstance(exc, HttpError) and self.response_state not in (STREAMING, DONE, GONE):
            logger.info("%r answered %s", self, exc)
        elif self.response_state == STREAMING:
            logger.error(
                "%r failed after the headers went out, the response is cut: %s: %s",
                self,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        else:
            super()._log_failure(exc)

    async def _on_failure(self, exc: Exception) -> None:
        if self.response_state not in (RECEIVING, RESPONDING) or self._left:
            return  # streaming: the stream is cut (the app returns with it unfinished)
        if isinstance(exc, HttpError):
            status, detail, headers = exc.status, exc.detail, exc.headers
        else:
            status, detail, headers = 500, "Internal Server Error", None
        encoded = encode_headers(headers)
        encoded.append((b"content-type", b"text/plain; charset=utf-8"))
        self.send_response(status, f"{detail}\n".encode(), encoded)
        await self._flush()

    def _ending_of_disconnect(self, message: Message, exc: BaseException | None = None) -> Ending:
        return Ending("client", self.status or 0, exc)

    def _failure_ending(self, exc: Exception) -> Ending:
        if isinstance(exc, RequestTooLarge):
            return Ending("client_error", 413, exc)
        if isinstance(exc, HttpError):
            return Ending("actor", exc.status, exc)
        return Ending("error", 500, exc)

    async def _end_response(self, status: int, text: str) -> None:
        """End the response the actor can no longer serve (best effort: the client may be gone)."""
        self._outbox.clear()
        try:
            if self.response_state in (RECEIVING, RESPONDING):
                self.send_response(status, text.encode(), {"content-type": "text/plain; charset=utf-8"})
            elif self.response_state == STREAMING:
                self.send_body(b"", more_body=False)
            if self._outbox:
                await self._flush()
        except Exception as exc:  # noqa: BLE001 - the client is gone already, or the server is
            logger.debug("%r could not end its response: %r", self, exc)

    async def _stopped(self) -> None:
        if self.response_state in (RECEIVING, RESPONDING):
            logger.warning("%r stopped (StopActor) without answering: 500", self)
        await self._end_response(500, "Internal Server Error\n")
        await self._end(Ending("actor", self.status or 0))

    async def _on_shutdown(self) -> None:
        await self._end_response(503, "server shutting down\n")
        await self._end(Ending("shutdown", self.status or 503))

    async def _teardown(self, ending: Ending) -> None:
        """Leave the lifecycle, the groups, then call ``disconnect()`` once (shielded)."""
        self._tearing_down = True
        self._running = None
        if self.response_state in LIVE:
            self._step("disconnect" if ending.by_client or self._left else "fail")
        if self._receive is not None:  # direct mode: no handler scope is ever cancelled
            await self._finish_teardown(ending)
            return
        with anyio.CancelScope(shield=True):  # a cancelled handle()'s scope must not cut the teardown
            await self._finish_teardown(ending)

    async def _finish_teardown(self, ending: Ending) -> None:
        if self._moves:
            await self._settle()
        if self._joined:
            await self._leave_groups(self._joined)
        if self._default_disconnect:
            return
        try:
            await self._call("disconnect")
        except Exception as exc:
            logger.error("%r: disconnect() failed: %s: %s", self, type(exc).__name__, exc, exc_info=exc)


@library_class
class HttpActor(HttpExchange):
    """An actor for one HTTP request: override ``handle(body)`` (``def`` or ``async def``).

    Answer with :meth:`send_response` (or :meth:`send_json`), or stream with
    :meth:`send_headers` and :meth:`send_body`; a response left unfinished when
    ``handle()`` returns keeps the actor alive, fed by its mailbox (layer messages,
    timers), until it is finished or the client leaves. ``disconnect()`` runs once at the
    end, whatever the end was (``self.ending`` says).
    """

    lifecycle: ClassVar[Lifecycle] = HTTP_LIFECYCLE
    """The compiled HTTP lifecycle shared by every instance."""

    diagram = _Diagram()
    """Draw the lifecycle: ``HttpActor.diagram("mermaid")`` (also ``"dot"``, ``"svg"``)."""

    @property
    def state(self) -> str:
        """The lifecycle state (the response's): ``receiving``, ``responding``, ``streaming``, ``done``, ``gone``."""
        return self.response_state
