"""A lean, pipelined Redis connection for the Redis layer's hot path (RESP2 on anyio streams).

Why it exists: one coredis 6.9 command costs 170-190 us of CPU here (profiled with
cProfile: five anyio cancel scopes, a writer task fed through a memory stream, ~6
event-loop iterations and ~790 Python calls per ``PING``).  The loopback round trip
itself is ~55 us (``redis-benchmark -c 1 -t ping``: 17,700/s).  This connection spends
~3 loop iterations and ~200 Python calls per command, about what a bare anyio socket
does (``bench/redis_layer.py --concurrency`` compares the three).  coredis stays for
everything else (registration, groups, pruning, Redis Cluster, TLS, Sentinel).

Rules:

1. **Replies come back in order**, so a connection is a FIFO of waiting replies.  A
   command is encoded and appended to the outgoing buffer; the first caller that finds
   nobody writing writes everything buffered (its own command and any that arrived
   while it wrote: *auto-pipelining*, one ``send`` for many), then waits.
2. **The oldest waiter reads.**  No reader task: a caller that finds nobody reading reads
   replies off the socket, hands each to its waiter, and stops once its own arrived,
   waking the next waiter to read on.  A lone sender thus reads its own reply with no
   task switch.
3. **A caller that gives up** (its deadline) leaves its reply *abandoned*: it is read and
   discarded when it comes, so the stream stays in step.  A failed write or read breaks
   the connection: every waiter gets the error, and the next command connects again.
4. Commands are not retried: a broken connection may or may not have run them, which the
   caller (``Store.call``) reports as :class:`~interlock.layers.LayerUnavailable`.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections import deque
from typing import Any, Final

import anyio
import anyio.abc

__all__ = ["Resp", "RespError", "RespProtocolError", "Script", "lean_address", "parse"]

_CHUNK: Final = 262_144
_SPLIT_AT: Final = 16  # arrays this long are first tried as bulk strings split in C


class RespError(Exception):
    """Redis answered a command with an error reply."""


class RespProtocolError(ConnectionError):
    """What came back is not a Redis reply (the address is not a Redis server)."""


def _encode(args: tuple[bytes | str | int, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    append = out.append
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = b"%d" % arg
        append(b"$%d\r\n" % len(data))
        append(data)
        append(b"\r\n")
    return b"".join(out)


def _bulk_strings(buf: bytes, pos: int, count: int) -> tuple[list[bytes], int] | None:
    """An array of *count* bulk strings at *pos*, split in C; None if it is not (only) that."""
    parts = buf[pos:].split(b"\r\n", 2 * count)
    if len(parts) <= 2 * count:
        return None  # incomplete: the general parser says so
    heads, items = parts[0 : 2 * count : 2], parts[1 : 2 * count : 2]
    if [b"$%d" % len(item) for item in items] != heads:
        return None  # a string holding CRLF, a nil, or another type: the general parser
    return items, pos + sum(map(len, parts[: 2 * count])) + 4 * count


class _Reader:
    """Replies from the bytes of a stream, resumable: an array or a string cut between two
    reads is taken up where it stopped, never parsed again from its start (a batch of 512
    large entries arrives in hundreds of reads)."""

    __slots__ = ("_arrays", "_chunks", "_counts", "_need", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []  # bytes not parsed yet
        self._size = 0
        self._need = 0  # bytes the element under way needs before parsing can go on
        self._arrays: list[list[Any]] = []  # arrays under way, outermost first
        self._counts: list[int] = []  # how many items each of them holds when complete

    def feed(self, data: bytes) -> list[Any]:  # noqa: PLR0915 - one flat loop over elements: the hot path
        """Take *data*; return the replies it completed, in order."""
        self._chunks.append(data)
        self._size += len(data)
        if self._size < self._need:
            return []
        buf = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        out: list[Any] = []
        pos, size, need = 0, len(buf), 0
        arrays, counts = self._arrays, self._counts
        while pos < size:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                need = size + 1
                break
            kind = buf[pos]
            value: Any
            if kind == 36:  # $ bulk string
                length = int(buf[pos + 1 : end])
                if length < 0:
                    value, pos = None, end + 2
                else:
                    stop = end + 2 + length
                    if stop + 2 > size:
                        need = stop + 2
                        break
                    value, pos = buf[end + 2 : stop], stop + 2
            elif kind == 42:  # * array
                count = int(buf[pos + 1 : end])
                found = _bulk_strings(buf, end + 2, count) if count >= _SPLIT_AT else None
                if found is not None:
                    value, pos = found
                elif count <= 0:
                    value, pos = (None if count < 0 else []), end + 2
                else:
                    arrays.append([])
                    counts.append(count)
                    pos = end + 2
                    continue
            elif kind == 58:  # : integer
                value, pos = int(buf[pos + 1 : end]), end + 2
            elif kind == 43:  # + simple string
                value, pos = buf[pos + 1 : end], end + 2
            elif kind == 45:  # - error
                value, pos = RespError(buf[pos + 1 : end].decode(errors="replace")), end + 2
            else:
                msg = f"not a Redis reply: {buf[pos : end + 2][:40]!r}"
                raise RespProtocolError(msg)
            while arrays:  # the value completes an item, maybe the arrays holding it
                top = arrays[-1]
                top.append(value)
                if len(top) < counts[-1]:
                    break
                value = arrays.pop()
                counts.pop()
            else:
                out.append(value)
        rest = buf[pos:]
        self._chunks = [rest] if rest else []
        self._size = len(rest)
        self._need = need - pos if need else 0
        return out


def parse(data: bytes) -> list[Any]:
    """Every complete reply in *data* (for tests and tools)."""
    return _Reader().feed(data)


class _Reply:
    __slots__ = ("abandoned", "done", "event", "value")

    def __init__(self) -> None:
        self.done = False
        self.abandoned = False
        self.event: anyio.Event | None = None
        self.value: Any = None


class Script:
    """A Lua script: its body and SHA1, run with ``EVALSHA`` (``EVAL`` once Redis lacks it)."""

    __slots__ = ("body", "sha")

    def __init__(self, body: str) -> None:
        self.body = body.encode()
        self.sha = hashlib.sha1(self.body, usedforsecurity=False).hexdigest().encode()


def lean_address(url: str) -> tuple[str, int, str | None, str | None, int, str | None] | None:
    """``(host, port, username, password, db, unix path)`` of a URL this connection serves, else None.

    It serves ``redis://`` and ``unix://`` URLs with no query options but ``db``;
    anything else (TLS, timeouts or pool options in the query) is left to coredis.
    """
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme not in ("redis", "unix") or set(query) - {"db"}:
        return None
    db = int(query["db"][0]) if "db" in query else 0
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        return ("", 0, user, password, db, parts.path)
    path = parts.path.strip("/")
    if path:
        db = int(path)
    return (parts.hostname or "127.0.0.1", parts.port or 6379, user, password, db, None)


class Resp:
    """One pipelined connection to a Redis server (see the module's rules); connects on first use."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        address = lean_address(url)
        if address is None:
            msg = f"not a URL the lean connection serves: {url!r}"
            raise ValueError(msg)
        self._host, self._port, self._user, self._password, self._db, self._path = address
        self._connect_timeout = connect_timeout
        self._stream: anyio.abc.ByteStream | None = None
        self._connecting: anyio.Event | None = None
        self._broken: BaseException | None = None
        self._out: list[bytes] = []
        self._waiting: deque[_Reply] = deque()
        self._writing = False
        self._reading = False
        self._reader = _Reader()

    async def aclose(self) -> None:
        """Close the socket; waiting commands fail."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._fail(ConnectionError("the connection was closed"))
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _connect(self) -> None:
        while self._connecting is not None:  # another caller is connecting: wait for it
            await self._connecting.wait()
            if self._stream is not None:
                return
        self._connecting = anyio.Event()
        try:
            with anyio.fail_after(self._connect_timeout):
                if self._path is not None:
                    stream: anyio.abc.ByteStream = await anyio.connect_unix(self._path)
                else:
                    stream = await anyio.connect_tcp(self._host, self._port)  # TCP_NODELAY: both backends
            self._stream, self._broken, self._reader = stream, None, _Reader()
            hello: list[tuple[bytes | str | int, ...]] = []
            if self._password is not None:
                hello.append(("AUTH", self._password) if self._user is None else ("AUTH", self._user, self._password))
            if self._db:
                hello.append(("SELECT", self._db))
            for command in hello:
                with anyio.fail_after(self._connect_timeout):
                    await self.execute(*command)
        except TimeoutError as exc:
            await self.aclose()
            msg = f"no answer within {self._connect_timeout:g} s of connecting"
            raise ConnectionError(msg) from exc
        except BaseException:
            await self.aclose()
            raise
        finally:
            self._connecting.set()
            self._connecting = None

    async def _lose(self, stream: anyio.abc.ByteStream, exc: BaseException) -> None:
        """*stream* broke: fail its waiters and close it."""
        if self._stream is stream:
            self._stream = None
        self._fail(exc)
        with anyio.CancelScope(shield=True):
            await stream.aclose()

    def _fail(self, exc: BaseException) -> None:
        """Break the connection: every waiter gets *exc*."""
        self._broken = exc
        self._out.clear()
        self._reader = _Reader()
        waiting, self._waiting = self._waiting, deque()
        for reply in waiting:
            reply.value, reply.done = exc, True
            if reply.event is not None:
                reply.event.set()

    async def execute(self, *args: bytes | str | int) -> Any:
        """Send one command and return its reply (bytes, int, list, None); raises :class:`RespError`."""
        if self._stream is None:
            await self._connect()
        reply = _Reply()
        self._out.append(_encode(args))
        self._waiting.append(reply)
        try:
            if not self._writing:
                await self._flush()
            while not reply.done:
                if not self._reading:
                    await self._read_until(reply)
                else:
                    reply.event = anyio.Event()
                    await reply.event.wait()
        except BaseException:
            if not reply.done:
                reply.abandoned = True
            raise
        value = reply.value
        if isinstance(value, BaseException):
            if isinstance(value, RespError):
                raise value
            if isinstance(value, RespProtocolError):
                raise RespProtocolError(str(value)) from value
            msg = f"connection lost: {value}"
            raise ConnectionError(msg) from value
        return value

    async def _flush(self) -> None:
        stream = self._stream
        self._writing = True
        try:
            while self._out and stream is not None:
                data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
                self._out.clear()
                await stream.send(data)
        except BaseException as exc:  # a write cut off midway (or failed) leaves the stream unusable
            if stream is not None:
                await self._lose(stream, exc)
            raise
        finally:
            self._writing = False

    async def _read_until(self, mine: _Reply) -> None:
        stream = self._stream
        if stream is None:
            self._fail(self._broken or ConnectionError("not connected"))
            return
        self._reading = True
        try:
            while not mine.done:
                try:
                    data = await stream.receive(_CHUNK)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    await self._lose(stream, exc if isinstance(exc, OSError) else ConnectionError("Redis closed it"))
                    return
                try:
                    replies = self._reader.feed(data)
                except (RespProtocolError, ValueError) as exc:
                    await self._lose(stream, exc if isinstance(exc, RespProtocolError) else RespProtocolError(str(exc)))
                    return
                waiting = self._waiting
                if len(replies) > len(waiting):
                    await self._lose(stream, RespProtocolError(f"a reply nobody asked for: {replies[-1]!r:.40}"))
                    return
                for value in replies:
                    reply = waiting.popleft()
                    reply.value, reply.done = value, True
                    if reply.event is not None:
                        reply.event.set()
        finally:
            self._reading = False
            for reply in self._waiting:  # the next waiter reads on
                if reply.event is not None and not reply.abandoned:
                    reply.event.set()
                    break

    async def script(self, script: Script, keys: list[str], args: list[bytes | str | int]) -> Any:
        """Run *script* on *keys* and *args*, loading it first if Redis does not know it."""
        try:
            return await self.execute(b"EVALSHA", script.sha, len(keys), *keys, *args)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute(b"EVAL", script.body, len(keys), *keys, *args)
