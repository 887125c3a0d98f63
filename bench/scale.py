"""Broadcast to 15,000 live WebSockets: raw ASGI, interlock on its in-memory and SQLite layers, Channels.

For each app (``bench/scale_apps.py``) one uvicorn process serves it (``scale_server.py``)
and ``--clients`` client processes (this script, ``--worker``) open ``--conns``
connections between them, all in one group. Then:

1. **connect**: connections/s until all are open, and the server's RSS per connection
   (RSS after connecting minus before, over the connections);
2. **broadcast**: ``--bursts`` times, one client sends one text frame holding the time of
   ``time.monotonic_ns()`` (one clock for the whole machine); every connection records
   when it arrived.  Per burst: p50/p99/max of that one-way time over all connections,
   and the table shows the median over bursts; lost deliveries count connections that
   had not got a burst after ``--burst-timeout`` seconds.  The server logs its garbage
   collections (``SCALE_GCLOG``): the row's note counts the full (generation 2) ones
   that ran while the bursts did, and their milliseconds.  Server CPU is per burst;
   client CPU is the busiest client process's per burst (if it approaches the burst's
   time, the client is the bottleneck and the row says so);
3. **teardown**: every client closes its connections (close frame, then waits for the
   server's close and the end of the stream): connections/s until all ended.

The clients are a minimal WebSocket client on asyncio protocols (handshake, unmasked
server frames parsed by hand, zero-masked client frames), so a frame costs a client a
few microseconds.  Channels' ``InMemoryChannelLayer`` scans every channel on each
receive (O(n²) to drain a group send), so its row is capped at ``--channels-conns``
connections (3,000 by default) and says so.  Every process raises RLIMIT_NOFILE to the
hard limit (20,000 here); everything is on 127.0.0.1; every phase is bounded in time.

Run::

    .venv/bin/python bench/scale.py [--conns 15000] [--clients 3] [--bursts 5]
        [--only raw,memory,sqlite,channels] [--loop auto|asyncio|uvloop] [--quick] [--freeze]

``--freeze`` has each server call ``gc.freeze()`` once its connections are open (what an
application can do after its start-up): the objects alive then are never scanned again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import psutil

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
APPS = ("raw", "memory", "sqlite", "channels")
HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
CLOSE_FRAME = bytes([0x88, 0x82, 0, 0, 0, 0]) + (1000).to_bytes(2, "big")  # close 1000, zero mask


def raise_file_limit() -> None:
    """Raise RLIMIT_NOFILE to its hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def text_frame(text: str) -> bytes:
    """A masked (zero mask) client text frame."""
    payload = text.encode()
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload), 0, 0, 0, 0]) + payload


# --------------------------------------------------------------------------
# the client worker
# --------------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """One client connection: the handshake, then server frames parsed by hand."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.buf = bytearray()
        self.open = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(HANDSHAKE)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(bytes(buf[:60]).decode("latin-1")))
                return
            del buf[: end + 4]
            self.open = True
            self.opened.set_result(None)
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            start = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, start = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + length:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == 1:
                self.worker.arrived(payload)
            elif opcode == 8 and self.transport is not None:  # the server closes: so do we
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))
        if not self.ended.done():
            self.ended.set_result(None)
        self.worker.lost += self.open


