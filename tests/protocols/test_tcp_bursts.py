"""A burst of lines taken straight from the connection's queue: ends, failures and turns as one at a time."""

from __future__ import annotations

import anyio
import pytest
from interlock.actors import StopActor
from interlock.actors.tcp import LineActor

from tests.support.tcp import serving

from .support import wait_for

FAST = {"max_lines_per_second": 1e9, "burst": 10**9}


class Stopper(LineActor):
    """Records lines; ``stop`` raises StopActor, ``boom`` a RuntimeError; records the end code."""

    seen: list[str] | None = None

    async def receive_line(self, line: str) -> None:
        assert self.seen is not None
        if line == "stop":
            raise StopActor
        if line == "boom":
            raise RuntimeError("boom")
        self.seen.append(line)
        await self.send_line(line)

    async def disconnect(self, code: int) -> None:
        assert self.seen is not None
        self.seen.append(f"end {code}")


async def read_all(stream: anyio.abc.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    with anyio.fail_after(10):
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


@pytest.mark.parametrize(
    ("word", "code", "last"), [("stop", 1000, b""), ("boom", 1011, b"error: internal error; closing")]
)
async def test_a_burst_ends_at_the_line_that_ends_the_actor(word: str, code: int, last: bytes) -> None:
    seen: list[str] = []
    async with serving(Stopper.as_asgi(seen=seen), **FAST) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            # in one write: the lines after the ending one are queued with it, and never handled
            await stream.send(b"".join(b"%d\n" % n for n in range(150)) + word.encode() + b"\n1\n2\n")
            data = await read_all(stream)
        await wait_for(lambda: seen[-1:] == [f"end {code}"], what=f"disconnect({code})")
    assert seen == [str(n) for n in range(150)] + [f"end {code}"]
    lines = data.decode().splitlines()
    assert lines[:150] == [str(n) for n in range(150)]
    assert lines[150:] == ([last.decode()] if last else [])


async def test_a_long_burst_lets_another_connection_through() -> None:
    seen: list[str] = []
    async with serving(Stopper.as_asgi(seen=seen), **FAST) as server:
        async with (
            await anyio.connect_tcp("127.0.0.1", server.port) as busy,
            await anyio.connect_tcp("127.0.0.1", server.port) as other,
        ):
            await busy.send(b"".join(b"b%d\n" % n for n in range(20_000)))
            await other.send(b"ping\n")
            with anyio.fail_after(10):
                assert await other.receive() == b"ping\n"
            received = 0
            with anyio.fail_after(20):
                while received < 20_000:
                    received += (await busy.receive()).count(b"\n")
        await wait_for(lambda: seen.count("end 1000") == 2, what="both disconnects")
    # the other connection's line was handled while the burst's lines still waited
    assert seen.index("ping") < seen.index("b19999")


class Sizes(LineActor):
    """Records lines and the end code; ``bytes`` sends bytes (no str), ``close`` closes mid-burst."""

    seen: list[str] | None = None

    async def receive_line(self, line: str) -> None:
        assert self.seen is not None
        self.seen.append(line)
        if line == "bytes":
            await self.send_line(line.encode())  # type: ignore[arg-type]  # what is checked
        elif line == "close":
            await self.close("bye")
        else:
            await self.send_line(line)

    async def disconnect(self, code: int) -> None:
        assert self.seen is not None
        self.seen.append(f"end {code}")


async def test_a_multibyte_line_over_max_line_in_bytes_but_not_in_characters_is_refused() -> None:
    # 8 characters, 16 bytes, against max_line 12: measured in bytes, inside a block of lines
    # that is longer than max_line (the block is checked line by line only when it may hold one).
    seen: list[str] = []
    async with serving(Sizes.as_asgi(seen=seen), max_line=12, **FAST) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            exact = "x" * 12  # exactly max_line: allowed
            await stream.send(
                b"".join(b"%d\n" % n for n in range(50)) + exact.encode() + b"\n" + "é".encode() * 8 + b"\n"
            )
            data = await read_all(stream)
        await wait_for(lambda: seen[-1:] == ["end 1009"], what="disconnect(1009)")
    assert seen == [str(n) for n in range(50)] + [exact, "end 1009"]
    assert data.decode().splitlines() == [str(n) for n in range(50)] + [
        exact,
        "error: a line over max_line (12 bytes); closing",
    ]


async def test_multibyte_lines_within_max_line_pass_in_a_long_block() -> None:
    seen: list[str] = []
    line = "é" * 6  # 12 bytes: exactly max_line
    async with serving(Sizes.as_asgi(seen=seen), max_line=12, **FAST) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send((line + "\n").encode() * 100)
            got = b""
            with anyio.fail_after(10):
                while got.count(b"\n") < 100:
                    got += await stream.receive()
        await wait_for(lambda: seen[-1:] == ["end 1000"], what="disconnect(1000)")
    assert got.decode().splitlines() == [line] * 100
    assert seen == [line] * 100 + ["end 1000"]


async def test_send_line_of_bytes_mid_burst_fails_the_actor_with_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    async with serving(Sizes.as_asgi(seen=seen), **FAST) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"".join(b"%d\n" % n for n in range(100)) + b"bytes\n1\n2\n")
            data = await read_all(stream)
        await wait_for(lambda: seen[-1:] == ["end 1011"], what="disconnect(1011)")
    assert seen == [str(n) for n in range(100)] + ["bytes", "end 1011"]
    assert data.decode().splitlines() == [str(n) for n in range(100)] + ["error: internal error; closing"]
    assert "send_line() takes a str, not bytes" in caplog.text


async def test_a_close_mid_burst_sends_the_lines_before_then_the_reason() -> None:
    seen: list[str] = []
    async with serving(Sizes.as_asgi(seen=seen), **FAST) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"".join(b"%d\n" % n for n in range(100)) + b"close\n")
            data = await read_all(stream)
        await wait_for(lambda: seen[-1:] == ["end 1000"], what="disconnect(1000)")
    assert seen == [str(n) for n in range(100)] + ["close", "end 1000"]
    assert data.decode().splitlines() == [str(n) for n in range(100)] + ["bye"]
