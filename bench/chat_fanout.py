"""Room chat across two server processes: interlock on its SQLite and Redis layers against Channels on Redis.

For each stack (``bench/chat_apps.py``) two uvicorn processes serve the chat on two
ports and share one layer: a SQLite file for ``interlock``, the local Redis for
``interlock-redis`` (``RedisChannelLayer``) and for ``channels`` (channels_redis).
``--clients`` real WebSocket clients join one room, alternating between the two
servers, so every message crosses processes for half the room.  Then:

1. **paced**: every client sends ``--messages`` messages, one every ``--interval``
   seconds (clients staggered over the interval); each message reaches every member:
   delivery latency p50/p99, from the sender's ``send`` to a member's arrival (one
   client process, one clock);
2. **burst**: every client sends ``--messages`` messages back to back: deliveries/s from
   the first send until every member has every message.

Every member checks that it got each message exactly once and, per sender, in order;
the last column counts what was missing, doubled or out of order (0 is right).  Server
CPU is the two uvicorn processes' user+system time per delivery, plus redis-server's for
the two stacks on Redis (their layers run there too).

Run::

    .venv/bin/python bench/chat_fanout.py [--clients 20] [--messages 50] [--interval 0.05]
        [--only interlock,interlock-redis,channels]

The stacks on Redis need the Redis server on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil
from echo import free_port, stop_process
from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
STACKS = ("interlock", "interlock-redis", "channels")
ROOM = "bench"


class Server:
    """One uvicorn process serving a stack's chat."""

    def __init__(self, stack: str, env: dict[str, str], log: IO[bytes]) -> None:
        self.port = free_port()
        self.log = log
        cmd = [
            sys.executable, "-m", "uvicorn", f"chat_apps:make_{stack.replace('-', '_')}", "--factory",
            "--app-dir", str(BENCH), "--host", HOST, "--port", str(self.port),
            "--lifespan", "off", "--ws-per-message-deflate", "false",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float) -> None:
        """Wait until the server accepts connections; raise with its output if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
                msg = f"server exited at start-up: {' | '.join(tail) or self.proc.returncode}"
                raise RuntimeError(msg)
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        msg = f"server did not accept connections within {timeout:.0f} s"
        raise RuntimeError(msg)

    def cpu_s(self) -> float:
        """User+system CPU seconds so far."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        """Terminate (then kill) the server."""
        stop_process(self.proc)


@contextlib.contextmanager
def servers(stack: str, tmp: Path) -> Iterator[list[Server]]:
    """Two servers of *stack* sharing one layer."""
    env = {"CHAT_BENCH_DB": str(tmp / "chat.sqlite3"), "CHAT_BENCH_PREFIX": f"chatbench{time.monotonic_ns()}"}
    with tempfile.TemporaryFile() as log_a, tempfile.TemporaryFile() as log_b:
        started = [Server(stack, env, log_a), Server(stack, env, log_b)]
        try:
            for server in started:
                server.wait_ready(30)
            yield started
        finally:
            for server in started:
                server.stop()


def redis_server() -> psutil.Process | None:
    """The local redis-server process, if this user can see it."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "redis-server":
            return proc
    return None


class Phase:
    """What the members of the room received during one phase."""

    def __init__(self, name: str, clients: int, messages: int) -> None:
        self.name = name
        self.expected = clients * messages
        self.seen: list[dict[int, list[int]]] = [{} for _ in range(clients)]
        self.counts = [0] * clients
        self.latencies_ns: list[int] = []
        self.complete = asyncio.Event()
        self.remaining = clients

    def record(self, member: int, sender: int, seq: int, sent_ns: int) -> None:
        """Note one arrival at *member*."""
        self.latencies_ns.append(time.monotonic_ns() - sent_ns)
        self.seen[member].setdefault(sender, []).append(seq)
        self.counts[member] += 1
        if self.counts[member] == self.expected:
            self.remaining -= 1
            if self.remaining == 0:
                self.complete.set()

    def errors(self, messages: int) -> int:
        """Messages missing, doubled or out of order, over all members."""
        wrong = 0
        for member in self.seen:
            for sender in range(len(self.seen)):
                got = member.get(sender, [])
                wrong += sum(1 for a, b in zip(got, range(messages), strict=False) if a != b)
                wrong += abs(len(got) - messages)
        return wrong


async def read(ws: ClientConnection, member: int, phases: dict[str, Phase]) -> None:
    """Record every chat message *member* receives, by the phase it belongs to."""
    async for raw in ws:
        text = json.loads(raw)["message"]
        name, sender, seq, sent_ns = text.split(":")
        phases[name].record(member, int(sender), int(seq), int(sent_ns))