class Worker:
    """A client process: opens its connections, records arrivals, answers the runner on stdin."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: list[Conn] = []
        self.latencies: dict[int, list[int]] = {}
        self.lost = 0

    def arrived(self, payload: bytes) -> None:
        now = time.monotonic_ns()
        _, burst, sent = payload.split(b":")
        self.latencies.setdefault(int(burst), []).append(now - int(sent))

    async def connect(self, count: int, in_flight: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(in_flight)
        failed = 0

        async def one() -> None:
            nonlocal failed
            async with gate:
                try:
                    _, conn = await loop.create_connection(lambda: Conn(self), HOST, self.port)
                    await asyncio.wait_for(conn.opened, 60)
                    self.conns.append(conn)
                except (OSError, RuntimeError, TimeoutError):
                    failed += 1

        cpu, start = time.process_time(), time.monotonic()
        await asyncio.gather(*(one() for _ in range(count)))
        return {"open": len(self.conns), "failed": failed, "s": time.monotonic() - start,
                "cpu": time.process_time() - cpu}  # fmt: skip

    async def send(self, burst: int) -> dict[str, Any]:
        assert self.conns[0].transport is not None
        self.conns[0].transport.write(text_frame(f"b:{burst}:{time.monotonic_ns()}"))
        return {}

    async def collect(self, burst: int, timeout: float) -> dict[str, Any]:
        cpu = time.process_time()
        deadline = time.monotonic() + timeout
        while len(self.latencies.get(burst, ())) < len(self.conns) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        got = self.latencies.pop(burst, [])
        return {"latencies_us": sorted(ns // 1000 for ns in got), "expected": len(self.conns),
                "cpu": time.process_time() - cpu}  # fmt: skip

    async def close(self, timeout: float) -> dict[str, Any]:
        start = time.monotonic()
        for conn in self.conns:
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.write(CLOSE_FRAME)
        ends = [conn.ended for conn in self.conns]
        done, pending = await asyncio.wait(ends, timeout=timeout) if ends else (set(), set())
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.abort()
        return {"closed": len(done), "unclosed": len(pending), "s": time.monotonic() - start}


async def worker_main(port: int) -> None:
    """Serve the runner's commands, one JSON line each way."""
    worker = Worker(port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu0 = time.process_time()
    while line := await reader.readline():
        command = json.loads(line)
        kind = command.pop("cmd")
        if kind == "quit":
            break
        cpu = time.process_time()
        answer = await getattr(worker, kind)(**command)
        answer.setdefault("cpu", time.process_time() - cpu)
        answer["cpu_total"] = time.process_time() - cpu0
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------


class Client:
    """A worker process, spoken to one JSON line at a time."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def ask(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            msg = "a client process ended"
            raise RuntimeError(msg)
        result: dict[str, Any] = json.loads(line)
        return result

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.ask(cmd="quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def all_ask(clients: list[Client], **command: Any) -> list[dict[str, Any]]:
    for client in clients:
        client.ask(**command)
    return [client.answer() for client in clients]


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            msg = f"server exited at start-up: {' | '.join(tail)}"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    msg = "server did not start"
    raise RuntimeError(msg)


def bench_app(app: str, conns: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Serve *app*, connect, broadcast, tear down; return the figures."""
    from echo import free_port, stop_process  # noqa: PLC0415 - bench/ is on the path only once main() ran

    port = free_port()
    gclog = tmp / f"gc{time.monotonic_ns()}.txt"
    env = {**os.environ, "SCALE_DB": str(tmp / f"scale{time.monotonic_ns()}.sqlite3"), "SCALE_GCLOG": str(gclog)}
    if args.profile == app:
        env["SCALE_PROFILE"] = str(BENCH / f"scale_{app}.prof")
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, str(BENCH / "scale_server.py"), app, str(port), args.loop],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        clients: list[Client] = []
        try:
            wait_ready(server, port, log)
            ps = psutil.Process(server.pid)
            clients = [Client(port) for _ in range(args.clients)]
            # warm-up: a few connections and a broadcast, then closed
            all_ask(clients, cmd="connect", count=5, in_flight=5)
            clients[0].ask(cmd="send", burst=-1)
            clients[0].answer()
            all_ask(clients, cmd="collect", burst=-1, timeout=5)
            all_ask(clients, cmd="close", timeout=10)
            for client in clients:
                client.stop()
            clients = [Client(port) for _ in range(args.clients)]
            time.sleep(0.5)
            rss0 = ps.memory_info().rss
            shares = [conns // args.clients + (i < conns % args.clients) for i in range(args.clients)]
            start = time.monotonic()
            for client, share in zip(clients, shares, strict=True):
                client.ask(cmd="connect", count=share, in_flight=args.in_flight)
            opened = [client.answer() for client in clients]
            connect_s = time.monotonic() - start
            live = sum(o["open"] for o in opened)
            time.sleep(1.0)
            rss1 = ps.memory_info().rss
            if args.freeze:  # what an app's gc.freeze() after its start-up gives
                server.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
            bursts: list[dict[str, float]] = []
            if args.profile == app:  # the profile covers the bursts only
                server.send_signal(signal.SIGUSR2)
            bursts_from = time.monotonic()
            burst_deadline = time.monotonic() + args.broadcast_budget
            for burst in range(args.bursts):
                if time.monotonic() > burst_deadline:
                    break
                cpu0 = sum(ps.cpu_times()[:2])
                clients[0].ask(cmd="send", burst=burst)
                clients[0].answer()
                answers = all_ask(clients, cmd="collect", burst=burst, timeout=args.burst_timeout)
                cpu1 = sum(ps.cpu_times()[:2])
                latencies = sorted(us for a in answers for us in a["latencies_us"])
                expected = sum(a["expected"] for a in answers)
                bursts.append({
                    "p50": latencies[len(latencies) // 2] / 1000 if latencies else float("nan"),
                    "p99": latencies[int((len(latencies) - 1) * 0.99)] / 1000 if latencies else float("nan"),
                    "max": latencies[-1] / 1000 if latencies else float("nan"),
                    "lost": expected - len(latencies),
                    "server_cpu": (cpu1 - cpu0) * 1000,
                    "client_cpu": max(a["cpu"] for a in answers) * 1000,
                })  # fmt: skip
                time.sleep(args.pause)
            bursts_to = time.monotonic()
            if args.profile == app:
                server.send_signal(signal.SIGUSR2)
            start = time.monotonic()
            closed = all_ask(clients, cmd="close", timeout=args.close_timeout)
            close_s = time.monotonic() - start
        finally:
            for client in clients:
                client.stop()
            if server.poll() is None:  # a graceful shutdown first: a profile is written at exit
                server.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(timeout=60)
            stop_process(server)
    full = []  # the full collections while the bursts ran: (start, ms)
    if gclog.exists():
        for line in gclog.read_text().splitlines():
            at, generation, ms, _ = line.split()
            if generation == "2" and bursts_from <= float(at) <= bursts_to:
                full.append(float(ms))
    return {
        "gen2": len(full),
        "gen2_ms": sum(full),
        "conns": live,
        "failed": sum(o["failed"] for o in opened),
        "connect_per_s": live / connect_s,
        "rss_kib": (rss1 - rss0) / 1024 / max(live, 1),
        "bursts": bursts,
        "close_per_s": sum(c["closed"] for c in closed) / close_s,
        "unclosed": sum(c["unclosed"] for c in closed),
    }


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows) if rows else float("nan")


def main() -> None:
    """Run each app and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, default=15000)
    parser.add_argument("--channels-conns", type=int, default=3000, help="Channels' cap (its O(n²) receive)")
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between bursts")
    parser.add_argument("--burst-timeout", type=float, default=30.0)
    parser.add_argument("--broadcast-budget", type=float, default=60.0, help="seconds of bursts at most, per app")
    parser.add_argument("--close-timeout", type=float, default=60.0)
    parser.add_argument("--in-flight", type=int, default=200, help="handshakes in flight per client process")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--only", default=",".join(APPS))
    parser.add_argument("--profile", default="", help="profile its server during the bursts (bench/scale_APP.prof)")
    parser.add_argument("--quick", action="store_true", help="1,500 connections, 300 for Channels, 3 bursts")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--freeze", action="store_true", help="have each server call gc.freeze() once connected")
    args = parser.parse_args()
    raise_file_limit()
    if args.worker is not None:
        asyncio.run(worker_main(args.worker))
        return
    if args.quick:
        args.conns, args.channels_conns, args.bursts = 1500, 300, 3
    sys.path.insert(0, str(BENCH))
    rows: dict[str, dict[str, Any] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for app in [a for a in APPS if a in args.only.split(",")]:
            conns = min(args.conns, args.channels_conns) if app == "channels" else args.conns
            try:
                rows[app] = bench_app(app, conns, args, Path(tmp))
            except Exception as exc:  # a missing package skips that app
                rows[app] = f"skipped: {type(exc).__name__}: {exc}"
            print(f"{app}: done", file=sys.stderr)
    print(
        f"broadcast to every connection, one uvicorn process (--loop {args.loop}{', gc.freeze()' * args.freeze}), "
        f"{args.clients} client "
        f"processes; latency = one-way time to each connection, median over bursts of each burst's p50/p99/max"
    )
    print(f"{'app':<9} {'conns':>6} {'conn/s':>7} {'KiB/conn':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'bursts: max ms':>24} {'lost':>5} {'srv CPU ms':>10} {'cli CPU ms':>10} {'close/s':>8}")  # fmt: skip
    for app, row in rows.items():
        if isinstance(row, str):
            print(f"{app:<9} {row}")
            continue
        each = ",".join(f"{b['max']:.0f}" for b in row["bursts"])
        lost = sum(int(b["lost"]) for b in row["bursts"])
        print(
            f"{app:<9} {row['conns']:>6} {row['connect_per_s']:>7.0f} {row['rss_kib']:>8.1f} "
            f"{median(row['bursts'], 'p50'):>8.1f} {median(row['bursts'], 'p99'):>8.1f} "
            f"{median(row['bursts'], 'max'):>8.1f} {each:>24} {lost:>5} {median(row['bursts'], 'server_cpu'):>10.0f} "
            f"{median(row['bursts'], 'client_cpu'):>10.0f} {row['close_per_s']:>8.0f}"
        )
        notes = []
        notes.append(f"full collections while the bursts ran: {row['gen2']}, {row['gen2_ms']:.0f} ms")
        if row["failed"] or row["unclosed"]:
            notes.append(f"{row['failed']} connections failed, {row['unclosed']} did not close in time")
        if app == "channels" and row["conns"] < args.conns:
            notes.append(f"capped at {row['conns']} connections (--channels-conns: its receive scans every channel)")
        if notes:
            print(f"{'':<9} note: " + "; ".join(notes))
    base = rows.get("raw")
    limit: dict[str, Any] = base if isinstance(base, dict) else {}
    for name in ("memory", "sqlite", "channels"):
        other = rows.get(name)
        if limit and isinstance(other, dict) and other["conns"] == limit["conns"]:
            ratio = median(other["bursts"], "max") / median(limit["bursts"], "max")
            extra = other["rss_kib"] - limit["rss_kib"]
            print(
                f"{name}: broadcast {ratio:.2f}x raw (last delivery, median over bursts), RSS raw {extra:+.1f} KiB/conn"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
