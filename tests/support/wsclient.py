"""A small, real WebSocket client for tests, built on :mod:`wsproto` and anyio sockets.

The ``websockets`` package only runs on asyncio; this client uses
:func:`anyio.connect_tcp`, so the same test can drive a server from an asyncio
*or* a trio event loop.  It speaks plain ``ws://`` (no TLS, no extensions) and is
meant for loopback end-to-end tests::

    async with await WSClient.connect("127.0.0.1", port, "/chat") as ws:
        await ws.send_json({"type": "hello"})
        assert await ws.receive_json() == {"type": "welcome"}

Semantics worth knowing:

* Incoming pings are answered with a pong while receiving; fragmented and
  partially delivered messages are reassembled before being returned.
* Messages that arrived before the server's close frame are still returned by
  :meth:`WSClient.receive`; once they are used up it raises
  :class:`ConnectionClosed` with the server's close code and reason (1006 when
  the TCP connection dropped without a close frame).
* Every wait is bounded (``anyio.fail_after``); a timeout raises
  :class:`TimeoutError` naming what was awaited.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import struct
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import attrs
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

__all__ = [
    "ConnectionClosed",
    "Handshake",
    "HandshakeRejected",
    "WSClient",
    "try_connect",
]

_RECEIVE_SIZE = 65536
#: Upper bound for housekeeping sends (pong, close reply) made while receiving.
_CONTROL_SEND_TIMEOUT = 5.0
#: How long :meth:`WSClient.close` waits for the server to drop TCP after closing.
_EOF_GRACE = 0.5


@attrs.frozen
class Handshake:
    """The outcome of the opening handshake.

    ``status`` is 101 when ``accepted``; for a rejected handshake ``status``,
    ``headers`` and ``body`` are the HTTP response the server answered with.
    Header names are lower-case bytes (as parsed by h11).  For an accepted
    handshake ``headers`` holds the response headers other than the
    WebSocket-specific ones (``Upgrade``, ``Connection``, ``Sec-WebSocket-*``)
    and ``body`` is empty.
    """

    accepted: bool
    status: int
    subprotocol: str | None
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first response header ``name`` (any case), decoded as latin-1."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


class HandshakeRejected(Exception):
    """The server answered the upgrade request with a plain HTTP response."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(status, headers, body)
        self.status = status
        self.headers = headers
        self.body = body

    def __str__(self) -> str:
        return f"WebSocket handshake rejected with HTTP {self.status}: {self.body[:200]!r}"


