"""SSE fan-out: 1,000 open streams, one publish, the time until the last client has the event.

For each app of ``http_apps.py`` (raw ASGI, interlock's ``SseActor`` fed by one
``group_send``, sse-starlette) a uvicorn subprocess serves 127.0.0.1; this process opens
``--streams`` event streams to each over raw sockets (in batches), waits until every one
said ``: ready``, then publishes one event (``POST /publish``) to each app in turn,
``--rounds`` times, and times how long until every stream of that app has it. Rounds are
interleaved between the apps so that whatever else the machine does slows them alike.
Reported: the median and p90 round (ms) and the server's CPU time per publish (ms, from
the process's CPU time over all rounds). Client and servers share the machine.

Usage::

    .venv/bin/python bench/http_sse.py [--streams 1000] [--rounds 20] [--only raw,interlock,starlette]

Loopback only; every phase is bounded in time and the server is always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import time

from http_common import HOST, Server, request, running

APPS = ("raw", "interlock", "starlette")


async def _open_stream(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
    await reader.readuntil(b": ready")
    return reader, writer


async def _wait_for(reader: asyncio.StreamReader, marker: bytes) -> float:
    await reader.readuntil(marker)
    return time.perf_counter()


class Target:
    """One app under test: its server, its open streams, its publishing connection, its figures."""

    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.publisher: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.times: list[float] = []
        self.cpu_s = 0.0

    async def open(self, streams: int) -> None:
        async with asyncio.timeout(120):
            for start in range(0, streams, 100):
                batch = min(100, streams - start)
                self.streams += await asyncio.gather(*(_open_stream(self.server.port) for _ in range(batch)))
        self.publisher = await asyncio.open_connection(HOST, self.server.port)

    async def fan_out(self, n: int, *, counted: bool) -> None:
        """Publish event *n* once; time until every stream has it."""
        assert self.publisher is not None
        marker = f"data: round-{n:04d}".encode()  # sse-starlette ends its lines with CRLF
        waiters = [asyncio.ensure_future(_wait_for(reader, marker)) for reader, _ in self.streams]
        cpu_before = self.server.cpu_s()
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(30):
                status, _ = await request(*self.publisher, "POST", "/publish", f"round-{n:04d}".encode())
                assert status == 202, status
                arrivals = await asyncio.gather(*waiters)
        except TimeoutError:
            arrived = sum(1 for waiter in waiters if waiter.done() and not waiter.cancelled())
            msg = f"{self.name}, round {n}: {arrived} of {len(waiters)} streams had the event within 30 s"
            raise RuntimeError(msg) from None
        if counted:
            self.times.append((max(arrivals) - sent) * 1000)
            self.cpu_s += self.server.cpu_s() - cpu_before

    def close(self) -> None:
        for _, writer in [*self.streams, *([self.publisher] if self.publisher else [])]:
            writer.close()


async def bench(targets: list[Target], streams: int, rounds: int) -> None:
    """Open every app's streams, then publish round-robin, so the machine's noise hits all alike."""
    try:
        for target in targets:
            await target.open(streams)
        for n in range(rounds + 2):  # two warm-up rounds
            for target in targets:
                await target.fan_out(n, counted=n >= 2)
                await asyncio.sleep(0.02)
    finally:
        for target in targets:
            target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default=",".join(APPS))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.streams + 256)), hard))
    with contextlib.ExitStack() as stack:
        targets = []
        for name in args.only.split(","):
            try:
                targets.append(Target(name, stack.enter_context(running(f"{name}_sse"))))
            except (ImportError, RuntimeError) as exc:
                print(f"{name}: skipped: {exc}")
        asyncio.run(bench(targets, args.streams, args.rounds))
        for target in targets:
            if "Traceback" in target.server.logs():
                print(f"{target.name}: the server logged a traceback:\n{target.server.logs()}")
    raw = next((statistics.median(t.times) for t in targets if t.name == "raw"), None)
    print(f"SSE fan-out: {args.streams} streams, one publish, {args.rounds} rounds per app, interleaved")
    print(f"{'app':<12}{'median ms':>11}{'p90 ms':>9}{'server CPU ms/publish':>23}{'speed vs raw':>14}")
    for target in targets:
        median = statistics.median(target.times)
        p90 = statistics.quantiles(target.times, n=10)[-1]
        cpu = target.cpu_s * 1000 / len(target.times)
        speed = f"{raw / median:.2f}" if raw else "-"
        print(f"{target.name:<12}{median:>11.1f}{p90:>9.1f}{cpu:>23.1f}{speed:>14}")


if __name__ == "__main__":
    main()
