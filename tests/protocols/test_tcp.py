"""The line-based TCP server and LineActor over real sockets, on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from interlock.actors import handler
from interlock.actors.tcp import LineActor, TcpServer
from interlock.layers import InMemoryChannelLayer

from tests.support.tcp import serving

from .support import wait_for


class Echo(LineActor):
    """Echoes lines; ``boom`` raises; ``bye`` closes; ``shout X`` goes to the group ``room``."""

    ended: list[int] | None = None

    async def connect(self) -> None:
        await self.send_line("hello")

    async def receive_line(self, line: str) -> None:
        if line == "boom":
            raise RuntimeError("boom")
        if line == "bye":
            await self.close("bye!")
            return
        if line.startswith("shout ") and self._channel_layer is not None:
            await self.channel_layer.group_send("room", {"type": "shout", "text": line[6:]})
            return
        await self.send_line(f"echo {line}")

    async def disconnect(self, code: int) -> None:
        if self.ended is not None:
            self.ended.append(code)

    @handler
    async def shout(self, event: dict[str, Any]) -> None:
        await self.send_line(f"shout {event['text']}")


class Client:
    """A line client over a real socket."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def line(self, timeout: float = 5.0) -> str:
        with anyio.fail_after(timeout):
            while b"\n" not in self.buffer:
                self.buffer += await self.stream.receive()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def closed(self, timeout: float = 5.0) -> bool:
        """Read until EOF: whether the server closed the connection."""
        with anyio.fail_after(timeout):
            try:
                while True:
                    self.buffer += await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return True


@asynccontextmanager
async def client(server: TcpServer) -> AsyncIterator[Client]:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        yield Client(stream)


async def test_lines_in_and_out() -> None:
    ended: list[int] = []
    async with serving(Echo.as_asgi(ended=ended)) as server, client(server) as c:
        assert await c.line() == "hello"
        await c.send(b"one\r\ntwo\nthr")
        assert await c.line() == "echo one"
        assert await c.line() == "echo two"
        await c.send("ée\n".encode())
        assert await c.line() == "echo thrée"
        await c.send(b"bye\n")
        assert await c.line() == "bye!"
        assert await c.closed()
        await wait_for(lambda: ended == [1000], what="disconnect(1000) once")


async def test_client_leaving_calls_disconnect_once() -> None:
    ended: list[int] = []
    async with serving(Echo.as_asgi(ended=ended)) as server:
        async with client(server) as c:
            assert await c.line() == "hello"
        await wait_for(lambda: ended == [1000], what="disconnect(1000)")
        await anyio.sleep(0.1)
        assert ended == [1000]
        assert server.connections == 0


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        (b"x" * 5000 + b"\n", "error: a line over max_line (4096 bytes); closing", 1009),
        (b"y" * 5000, "error: a line over max_line (4096 bytes); closing", 1009),
        (b"ok \xff\xfe\n", "error: a line that is not UTF-8 (byte 0xff at offset 3); send UTF-8 text; closing", 1007),
    ],
)
async def test_bad_lines_close_only_their_connection(data: bytes, error: str, code: int) -> None:
    ended: list[int] = []
    async with serving(Echo.as_asgi(ended=ended)) as server, client(server) as good, client(server) as bad:
        assert await good.line() == "hello"
        assert await bad.line() == "hello"
        await bad.send(data)
        assert await bad.line() == error
        assert await bad.closed()
        await wait_for(lambda: ended == [code], what=f"disconnect({code})")
        await good.send(b"still here\n")
        assert await good.line() == "echo still here"


async def test_a_flood_is_cut_off() -> None:
    ended: list[int] = []
    async with serving(Echo.as_asgi(ended=ended), max_lines_per_second=10, burst=5) as server, client(server) as c:
        assert await c.line() == "hello"
        await c.send(b"".join(b"%d\n" % n for n in range(50)))
        assert await c.closed()
        lines = c.buffer.decode().splitlines()
        # The error goes out at once; the lines taken before it are echoed until the socket closes.
        assert "error: more than 10 lines a second; closing" in lines
        echoed = [line for line in lines if line.startswith("echo")]
        assert echoed == [f"echo {n}" for n in range(len(echoed))]
        assert len(echoed) <= 5
        await wait_for(lambda: ended == [1008], what="disconnect(1008)")


async def test_a_failing_handler_closes_with_an_error_line(caplog: pytest.LogCaptureFixture) -> None:
    ended: list[int] = []
    async with serving(Echo.as_asgi(ended=ended)) as server, client(server) as c:
        assert await c.line() == "hello"
        await c.send(b"boom\n")
        assert await c.line() == "error: internal error; closing"
        assert await c.closed()
        await wait_for(lambda: ended == [1011], what="disconnect(1011)")
    assert any("RuntimeError: boom" in r.getMessage() for r in caplog.records)


