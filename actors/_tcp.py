"""Plain TCP: a line-based server whose every connection is an actor with a ``tcp`` scope.

Theory of operation
-------------------
:class:`TcpServer` listens (anyio, so asyncio and trio) and runs the app once per
connection under ``{"type": "tcp", "client": (host, port), "server": (host, port),
"channel_layer": layer}``. The app's ``receive()`` gives ``{"type": "tcp.connect"}``,
then ``{"type": "tcp.line", "text": str}`` per line (``\\n`` or ``\\r\\n`` ended, the end
removed), and last ``{"type": "tcp.disconnect", "code": int, "reason": str}``; its
``send()`` takes ``{"type": "tcp.send", "text": str}`` (a newline is added) and
``{"type": "tcp.close", "reason": str}`` (the reason goes out as a last line).

**Limits belong to the server**, as a WebSocket's frame size belongs to uvicorn; each
breach is the client's fault: one ``error: …`` line to it, the connection closed, the
actor told with the code below (WebSocket's numbers, for one vocabulary), nothing else
touched:

* a line over ``max_line`` bytes (4096 by default, newline excluded): ``1009``;
* a line that is not UTF-8: ``1007``;
* more than ``max_lines_per_second`` lines a second (20, in bursts up to ``burst``, 40): ``1008``;
* silence for ``idle_timeout`` seconds (off by default): ``1001``;
* past ``max_connections`` (1000), a new client gets ``error: server full`` and is closed.

The socket is read only once the app took every line read before, so a client that sends
faster than its actor handles is held back by TCP itself; the rate limit is for the ones
that try anyway.

**No task between the socket and the actor.** There is no reader task: the app's
``receive()`` reads the socket itself when no line waits (with a layer, the actor's
client pump is the one that calls it), decodes and splits a read's lines at once, and
hands them out one per call without a trip through the event loop (every 64th lets the
other connections run). A ``LineActor`` served by TcpServer directly (no layer, no
middleware) takes the rest of a read's lines from that queue itself after handling the
first, one ``receive_line()`` each, up to the same 64th: no ``receive()`` per line.
What the app sends is written from its own task at once (a non-blocking
``send`` on the socket, no await) when no other line waits for it; while
lines of a burst wait, its answers pile up and leave together with the last one's, or
through the writer task as soon as the actor waits on something else. A round trip
therefore costs one wait on the socket and no task switch; ``LineActor.send_line()``
hands the line to the connection directly when TcpServer's own ``send`` serves it (a
middleware that wraps ``send`` sees every message). Measured in ``bench/tcp_echo.py``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
import time
from asyncio.trsock import TransportSocket
from collections import deque
from collections.abc import Callable, Generator, Mapping
from threading import get_ident
from typing import Any, ClassVar, Final

import anyio
import anyio.abc
import anyio.lowlevel
from interlock.layers import GroupLayer

from ._base import BaseActor, Flush, inline, library_class
from ._ending import EndCause, Ending
from ._errors import StopActor
from ._inspect_registry import TAP
from ._mailbox import CLIENT
from ._types import LAYER_KEY, ASGIApp, Message, Receive, Scope, Send

__all__ = ["LineActor", "TcpServer"]

logger = logging.getLogger("interlock.actors.tcp")

_NORMAL, _GOING_AWAY, _LOST, _INVALID, _POLICY, _TOO_BIG = 1000, 1001, 1006, 1007, 1008, 1009
_TURN: Final = 64  # lines the app takes from a burst before other tasks get a turn
_LAST_WORDS: Final = 1.0  # seconds an error line may take to go out before the socket is closed anyway
_HIGH_WATER: Final = 64 * 1024  # bytes waiting past which send_line() waits for the client (one line may pass it)
_encode: Final = str.encode


class _Sent(Flush):
    """What ``send_line()`` returns once the line is with the connection already: awaiting it is free."""

    __slots__ = ()

    # Awaited, an empty iterator: it returns None at once. A bound builtin, not a Python
    # method: the type's __await__ slot calls it with no argument, and no frame is made.
    __await__: Callable[[], Generator[Any, None, None]] = ().__iter__  # type: ignore[assignment]


_SENT: Final = _Sent(None)


class _Violation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Connection:
    """One client: its stream, the app's receive() and send(), the limits.

    No reader task: ``receive()`` reads the socket itself when no line waits (so a line
    reaches the actor in the task that asked for it, with no hop through another task),
    and the actor's own lines are written from its task at once (:meth:`_push`) when no
    other line waits for it; while lines wait (a burst) they pile up and leave together.
    """

    def __init__(self, server: TcpServer, stream: anyio.abc.SocketStream) -> None:
        self.server = server
        self.stream = stream
        # Read, not yet taken: a line is its text (a str, made a tcp.line message when
        # receive() hands it out), the other events are their messages.
        self.events: deque[Message | str] = deque([{"type": "tcp.connect"}])
        self.buffer = bytearray()  # the start of a line whose end has not come yet
        self.taken = 0  # lines taken since the app last let other tasks run
        self.pending: _Violation | None = None  # a bad line read after the lines that wait
        self.finished = False  # the last event (tcp.disconnect) is queued
        self.closed = False
        self.open = True  # neither closed nor failed: what send_line() asks before writing directly
        self.ended = False
        self.writing = anyio.Lock()  # the awaited sends: the actor's lines and the server's last words
        self.outgoing = bytearray()
        self.have_output: anyio.Event | None = None  # set while the writer waits for output
        self.drained = anyio.Event()
        self.failed: BaseException | None = None
        self.tokens = float(server.burst)
        self.stamp = time.monotonic()  # the rate limit runs on real time, read once per chunk
        self.socket = _raw_socket(stream)  # None: every write goes through the stream

    async def receive(self) -> Message:
        events = self.events
        if events:
            self.taken += 1
            if self.taken >= _TURN:  # a long burst: let the other connections have their turn
                self.taken = 0
                if self.outgoing:
                    self._write_now()
                await anyio.lowlevel.checkpoint()
            event = events.popleft()
            return {"type": "tcp.line", "text": event} if event.__class__ is str else event  # type: ignore[return-value]
        self.taken = 0
        return await self._read()

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "tcp.send":
            text = message.get("text")
            if not isinstance(text, str):
                msg = f"tcp.send takes a str 'text', not {text!r}"
                raise TypeError(msg)
            await self._write(text + "\n", more=self.events)
        elif kind == "tcp.close":
            reason = message.get("reason")
            if reason:
                await self._last_words(str(reason))
            await self._close_and_tell(_NORMAL, "closed by the server")
        else:
            msg = f"a TCP app sends tcp.send or tcp.close, not {kind!r}"
            raise ValueError(msg)

    def _push(self, text: str, more: object) -> None:
        """Queue *text*; write what waits now unless *more* is truthy (lines wait : they leave together).

        ``LineActor.send_line()`` does the same inline.
        """
        self.outgoing += text.encode("utf-8")
        if not more:
            self._write_now()
        if self.outgoing and self.have_output is not None:
            self._wake_writer()

    def _wake_writer(self) -> None:
        """The writer sleeps and output waits: wake it, it writes what is left."""
        waiting = self.have_output
        if waiting is not None:
            self.have_output = None
            waiting.set()

    def _write_now(self) -> None:
        """Write what waits to the socket without waiting; leave what it does not take (for the writer)."""
        sock = self.socket
        if sock is None or self.writing.locked():  # an awaited send is under way: the rest follows it
            return
        try:
            sent = sock.send(self.outgoing)
        except BlockingIOError:
            return
        except OSError as exc:  # the client is gone: the next write says so
            self.failed = exc
            self.open = False
            self.outgoing.clear()
            self.drained.set()
            return
        del self.outgoing[:sent]

    async def _write(self, text: str, *, more: object) -> None:
        """Queue *text* (see :meth:`_push`); wait only while over ``_HIGH_WATER`` bytes wait already."""
        if self.closed:
            msg = "the connection is closed"
            raise ConnectionResetError(msg)
        if self.failed is not None:
            raise ConnectionResetError(str(self.failed) or "the client is gone") from self.failed
        self._push(text, more)
        while len(self.outgoing) > _HIGH_WATER and self.failed is None and not self.closed:
            self.drained = anyio.Event()
            await self.drained.wait()
        if self.failed is not None:
            raise ConnectionResetError(str(self.failed) or "the client is gone") from self.failed

    async def _send(self, data: bytes) -> None:
        """One awaited send (the writing lock held); the socket is written directly again only once one completed."""
        done = False
        try:
            await self.stream.send(data)
            done = True
        finally:
            if not done:  # the stream may hold part of it: from now on everything goes through the stream
                self.socket = None

    async def write_loop(self) -> None:
        """Write what the actor's task left (a burst's lines, what the socket did not take at once)."""
        while True:
            if not self.outgoing:
                self.have_output = waiting = anyio.Event()
                await waiting.wait()
            try:
                async with self.writing:
                    data, self.outgoing = bytes(self.outgoing), bytearray()
                    if data:
                        await self._send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                self.failed = exc
                self.open = False
                self.drained.set()
                return
            if not self.outgoing:
                self.drained.set()

    async def flush(self) -> None:
        """Write what waits now (before last words or a close)."""
        if self.outgoing and self.failed is None and not self.closed:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                async with self.writing:
                    data, self.outgoing = bytes(self.outgoing), bytearray()
                    await self._send(data)

    async def _last_words(self, text: str) -> None:
        with anyio.move_on_after(_LAST_WORDS), anyio.CancelScope(shield=True):
            await self.flush()
            if not self.closed:
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    async with self.writing:
                        await self._send((text + "\n").encode("utf-8"))

    async def _close_and_tell(self, code: int, reason: str) -> None:
        if not self.closed:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(_LAST_WORDS):
                    await self.flush()
                self.closed = True
                self.open = False
                await self.stream.aclose()
        self._tell_end(code, reason)

    def _tell_end(self, code: int, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self.finished = True
        self.events.append({"type": "tcp.disconnect", "code": code, "reason": reason})

    def _spend(self, now: float) -> None:
        server = self.server
        self.tokens = min(float(server.burst), self.tokens + (now - self.stamp) * server.max_lines_per_second)
        self.stamp = now
        if self.tokens < 1.0:
            raise _Violation(_POLICY, f"more than {server.max_lines_per_second:g} lines a second")
        self.tokens -= 1.0

    async def _read(self) -> Message:
        """No line waits: read until one does, or until the connection ends (then ``tcp.disconnect``)."""
        events = self.events
        while not events:
            if self.finished:  # the last event was taken: nothing more will come
                await anyio.sleep_forever()
            if self.pending is not None:  # the lines before the bad one were taken
                violation, self.pending = self.pending, None
                await self._refuse(violation)
                continue
            if self.closed:  # the server closed it (tcp.close): the app was told already
                self._tell_end(_NORMAL, "closed by the server")
                continue
            if self.outgoing:
                self._write_now()
            try:
                await self._read_chunk()
            except _Violation as exc:
                await self._refuse(exc)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                if self.closed:
                    self._tell_end(_NORMAL, "closed by the server")
                    continue
                clean = isinstance(exc, anyio.EndOfStream)
                await self._close_and_tell(
                    _NORMAL if clean else _LOST, "the client closed the connection" if clean else repr(exc)
                )
        event = events.popleft()
        return {"type": "tcp.line", "text": event} if event.__class__ is str else event  # type: ignore[return-value]

    async def _refuse(self, exc: _Violation) -> None:
        logger.info("tcp client %s:%s: %s; closing (%d)", *self._peer(), exc.reason, exc.code)
        await self._last_words(f"error: {exc.reason}; closing")
        await self._close_and_tell(exc.code, exc.reason)

    async def _read_chunk(self) -> None:
        """Read one chunk and queue its complete lines (a bad one: ``self.pending``, after the lines before it)."""
        server = self.server
        limit = server.max_line
        if server.idle_timeout is None:
            chunk = await self.stream.receive(65536)
        else:
            with anyio.move_on_after(server.idle_timeout) as idle:
                chunk = await self.stream.receive(65536)
            if idle.cancelled_caught:
                raise _Violation(_GOING_AWAY, f"silent for idle_timeout ({server.idle_timeout:g} s)")
        now = time.monotonic()
        buffer = self.buffer
        buffer += chunk
        end = buffer.rfind(b"\n")
        if end >= 0:
            block = bytes(buffer[:end])
            del buffer[: end + 1]
            try:
                self._lines(block, limit, now)
            except _Violation as exc:
                if not self.events:
                    raise
                self.pending = exc  # the lines before it go first
                return
        if len(buffer) > limit + 1:
            raise _Violation(_TOO_BIG, f"a line over max_line ({limit} bytes)")

    def _lines(self, block: bytes, limit: int, now: float) -> None:
        """Queue the complete lines of a chunk (*block*: up to its last newline, excluded), in order.

        The common case costs one decode and one split for the whole block: ``\\n`` is
        never part of a UTF-8 sequence, so the block is UTF-8 exactly when every line is.
        A block with a bad or oversize line goes line by line (:meth:`_line`), so the lines
        before the bad one reach the actor and the error names the first bad line.
        """
        try:
            text: str | None = block.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        lines = None if text is None else text.split("\n")
        if text is not None and lines is not None and len(block) > limit:  # maybe a line over max_line
            # Exact, in bytes: an ASCII text has as many characters as bytes (isascii() reads a flag).
            longest = max(map(len, lines)) if text.isascii() else max(map(len, block.split(b"\n")))
            if longest > limit:
                lines = None
        if lines is None:
            for raw in block.split(b"\n"):
                self._line(raw[:-1] if raw.endswith(b"\r") else raw, limit, now)
            return
        if b"\r" in block:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        server = self.server
        self.tokens = min(float(server.burst), self.tokens + (now - self.stamp) * server.max_lines_per_second)
        self.stamp = now
        allowed = int(self.tokens)  # the lines the bucket pays for; the next one breaks the limit
        if allowed >= len(lines):
            self.tokens -= len(lines)
            self.events.extend(lines)
            return
        self.tokens -= allowed
        self.events.extend(lines[:allowed])
        raise _Violation(_POLICY, f"more than {server.max_lines_per_second:g} lines a second")

    def _line(self, raw: bytes, limit: int, now: float) -> None:
        if len(raw) > limit:
            raise _Violation(_TOO_BIG, f"a line over max_line ({limit} bytes)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"a line that is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); send UTF-8 text"
            raise _Violation(_INVALID, reason) from exc
        self._spend(now)
        self.events.append(text)

    def _peer(self) -> tuple[str, int]:
        try:
            address: Any = self.stream.extra(anyio.abc.SocketAttribute.remote_address)  # noqa: S610 - anyio's
            host, port = address[0], address[1]
        except (anyio.TypedAttributeLookupError, TypeError, ValueError):
            return ("?", 0)
        return (str(host), int(port))


def _raw_socket(stream: anyio.abc.SocketStream) -> socket.socket | None:
    """The stream's socket, to write to without a trip through the event loop (None: not a plain socket).

    Safe because every awaited send on this stream completes before the socket is written
    directly again (``writing`` held): on trio nothing is buffered between the two, and
    anyio's asyncio stream sets the transport's high-water mark to 0, so its send returns
    once the transport's buffer is empty. (uvloop hands out a stand-in that is no socket.)
    """
    with contextlib.suppress(anyio.TypedAttributeLookupError):
        sock: Any = stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 - anyio's
        if isinstance(sock, TransportSocket):  # asyncio: a read-only view of the socket, which it wraps
            sock = getattr(sock, "_sock", None)
        if type(sock) is socket.socket and sock.gettimeout() == 0.0:
            return sock
    return None


class TcpServer:
    """Serve a line-based TCP app: each connection runs the app once (see the module's *Limits*).

    ``await tasks.start(server.serve)`` binds and returns once listening (``server.port``
    is the bound port: ``port=0`` picks a free one).
    """

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        channel_layer: GroupLayer | None = None,
        max_line: int = 4096,
        max_lines_per_second: float = 20.0,
        burst: int = 40,
        idle_timeout: float | None = None,
        max_connections: int = 1000,
    ) -> None:
        if not callable(app):
            msg = f"TcpServer takes an app (e.g. Actor.as_asgi()), not {app!r}"
            raise TypeError(msg)
        for name, value in (("max_line", max_line), ("burst", burst), ("max_connections", max_connections)):
            if not isinstance(value, int) or value < 1:
                msg = f"{name} is a whole number >= 1, not {value!r}"
                raise ValueError(msg)
        if not max_lines_per_second > 0:
            msg = f"max_lines_per_second is > 0, not {max_lines_per_second!r}"
            raise ValueError(msg)
        self.app = app
        self.host = host
        self.port = port
        self.channel_layer = channel_layer
        self.max_line = max_line
        self.max_lines_per_second = float(max_lines_per_second)
        self.burst = burst
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections = 0

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port, reuse_port=False)
        async with listener:
            self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))  # noqa: S610 - anyio's
            logger.info("tcp: listening on %s:%d", self.host, self.port)
            task_status.started()
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        connection = _Connection(self, stream)
        if self.connections >= self.max_connections:
            await connection._last_words(f"error: server full ({self.max_connections} connections); try again later")
            await stream.aclose()
            return
        self.connections += 1
        host, port = connection._peer()
        scope: Scope = {"type": "tcp", "client": (host, port), "server": (self.host, self.port)}
        if self.channel_layer is not None:
            scope[LAYER_KEY] = self.channel_layer
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(connection.write_loop)
                try:
                    await self.app(scope, connection.receive, connection.send)
                except StopActor:
                    pass
                except Exception:
                    logger.exception("tcp: the app failed for client %s:%d", host, port)
                with anyio.CancelScope(shield=True), anyio.move_on_after(_LAST_WORDS):
                    await connection.flush()  # what the actor sent before it ended goes out
                tasks.cancel_scope.cancel()
        finally:
            self.connections -= 1
            connection.closed = True
            connection.open = False
            with anyio.CancelScope(shield=True):
                await stream.aclose()


@library_class
class LineActor(BaseActor):
    """An actor for one TCP connection, a line at a time: override ``receive_line``.

    ``connect()`` runs first (greet the client), ``receive_line(line)`` for each line,
    ``disconnect(code)`` once at the end whatever ended it. ``send_line(text)`` and
    ``close(reason)`` return awaitables, as ``send`` does on a WebSocket actor. A handler
    that raises closes the connection with ``error: internal error`` (and is logged).
    """

    scope_types: ClassVar[frozenset[str] | None] = frozenset({"tcp"})
    _terminal_events: ClassVar[frozenset[str]] = BaseActor._terminal_events | {"tcp.disconnect"}
    close_code: int | None = None
    """The code the connection ended with (see the module's *Limits*), once it ended."""
    _connection: _Connection | None = None  # TcpServer's connection, when send() is its own
    _lines_from: _Connection | None = None  # the same, when its receive() feeds the actor directly
    _async_lines: ClassVar[bool] = False  # receive_line is an async def: called without _call()

    @inline
    def connect(self) -> Any:
        """The client connected. Default: nothing."""
        return None

    @inline
    def receive_line(self, line: str) -> Any:
        """One line from the client, without its line end. Default: nothing."""
        return None

    @inline
    def disconnect(self, code: int) -> Any:
        """The connection ended (*code*: 1000 closed, 1006 lost, 1007/1008/1009 limits, 1011 error)."""
        return None

    def send_line(self, text: str) -> Flush:
        """Send *text* and a newline to the client."""
        connection = self._connection
        if (
            connection is not None
            and connection.open
            and not self._outbox
            and get_ident() == self._loop_thread
            and len(outgoing := connection.outgoing) < _HIGH_WATER
        ):
            # Served by TcpServer itself (no middleware wraps send), open, nothing queued before
            # it, on the loop, room without waiting: the line goes straight to the connection, as
            # tcp.send would (written now, or with the lines still to handle), in a fraction of
            # the time. What _push() does, inline: every line of a burst pays for a call.
            try:
                outgoing += _encode(text)  # str.encode, unbound: a TypeError for what is no str
            except TypeError:
                raise TypeError(f"send_line() takes a str, not {type(text).__name__}") from None
            outgoing += b"\n"
            if not connection.events and not self.__dict__.get("_mailbox"):  # no other line waits
                connection._write_now()
            if connection.have_output is not None and connection.outgoing:
                connection._wake_writer()
            return _SENT
        if not isinstance(text, str):
            msg = f"send_line() takes a str, not {type(text).__name__}"
            raise TypeError(msg)
        return self._emit({"type": "tcp.send", "text": text})

    def close(self, reason: str | None = None) -> Flush:
        """Close the connection; *reason*, if given, goes to the client as a last line."""
        return self._emit({"type": "tcp.close", "reason": reason})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._async_lines = inspect.iscoroutinefunction(cls.receive_line)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = getattr(send, "__self__", None)  # TcpServer's own send, not a wrapper: lines may skip the outbox
        self._connection = connection if isinstance(connection, _Connection) else None
        await super()._run(scope, receive, send)

    async def _run_direct(self, receive: Receive) -> None:
        connection = self._connection
        if connection is not None and getattr(receive, "__self__", None) is connection:
            self._lines_from = connection  # no layer, no middleware: the lines a read queued are taken here
        await super()._run_direct(receive)

    async def _started(self) -> None:
        await self._join_groups()

    async def _on_client_event(self, message: Message) -> bool:
        kind = message.get("type")
        if kind == "tcp.line":
            if self._async_lines:  # the hot path: what _call() does, one await less
                await self.receive_line(message["text"])
                if self._outbox:
                    await self._flush()
                if self._moves:
                    await self._settle()
                source = self._lines_from
                if source is not None and source.events:
                    await self._more_lines(source)
            else:
                await self._call("receive_line", message["text"])
        elif kind == "tcp.connect":
            await self._call("connect")
        elif kind == "tcp.disconnect":
            code = int(message.get("code", _NORMAL))
            cause: EndCause = (
                "client" if code in (_NORMAL, _GOING_AWAY) else "lost" if code == _LOST else "client_error"
            )
            await self._end(Ending(cause, code))
            return True
        return False

    async def _more_lines(self, source: _Connection) -> None:
        """Handle the lines the connection's last read queued after the one just handled.

        What ``receive()`` would hand out one call at a time, taken from its queue here
        instead (a ``receive()`` and a ``_run_direct`` round less per line of a burst), up to
        the turn's end, where ``receive()`` lets the other connections run, and never past
        an event that is not a line (``tcp.disconnect`` goes the usual way).
        """
        events = source.events
        # Only the last event can be other than a line (tcp.disconnect is queued after every
        # line, and no line after it), and what a handler queues goes after these: count once.
        count = len(events)
        if count and events[-1].__class__ is not str:
            count -= 1
        count = min(count, _TURN - 1 - source.taken)
        if count <= 0:
            return
        source.taken += count
        popleft = events.popleft
        receive_line = self.receive_line
        for _ in range(count):
            text: str = popleft()  # type: ignore[assignment]  # the first count events are lines
            if TAP.watching:  # an inspector counts the message rates
                TAP.event(self, CLIENT)
            await receive_line(text)
            if self._outbox:
                await self._flush()
            if self._moves:
                await self._settle()

    async def _on_failure(self, exc: Exception) -> None:
        await self._deliver({"type": "tcp.close", "reason": "error: internal error; closing"})

    async def _teardown(self, ending: Ending) -> None:
        self.close_code = ending.code
        await self._leave_groups(self._joined)
        try:
            await self._call("disconnect", ending.code)
        except StopActor:
            pass
        except Exception:
            logger.exception("%r: disconnect() raised", self)

    def __repr__(self) -> str:
        scope: Mapping[str, Any] = getattr(self, "scope", None) or {}
        client = scope.get("client")
        where = f" client={client[0]}:{client[1]}" if client else ""
        return f"<{type(self).__qualname__}{where}>"
