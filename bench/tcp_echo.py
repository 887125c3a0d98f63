"""TCP line echo: interlock's TcpServer + LineActor against a raw anyio TCP echo server, in one run.

Each server runs in a process of its own (asyncio, or ``--backend trio``); this process opens
``--clients`` connections and, on each, sends ``--lines`` lines one at a time, waiting for
each echo (round trip), then ``--burst`` lines at once and reads them back (throughput).
The raw server does what the protocol needs and no more: split lines, check UTF-8, write
the line back. The TcpServer is given limits high enough not to trip (rate 1e9 lines/s).

The machine is shared, so ``--repeat N`` runs the two servers N times in turns (raw,
interlock, raw, interlock, ...) and prints each pair's ratio and their median: a load
that comes and goes hits both sides of a pair alike. Figures per run: lines/s over the
whole run (round trips and bursts) and over the burst phase alone (all clients' burst
lines over the time from the first burst sent to the last echo read), and the server
process's CPU time per line echoed (what such a load changes least: the server's work,
not its waits).

``--callgrind DIR`` runs each server under valgrind's callgrind, counting only while the
clients run, and prints the server's instructions per line echoed: a figure a shared
machine's load does not move (the run itself is some 50 times slower, so give it a
smaller load, e.g. ``--clients 5 --lines 200 --burst 2000``).

Run::

    .venv/bin/python bench/tcp_echo.py [--clients 20] [--lines 500] [--burst 5000] [--backend asyncio] [--repeat 1]
                                       [--callgrind DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.abc

SERVERS = ("raw", "interlock")


def serve(kind: str, port: int, backend: str) -> None:
    """Run one echo server (in the child process)."""
    if kind == "raw":

        async def handle(stream: anyio.abc.SocketStream) -> None:
            buffer = b""
            async with stream:
                try:
                    while True:
                        buffer += await stream.receive()
                        *lines, buffer = buffer.split(b"\n")
                        out = b"".join(line.decode("utf-8").encode() + b"\n" for line in lines)
                        if out:
                            await stream.send(out)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return

        async def main() -> None:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
            print("ready", flush=True)
            await listener.serve(handle)

    else:
        from interlock.actors.tcp import LineActor, TcpServer  # noqa: PLC0415

        class Echo(LineActor):
            async def receive_line(self, line: str) -> None:
                await self.send_line(line)

        server = TcpServer(Echo.as_asgi(), "127.0.0.1", port, max_lines_per_second=1e9, burst=10**9)

        async def main() -> None:
            async with anyio.create_task_group() as tasks:
                await tasks.start(server.serve)
                print("ready", flush=True)

    anyio.run(main, backend=backend)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def client(port: int, lines: int, burst: int, rtts: list[float], spans: list[tuple[float, float]]) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        buffer = b""
        for n in range(lines):
            sent = time.perf_counter()
            await stream.send(b"line %d\n" % n)
            while b"\n" not in buffer:
                buffer += await stream.receive()
            _, _, buffer = buffer.partition(b"\n")
            rtts.append(time.perf_counter() - sent)
        started = time.perf_counter()
        await stream.send(b"".join(b"burst line %d\n" % n for n in range(burst)))
        seen = 0
        while seen < burst:
            chunk = await stream.receive()
            seen += chunk.count(b"\n")
        spans.append((started, time.perf_counter()))


async def measure(port: int, args: argparse.Namespace) -> tuple[list[float], float, float]:
    """Round trips (sorted), lines/s over the whole run, lines/s over the burst phase."""
    rtts: list[float] = []
    spans: list[tuple[float, float]] = []
    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(args.clients):
            tasks.start_soon(client, port, args.lines, args.burst, rtts, spans)
    total = time.perf_counter() - started
    burst_time = max(end for _, end in spans) - min(start for start, _ in spans)
    return sorted(rtts), args.clients * (args.lines + args.burst) / total, args.clients * args.burst / burst_time


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process *pid* has used so far (Linux; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def callgrind_control(pid: int, *options: str) -> None:
    subprocess.run(["callgrind_control", *options, str(pid)], check=True, capture_output=True, timeout=60)


def instructions(out: Path) -> int:
    """The instruction total of the last dump callgrind wrote next to *out*."""
    dumps = sorted(out.parent.glob(f"{out.name}.*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump next to {out}")
    for line in dumps[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dumps[-1]}")


def run_one(kind: str, args: argparse.Namespace, run: int) -> tuple[float, float, float, float, float, float]:
    """Start one server in a process of its own, measure it, stop it.

    p50, p99 (us), lines/s, burst lines/s, the server's CPU microseconds per line (all its
    CPU time over the run, startup excluded, over every line it echoed: what a load that
    comes and goes changes least), and its instructions per line (``--callgrind``; else NaN).
    """
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, str(port), "--backend", args.backend]
    out: Path | None = None
    if args.callgrind is not None:
        out = Path(args.callgrind).resolve() / f"tcp-{kind}-{args.backend}-{run}.callgrind"
        out.parent.mkdir(parents=True, exist_ok=True)
        for old in out.parent.glob(f"{out.name}*"):
            old.unlink()
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    counted = math.nan
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        if out is not None:
            callgrind_control(process.pid, "--instr=on")
        started = cpu_seconds(process.pid)
        rtts, rate, burst_rate = anyio.run(measure, port, args)
        cpu = cpu_seconds(process.pid) - started
        if out is not None:
            callgrind_control(process.pid, "--dump=load")
            callgrind_control(process.pid, "--instr=off")
            counted = float(instructions(out))
    finally:
        process.terminate()
        process.wait(30)
    lines = args.clients * (args.lines + args.burst)
    per_line = cpu / lines * 1e6
    p50, p99 = statistics.median(rtts) * 1e6, rtts[int(len(rtts) * 0.99) - 1] * 1e6
    return p50, p99, rate, burst_rate, per_line, counted / lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs, in turns")
    parser.add_argument("--callgrind", metavar="DIR", help="count each server's instructions per line (valgrind)")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.backend)
        return
    load = os.getloadavg()[0]
    print(f"{args.clients} clients, {args.lines} round trips + {args.burst} burst lines each, server on {args.backend}")
    print(f"load average before: {load:.2f} on {os.cpu_count()} cores")
    print(f"{'run':<4} {'server':<10} {'p50 us':>8} {'p99 us':>8} {'lines/s':>10} {'burst/s':>10} {'cpu us/line':>12}")
    ratios: list[tuple[float, float]] = []
    for run in range(1, args.repeat + 1):
        results = {kind: run_one(kind, args, run) for kind in SERVERS}
        for kind, (p50, p99, rate, burst_rate, per_line, _) in results.items():
            print(f"{run:<4} {kind:<10} {p50:>8.0f} {p99:>8.0f} {rate:>10.0f} {burst_rate:>10.0f} {per_line:>12.2f}")
        if args.callgrind is not None:
            raw_i, ours_i = results["raw"][5], results["interlock"][5]
            print(
                f"{run:<4} instructions per line (callgrind): raw {raw_i:,.0f}, interlock {ours_i:,.0f} "
                f"({ours_i / raw_i:.2f}x raw's)"
            )
        ratio = (results["interlock"][2] / results["raw"][2], results["interlock"][3] / results["raw"][3])
        ratios.append(ratio)
        cpu = results["raw"][4] / results["interlock"][4]
        print(
            f"{run:<4} ratio interlock/raw: {ratio[0]:.2f} (whole run), {ratio[1]:.2f} (bursts), "
            f"{cpu:.2f} (lines per server CPU second)"
        )
    if args.repeat > 1:
        whole = statistics.median(r[0] for r in ratios)
        bursts = statistics.median(r[1] for r in ratios)
        low = min(min(r) for r in ratios)
        print(f"median ratio: {whole:.2f} (whole run), {bursts:.2f} (bursts); lowest of any run: {low:.2f}")


if __name__ == "__main__":
    main()