async def test_idle_timeout_and_server_full() -> None:
    async with serving(Echo.as_asgi(), idle_timeout=0.2, max_connections=1) as server, client(server) as c:
        assert await c.line() == "hello"
        async with client(server) as extra:
            assert await extra.line() == "error: server full (1 connections); try again later"
            assert await extra.closed()
        assert await c.line() == "error: silent for idle_timeout (0.2 s); closing"
        assert await c.closed()


async def test_connections_share_groups_through_the_layer() -> None:
    layer = InMemoryChannelLayer()
    async with (
        serving(Echo.as_asgi(groups=["room"]), channel_layer=layer) as server,
        client(server) as a,
        client(server) as b,
    ):
        assert await a.line() == "hello"
        assert await b.line() == "hello"
        await a.send(b"shout hi all\n")
        assert await a.line() == "shout hi all"
        assert await b.line() == "shout hi all"


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="max_line is a whole number >= 1, not 0"):
        TcpServer(Echo.as_asgi(), max_line=0)
    with pytest.raises(TypeError, match="takes an app"):
        TcpServer(42)  # type: ignore[arg-type]


async def read_lines(c: Client, count: int, timeout: float = 10.0) -> list[str]:
    """The next *count* lines from the server."""
    with anyio.fail_after(timeout):
        return [await c.line() for _ in range(count)]


async def test_a_burst_of_lines_is_echoed_in_order_one_handler_call_each() -> None:
    async with serving(Echo.as_asgi(), max_lines_per_second=1e9, burst=10**9) as server, client(server) as c:
        assert await c.line() == "hello"
        # 3,000 lines in one write (several reads' worth), mixed line ends, multi-byte text.
        await c.send(b"".join(b"l\xc3\xa9 %d%s" % (n, b"\r\n" if n % 3 else b"\n") for n in range(3000)))
        assert await read_lines(c, 3000) == [f"echo lé {n}" for n in range(3000)]


class Recorder(LineActor):
    """Records the lines it receives and the code it ended with, and answers nothing."""

    seen: list[str] | None = None

    async def receive_line(self, line: str) -> None:
        assert self.seen is not None
        self.seen.append(line)

    async def disconnect(self, code: int) -> None:
        assert self.seen is not None
        self.seen.append(f"end {code}")


@pytest.mark.parametrize(
    ("bad", "error", "code"),
    [
        (b"ok \xff\n", "error: a line that is not UTF-8 (byte 0xff at offset 3); send UTF-8 text; closing", 1007),
        (b"x" * 5000 + b"\n", "error: a line over max_line (4096 bytes); closing", 1009),
    ],
)
async def test_a_bad_line_inside_a_burst_ends_it_after_the_lines_before(bad: bytes, error: str, code: int) -> None:
    seen: list[str] = []
    options: dict[str, Any] = {"max_lines_per_second": 1e9, "burst": 10**9}
    async with serving(Recorder.as_asgi(seen=seen), **options) as server, client(server) as c:
        await c.send(b"".join(b"%d\n" % n for n in range(200)) + bad + b"after\n")
        assert await c.line() == error
        assert await c.closed()
        await wait_for(lambda: seen[-1:] == [f"end {code}"], what=f"disconnect({code})")
        assert seen == [str(n) for n in range(200)] + [f"end {code}"]


async def test_a_burst_past_the_rate_limit_gets_exactly_the_tokens_left() -> None:
    seen: list[str] = []
    async with serving(Recorder.as_asgi(seen=seen), max_lines_per_second=0.001, burst=7) as server, client(server) as c:
        await c.send(b"".join(b"%d\n" % n for n in range(100)))  # one write: one chunk on loopback
        assert await c.line() == "error: more than 0.001 lines a second; closing"
        assert await c.closed()
        await wait_for(lambda: seen[-1:] == ["end 1008"], what="disconnect(1008)")
        assert seen == [str(n) for n in range(7)] + ["end 1008"]


async def test_a_burst_interleaved_with_layer_messages_keeps_both_orders() -> None:
    layer = InMemoryChannelLayer()
    options: dict[str, Any] = {"channel_layer": layer, "max_lines_per_second": 1e9, "burst": 10**9}
    async with serving(Echo.as_asgi(groups=["room"]), **options) as server, client(server) as a:
        assert await a.line() == "hello"
        await a.send(b"".join(b"shout %d\n%d\n" % (n, n) for n in range(500)))
        lines = await read_lines(a, 1000)
        assert [line for line in lines if line.startswith("echo")] == [f"echo {n}" for n in range(500)]
        assert [line for line in lines if line.startswith("shout")] == [f"shout {n}" for n in range(500)]
        # A shout is handled (as a layer message) after the line that sent it, never before.
        assert all(lines.index(f"shout {n}") > lines.index(f"echo {n - 1}") for n in range(1, 500))