async def send_all(ws: ClientConnection, phase: str, sender: int, messages: int, interval: float, delay: float) -> None:
    """Send *messages* chat messages, *interval* apart (0: back to back), after *delay*."""
    await asyncio.sleep(delay)
    for seq in range(messages):
        await ws.send(json.dumps({"message": f"{phase}:{sender}:{seq}:{time.monotonic_ns()}"}))
        if interval:
            await asyncio.sleep(interval)


async def bench_stack(stack: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Serve *stack* twice, fill a room, run both phases; return the figures."""
    redis = redis_server() if stack != "interlock" else None
    with servers(stack, tmp) as pair:
        sockets: list[ClientConnection] = []
        phases: dict[str, Phase] = {}
        async with contextlib.AsyncExitStack() as stack_exit:
            for member in range(args.clients):
                port = pair[member % 2].port
                uri = f"ws://{HOST}:{port}/ws/chat/{ROOM}/?name=m{member}"
                sockets.append(await stack_exit.enter_async_context(connect(uri, compression=None)))
            readers = [asyncio.create_task(read(ws, i, phases)) for i, ws in enumerate(sockets)]
            result: dict[str, Any] = {}
            for name, interval in (("paced", args.interval), ("burst", 0.0)):
                phase = phases[name] = Phase(name, args.clients, args.messages)
                cpu = [server.cpu_s() for server in pair]
                redis_cpu = _cpu(redis)
                start = time.monotonic()
                senders = [
                    asyncio.create_task(send_all(ws, name, i, args.messages, interval, interval * i / args.clients))
                    for i, ws in enumerate(sockets)
                ]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(phase.complete.wait(), args.phase_timeout)
                elapsed = time.monotonic() - start
                await asyncio.gather(*senders)
                deliveries = sum(phase.counts)
                server_cpu = sum(server.cpu_s() for server in pair) - sum(cpu) + _cpu(redis) - redis_cpu
                latencies = sorted(phase.latencies_ns)
                result[name] = {
                    "deliveries": deliveries,
                    "per_s": deliveries / elapsed,
                    "p50_ms": latencies[len(latencies) // 2] / 1e6 if latencies else float("nan"),
                    "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6 if latencies else float("nan"),
                    "cpu_us": server_cpu / deliveries * 1e6 if deliveries else float("nan"),
                    "errors": phase.errors(args.messages),
                }
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    return result


def _cpu(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return float(times.user + times.system)


def main() -> None:
    """Run each stack and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="messages each client sends per phase")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a client's paced messages")
    parser.add_argument("--phase-timeout", type=float, default=60.0)
    parser.add_argument("--only", default=",".join(STACKS))
    args = parser.parse_args()
    rows: dict[str, dict[str, Any] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stack in [s for s in STACKS if s in args.only.split(",")]:
            try:
                rows[stack] = asyncio.run(bench_stack(stack, args, Path(tmp)))
            except Exception as exc:  # a missing package or server skips that stack
                rows[stack] = f"skipped: {type(exc).__name__}: {exc}"
    each = args.clients * args.clients * args.messages
    print(
        f"room chat on 2 uvicorn processes, {args.clients} clients in one room, {args.messages} messages each "
        f"per phase ({each} deliveries); paced: one every {args.interval * 1000:g} ms per client"
    )
    print(f"{'stack':<16} {'phase':<6} {'deliveries/s':>12} {'p50 ms':>8} {'p99 ms':>8}", end="")
    print(f" {'CPU µs/delivery':>16} {'wrong':>6}")
    for stack, row in rows.items():
        if isinstance(row, str):
            print(f"{stack:<16} {row}")
            continue
        for name, figures in row.items():
            print(
                f"{stack:<16} {name:<6} {figures['per_s']:>12.0f} {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f} "
                f"{figures['cpu_us']:>16.1f} {figures['errors']:>6}"
            )
    theirs = rows.get("channels")
    for stack in ("interlock", "interlock-redis"):
        ours = rows.get(stack)
        if isinstance(ours, dict) and isinstance(theirs, dict):
            rate = ours["burst"]["per_s"] / theirs["burst"]["per_s"]
            cpu = ours["burst"]["cpu_us"] / theirs["burst"]["cpu_us"]
            print(f"burst: {stack} delivers {rate:.1f}x Channels' deliveries/s at {cpu:.2f}x its CPU per delivery")


if __name__ == "__main__":
    main()
