"""How TcpServer writes what a LineActor sends: at once, or with the burst's other lines, in order.

Over real sockets, on asyncio and trio. The server's limits and events are tested in
``tests/protocols/test_tcp.py``; here, the paths a line takes out: straight from the
actor's task to the socket, through the writer task when the actor waits mid-burst,
through the stream once the socket is full, and through ASGI ``send`` when something
wraps it.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from interlock.actors import ASGIApp
from interlock.actors.tcp import LineActor, TcpServer

from tests.support.tcp import serving

FAST: dict[str, Any] = {"max_lines_per_second": 1e9, "burst": 10**9}


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - polling a plain condition, as tests/protocols do
            await anyio.sleep(0.01)
    assert condition(), what


@asynccontextmanager
async def connected(server: TcpServer) -> AsyncIterator[anyio.abc.SocketStream]:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        yield stream


async def read_lines(stream: anyio.abc.SocketStream, count: int, timeout: float = 10.0) -> list[str]:
    chunks: list[bytes] = []
    seen = 0
    with anyio.fail_after(timeout):
        while seen < count:
            chunk = await stream.receive()
            chunks.append(chunk)
            seen += chunk.count(b"\n")
    return b"".join(chunks).decode().split("\n")[:count]


class Waiter(LineActor):
    """Echoes; the line ``wait`` holds the handler until ``go`` is set (the actor yields mid-burst)."""

    go: anyio.Event | None = None

    async def receive_line(self, line: str) -> None:
        if line == "wait":
            assert self.go is not None
            await self.go.wait()
        await self.send_line(f"echo {line}")


async def test_what_a_burst_sent_goes_out_while_a_later_handler_waits() -> None:
    go = anyio.Event()
    async with serving(Waiter.as_asgi(go=go), **FAST) as server, connected(server) as stream:
        await stream.send(b"one\ntwo\nwait\nthree\n")  # one write: one read, four lines queued at once
        assert await read_lines(stream, 2) == ["echo one", "echo two"]  # not held for the burst's end
        go.set()
        assert await read_lines(stream, 2) == ["echo wait", "echo three"]


class Talker(LineActor):
    """On connect, sends ``count`` numbered lines of 100 bytes, more than the socket takes at once."""

    count: int = 0
    done: list[bool] | None = None

    async def connect(self) -> None:
        for n in range(self.count):
            await self.send_line(f"{n:08d} " + "x" * 90)
        assert self.done is not None
        self.done.append(True)


async def test_a_client_that_reads_late_gets_every_line_in_order() -> None:
    done: list[bool] = []
    count = 100_000  # 10 MB: past the kernel's buffers, so the writes go partly direct, partly through the stream
    async with serving(Talker.as_asgi(count=count, done=done)) as server:
        # A small receive buffer from the start (no autotuning): the server's send buffer (4 MiB at most) fills.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        with anyio.fail_after(5):
            while sock.connect_ex(("127.0.0.1", server.port)) not in (0, errno.EISCONN):
                await anyio.wait_writable(sock)
        # The bare socket reads nothing; an anyio stream on asyncio would (its transport reads eagerly).
        await anyio.sleep(0.2)
        assert done == []  # send_line() waits once 64 KiB wait for the client
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # then read at speed
        stream = await anyio.abc.SocketStream.from_socket(sock)
        async with stream:
            lines = await read_lines(stream, count, timeout=30.0)
            assert lines == [f"{n:08d} " + "x" * 90 for n in range(count)]
            await wait_for(lambda: done == [True], what="connect() to finish")


class Recorder(LineActor):
    async def receive_line(self, line: str) -> None:
        await self.send_line(f"echo {line}")


async def test_the_lines_before_a_bad_one_are_answered_before_the_error() -> None:
    async with serving(Recorder.as_asgi(), **FAST) as server, connected(server) as stream:
        await stream.send(b"".join(b"%d\n" % n for n in range(100)) + b"bad \xff\n")
        lines = await read_lines(stream, 101)
        assert lines[:100] == [f"echo {n}" for n in range(100)]
        assert lines[100] == "error: a line that is not UTF-8 (byte 0xff at offset 4); send UTF-8 text; closing"


def shouting(app: ASGIApp) -> ASGIApp:
    """A middleware that upper-cases what the app sends: it must see every line."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def send_upper(message: Any) -> None:
            if message.get("type") == "tcp.send":
                message = {**message, "text": message["text"].upper()}
            await send(message)

        await app(scope, receive, send_upper)

    return wrapped


async def test_a_middleware_around_send_sees_every_line() -> None:
    async with serving(shouting(Recorder.as_asgi()), **FAST) as server, connected(server) as stream:
        await stream.send(b"".join(b"l%d\n" % n for n in range(300)))
        assert await read_lines(stream, 300) == [f"ECHO L{n}" for n in range(300)]


class SyncEcho(LineActor):
    def receive_line(self, line: str) -> None:  # a def handler: in a worker thread
        self.send_line(f"echo {line}")


async def test_a_sync_handler_sends_through_the_loop() -> None:
    async with serving(SyncEcho.as_asgi(), **FAST) as server, connected(server) as stream:
        await stream.send(b"a\nb\nc\n")
        assert await read_lines(stream, 3) == ["echo a", "echo b", "echo c"]


class Ends(LineActor):
    ended: list[int] | None = None

    async def receive_line(self, line: str) -> None:
        await self.send_line(line)

    async def disconnect(self, code: int) -> None:
        assert self.ended is not None
        self.ended.append(code)


@pytest.mark.parametrize("reset", [False, True])
async def test_a_client_gone_mid_burst_ends_the_actor_once(reset: bool) -> None:
    ended: list[int] = []
    async with serving(Ends.as_asgi(ended=ended), **FAST) as server:
        async with connected(server) as stream:
            await stream.send(b"".join(b"line %d\n" % n for n in range(20_000)))
            if reset:  # an RST: SO_LINGER 0 then close
                sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await wait_for(lambda: len(ended) == 1, what="disconnect() once")
        await anyio.sleep(0.2)
        assert len(ended) == 1
        assert ended[0] in (1000, 1006)
        await wait_for(lambda: server.connections == 0, what="the connection to be gone")