class ConnectionClosed(Exception):
    """The connection is closed; ``code``/``reason`` come from the close frame."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket connection closed (code={self.code}, reason={self.reason!r})"


class WSClient:
    """A connected WebSocket client; create it with :meth:`connect`.

    Use it as an async context manager (``async with await WSClient.connect(...)``)
    so the connection is closed cleanly.  One task may receive while another
    sends; two tasks must not receive at the same time.
    """

    handshake: Handshake

    def __init__(self, stream: anyio.abc.SocketStream, where: str) -> None:
        """Wrap a freshly connected TCP stream; prefer :meth:`connect`."""
        self._stream = stream
        self._where = where
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._send_lock = anyio.Lock()
        self._messages: deque[str | bytes] = deque()
        self._text_parts: list[str] = []
        self._bytes_parts = bytearray()
        self._close_info: tuple[int, str] | None = None
        self._eof = False
        self._socket_closed = False
        # handshake bookkeeping
        self._accept: AcceptConnection | None = None
        self._reject: RejectConnection | None = None
        self._reject_body = bytearray()
        self._reject_done = False

    # ------------------------------------------------------------------ opening

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        *,
        subprotocols: Sequence[str] = (),
        headers: Sequence[tuple[str, str]] = (),
        timeout: float = 5,
    ) -> WSClient:
        """Connect to ``host:port`` and perform the opening handshake for ``path``.

        ``path`` may include a query string.  ``subprotocols`` are offered in
        order; ``headers`` are extra request headers (e.g. ``Origin``,
        ``Cookie``).  Raises :class:`HandshakeRejected` if the server answers
        with an HTTP response instead of ``101``, and :class:`TimeoutError` if
        connecting and handshaking take longer than ``timeout`` seconds.
        """
        client = await cls._open(
            host,
            port,
            path,
            subprotocols=subprotocols,
            headers=headers,
            timeout=timeout,
        )
        hs = client.handshake
        if not hs.accepted:
            raise HandshakeRejected(hs.status, hs.headers, hs.body)
        return client

    @classmethod
    async def _open(
        cls,
        host: str,
        port: int,
        path: str,
        *,
        subprotocols: Sequence[str],
        headers: Sequence[tuple[str, str]],
        timeout: float,
    ) -> WSClient:
        """Connect and handshake; if rejected, the socket is closed (no exception)."""
        where = f"ws://{host}:{port}{path}"
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise TimeoutError(f"TCP connect to {host}:{port} did not complete within {timeout}s") from None
        client = cls(stream, where)
        try:
            with anyio.fail_after(timeout):
                await client._do_handshake(host, port, path, subprotocols, headers)
        except TimeoutError:
            await client._abort()
            raise TimeoutError(f"WebSocket handshake with {where} did not complete within {timeout}s") from None
        except BaseException:
            await client._abort()
            raise
        if not client.handshake.accepted:
            await client._abort()
        return client

    async def _do_handshake(
        self,
        host: str,
        port: int,
        path: str,
        subprotocols: Sequence[str],
        headers: Sequence[tuple[str, str]],
    ) -> None:
        request = Request(
            host=f"{host}:{port}",
            target=path,
            subprotocols=list(subprotocols),
            extra_headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        )
        await self._stream.send(self._ws.send(request))
        while self._accept is None and not self._reject_done:
            if self._eof:
                raise ConnectionError(f"{self._where}: server closed the connection during the handshake")
            await self._pump()
        if self._accept is not None:
            self.handshake = Handshake(
                accepted=True,
                status=101,
                subprotocol=self._accept.subprotocol,
                headers=list(self._accept.extra_headers),
                body=b"",
            )
        else:
            assert self._reject is not None
            self.handshake = Handshake(
                accepted=False,
                status=self._reject.status_code,
                subprotocol=None,
                headers=list(self._reject.headers),
                body=bytes(self._reject_body),
            )

    # ------------------------------------------------------------------ sending

    async def send_text(self, data: str) -> None:
        """Send one text message."""
        await self._send_event(TextMessage(data=data))

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary message."""
        await self._send_event(BytesMessage(data=data))

    async def send_json(self, obj: object) -> None:
        """Send ``obj`` serialised with :func:`json.dumps` as a text message."""
        await self.send_text(json.dumps(obj))

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (the pong is consumed silently by :meth:`receive`)."""
        await self._send_event(Ping(payload=payload))

    async def _send_event(self, event: Event) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            if self._close_info is not None:
                raise ConnectionClosed(*self._close_info)
            raise RuntimeError(f"{self._where}: cannot send, connection state is {self._ws.state.name}")
        async with self._send_lock:
            await self._stream.send(self._ws.send(event))

    # ---------------------------------------------------------------- receiving

    async def receive(self, timeout: float = 5) -> str | bytes:
        """Return the next complete message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`ConnectionClosed` once the server has closed and all
        earlier messages have been returned, and :class:`TimeoutError` if no
        message arrives within ``timeout`` seconds.
        """
        try:
            with anyio.fail_after(timeout):
                return await self._next_message()
        except TimeoutError:
            raise TimeoutError(f"{self._where}: no WebSocket message received within {timeout}s") from None

    async def receive_text(self, timeout: float = 5) -> str:
        """Like :meth:`receive`, but assert that the message is a text message."""
        message = await self.receive(timeout)
        if isinstance(message, str):
            return message
        raise AssertionError(f"expected a text message, got {len(message)} bytes: {message[:200]!r}")

    async def receive_bytes(self, timeout: float = 5) -> bytes:
        """Like :meth:`receive`, but assert that the message is a binary message."""
        message = await self.receive(timeout)
        if isinstance(message, bytes):
            return message
        raise AssertionError(f"expected a binary message, got text: {message[:200]!r}")

    async def receive_json(self, timeout: float = 5) -> Any:
        """Receive a text message and return it decoded with :func:`json.loads`."""
        return json.loads(await self.receive_text(timeout))

    async def receive_nothing(self, timeout: float = 0.1) -> None:
        """Assert that no message (and no close) arrives within ``timeout`` seconds."""
        with anyio.move_on_after(timeout):
            try:
                message = await self._next_message()
            except ConnectionClosed as exc:
                raise AssertionError(f"{self._where}: expected nothing, but the connection closed: {exc}") from None
            raise AssertionError(f"{self._where}: expected nothing, but received {message[:200]!r}")

    async def wait_closed(self, timeout: float = 5) -> tuple[int, str]:
        """Wait for the server's close frame and return its ``(code, reason)``.

        Messages that arrive before the close frame are kept and can still be
        read with :meth:`receive`.  Returns ``(1006, "")`` if the TCP
        connection dropped without a close frame.
        """
        try:
            with anyio.fail_after(timeout):
                while self._close_info is None:
                    await self._pump()
        except TimeoutError:
            raise TimeoutError(f"{self._where}: the server did not close the connection within {timeout}s") from None
        return self._close_info

    @property
    def close_info(self) -> tuple[int, str] | None:
        """The ``(code, reason)`` the connection closed with, or ``None`` if open."""
        return self._close_info

    async def _next_message(self) -> str | bytes:
        while True:
            if self._messages:
                return self._messages.popleft()
            if self._close_info is not None:
                raise ConnectionClosed(*self._close_info)
            await self._pump()

    # ------------------------------------------------------------------ closing

    async def close(self, code: int = 1000, reason: str = "", *, timeout: float = 2.0) -> None:
        """Send a close frame, wait (bounded) for the reply, then close the socket.

        Safe to call more than once and after the server has closed.  Never
        raises for a peer that has already gone away.
        """
        if self._socket_closed:
            return
        try:
            with anyio.move_on_after(timeout):
                if self._ws.state is ConnectionState.OPEN:
                    async with self._send_lock:
                        await self._stream.send(self._ws.send(CloseConnection(code=code, reason=reason)))
                while self._ws.state is ConnectionState.LOCAL_CLOSING and not self._eof:
                    await self._pump()
                # let the server drop TCP first, as RFC 6455 asks
                with anyio.move_on_after(_EOF_GRACE):
                    while not self._eof:
                        await self._pump()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if self._close_info is None:
                self._close_info = (code, reason)
            await self._abort()

    async def abort(self) -> None:
        """Vanish: reset the TCP connection (``SO_LINGER`` 0, then close), no close frame.

        The server sees a connection reset, as when a client's machine or network
        goes away.  Safe to call more than once and after :meth:`close`.
        """
        if self._socket_closed:
            return
        raw: socket.socket = self._stream.extra(anyio.abc.SocketAttribute.raw_socket)
        with contextlib.suppress(OSError):  # already reset by the peer: closing is all that is left
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if self._close_info is None:
            self._close_info = (1006, "")
        await self._abort()

    async def _abort(self) -> None:
        """Close the TCP socket without any WebSocket closing handshake."""
        if self._socket_closed:
            return
        self._socket_closed = True
        self._eof = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def __aenter__(self) -> Self:
        """Return the client itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection (bounded, shielded from cancellation)."""
        with anyio.CancelScope(shield=True):
            await self.close()

    # ------------------------------------------------------------ the read pump

    async def _pump(self) -> None:
        """Read one chunk from the socket and process every event it completes."""
        if self._socket_closed:
            if self._close_info is None:
                self._close_info = (1006, "")
            return
        if self._eof:
            # Nothing more will arrive; wait for whatever bounds the caller.
            await anyio.sleep(math.inf)
        try:
            data: bytes | None = await self._stream.receive(_RECEIVE_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            data = None
        if data is None:
            self._eof = True
        if self._ws.state is ConnectionState.CLOSED:
            return  # closing handshake done; ignore trailing bytes / EOF
        self._ws.receive_data(data)
        for event in self._ws.events():
            await self._handle(event)
        if self._eof and self._accept is not None and self._close_info is None:
            self._close_info = (1006, "")

    async def _handle(self, event: Event) -> None:
        if isinstance(event, TextMessage):
            self._text_parts.append(event.data)
            if event.message_finished:
                self._messages.append("".join(self._text_parts))
                self._text_parts.clear()
        elif isinstance(event, BytesMessage):
            self._bytes_parts += event.data
            if event.message_finished:
                self._messages.append(bytes(self._bytes_parts))
                self._bytes_parts.clear()
        elif isinstance(event, Ping):
            await self._send_control(event.response())
        elif isinstance(event, CloseConnection):
            if self._close_info is None:
                self._close_info = (event.code, event.reason or "")
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                await self._send_control(event.response())
        elif isinstance(event, AcceptConnection):
            self._accept = event
        elif isinstance(event, RejectConnection):
            self._reject = event
            if not event.has_body:
                self._reject_done = True
        elif isinstance(event, RejectData):
            self._reject_body += event.data
            if event.body_finished:
                self._reject_done = True
        # Pong and anything else: nothing to do.

    async def _send_control(self, event: Event) -> None:
        """Send a pong / close reply atomically, even while the caller is cancelled."""
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + _CONTROL_SEND_TIMEOUT):
            try:
                async with self._send_lock:
                    await self._stream.send(self._ws.send(event))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass


async def try_connect(
    host: str,
    port: int,
    path: str,
    *,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 5,
) -> Handshake:
    """Attempt a handshake; return its :class:`Handshake` rather than raise if rejected.

    The connection is always closed before returning (cleanly, with code 1000,
    if it was accepted).
    """
    client = await WSClient._open(host, port, path, subprotocols=subprotocols, headers=headers, timeout=timeout)
    await client.close()
    return client.handshake
