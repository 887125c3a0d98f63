"""WebSocket echo benchmark: raw ASGI vs interlock actors (plain, DSL, JSON, JSON DSL) vs Django Channels.

For every selected app (see ``bench/echo_apps.py``) the runner starts uvicorn in
its own subprocess on 127.0.0.1, waits until it accepts connections and then,
from this process (asyncio client, ``websockets`` library):

1. warm-up: a few clients exchange a few messages (not counted);
2. idle memory: opens ``--idle`` connections in bounded batches, reads the
   server's RSS and reports ``(RSS_with_K - RSS_baseline) / K`` in KiB;
3. throughput/latency: ``--clients`` concurrent connections each send
   ``--messages`` messages one at a time, awaiting each echo; reports msgs/s,
   p50/p99 round-trip latency and the server's CPU time (user+sys) per message.

Client and server share the machine, so server CPU per message is the most
robust figure; msgs/s and latency also depend on the client's own CPU use.

Usage::

    .venv/bin/python bench/echo.py [--clients 100] [--messages 200] [--idle 1000]
                                   [--only raw,interlock,seed,seedcopy,dsl,json,jsondsl,channels] [--json FILE]
                                   [--loop uvloop|asyncio|both] [--repeat N] [--callgrind DIR] [--profile DIR]

``seed`` is a consumer written like the seed's (Channels' names from ``interlock.actors.compat``,
an ``async def connect()`` awaiting ``accept()``); ``seedcopy`` serves the same factory from a
byte-identical copy of ``echo_apps.py`` under another module name. On a shared machine, compare
rows only within a turn (``--repeat``), read the ``others`` column (the CPU the rest of the
machine used meanwhile), and count instructions (``--callgrind``) for differences of a few per cent.

Text frames carry a small JSON object (``{"type": "echo", "data": "xx…"}``), so the
JSON apps (``JsonWebsocketActor`` and the DSL's ``JsonStateActor``) can decode and
re-encode it; the other apps echo the text as it is.

Only loopback traffic; every phase is bounded in count and in time, and the
server subprocess is always terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import pstats
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import psutil
from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
APPS: tuple[str, ...] = ("raw", "interlock", "seed", "seedcopy", "dsl", "json", "jsondsl", "channels")
"""Known apps, in run order; each maps to ``echo_apps:make_<name>`` (``seedcopy``: see ``app_target``)."""
DEFAULT_APPS: tuple[str, ...] = tuple(app for app in APPS if app != "seedcopy")

T = TypeVar("T")


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


@dataclass
class LoadRound:
    """One throughput/latency round: every client sends its messages once."""

    wall_s: float
    msgs_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_us_per_msg: float
    server_cpu_util: float  # server CPU seconds / wall second
    client_cpu_util: float  # this process's CPU seconds / wall second
    others_cpu_util: float  # the rest of the machine's busy CPU seconds / wall second (neighbours)
    steal_util: float  # CPU seconds the hypervisor gave others / wall second


@dataclass
class AppResult:
    """Figures for one app; ``None`` where a phase did not run or failed.

    Throughput/latency figures are medians over the load rounds (``max_ms`` is
    the maximum); each round is kept in ``rounds``.
    """

    app: str
    loop: str = "uvloop"  # the server's loop
    turn: int = 1  # which of the --repeat turns
    status: str = "ok"  # "ok" | "skipped" | "failed"
    reason: str | None = None
    # throughput / latency
    clients: int = 0
    messages_per_client: int = 0
    total_messages: int = 0
    wall_s: float | None = None
    msgs_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    server_cpu_us_per_msg: float | None = None
    server_cpu_util: float | None = None
    client_cpu_util: float | None = None
    others_cpu_util: float | None = None
    rounds: list[LoadRound] = field(default_factory=list)
    # idle memory
    idle_conns: int = 0
    rss_baseline_kib: float | None = None
    rss_idle_kib: float | None = None
    kib_per_idle_conn: float | None = None
    server_cpu_us_per_connect: float | None = None
    server_stderr_tail: list[str] = field(default_factory=list)
    profile: str | None = None  # the server's cProfile stats of the load rounds (--profile)
    instructions_per_msg: float | None = None  # callgrind's count over the load rounds (--callgrind)


class BenchError(Exception):
    """A phase failed; the message says which and why."""


class AppUnavailableError(BenchError):
    """The server exited before accepting connections (e.g. an import failed)."""


# --------------------------------------------------------------------------
# server subprocess
# --------------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the server if this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


_KNOWN_NOISE = ("UvicornDeprecationWarning", "  warnings.warn(")
"""Server output lines not worth reporting (uvicorn deprecates ``--ws websockets``)."""


def _tail(stream: IO[bytes], lines: int = 15) -> list[str]:
    """Last non-empty lines the server printed (stdout and stderr)."""
    # pread: leave the file offset (shared with the server's stdout) alone
    fd = stream.fileno()
    text = os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line.strip() and not any(noise in line for noise in _KNOWN_NOISE)]
    return kept[-lines:]


COPY_MODULE = "echo_apps_copy"
"""The module name ``seedcopy`` serves ``make_seed`` from: a byte-identical copy of ``echo_apps.py``."""


def app_target(app: str, copy_dir: Path) -> tuple[str, Path]:
    """The uvicorn factory (``module:function``) and app directory serving *app*."""
    if app == "seedcopy":
        copy = copy_dir / f"{COPY_MODULE}.py"
        if not copy.exists():
            copy.write_bytes((BENCH_DIR / "echo_apps.py").read_bytes())
        return f"{COPY_MODULE}:make_seed", copy_dir
    return f"echo_apps:make_{app}", BENCH_DIR


class Server:
    """uvicorn serving one of the echo apps in a child process."""

    def __init__(
        self, app: str, loop: str, args: argparse.Namespace, log: IO[bytes], profile: Path | None = None
    ) -> None:
        self.app = app
        self.port = free_port()
        self.log = log
        self.profile = profile
        self.callgrind: Path | None = None
        target, app_dir = app_target(app, args.copy_dir)
        prefix: list[str] = []
        if args.callgrind is not None:
            # instrumented only between callgrind_start() and callgrind_stop(): start-up runs at full speed
            self.callgrind = Path(args.callgrind) / f"{app}-{loop}-{args.turn}.callgrind"
            prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.callgrind}"]
        cmd = [
            *prefix, sys.executable, "-m", "uvicorn", target, "--factory",
            "--app-dir", str(app_dir),
            "--host", HOST, "--port", str(self.port),
            "--loop", loop, "--ws", args.ws,
            "--ws-per-message-deflate", "false",
            "--lifespan", "off",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("ECHO_PROFILE", None)
        if profile is not None:
            env["ECHO_PROFILE"] = str(profile)
        if args.hashseed is not None:
            env["PYTHONHASHSEED"] = str(args.hashseed)
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=BENCH_DIR,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the runner, which stops us
            preexec_fn=_die_with_parent(),  # noqa: PLW1509 (runner has no threads)
        )
        self.ps = psutil.Process(self.proc.pid)
        try:
            self._wait_ready(args.ready_timeout)
        except BaseException:
            self.stop()
            raise

    def profile_start(self) -> None:
        """Start the server's profile (``--profile``) or instruction count (``--callgrind``)."""
        if self.profile is not None:
            self.proc.send_signal(signal.SIGUSR1)
        if self.callgrind is not None:
            self._callgrind_control("--instr=on")

    def _callgrind_control(self, *options: str) -> None:
        subprocess.run(
            ["callgrind_control", *options, str(self.proc.pid)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def instructions(self) -> int:
        """Dump the callgrind counts since ``profile_start()`` and return the instructions counted."""
        assert self.callgrind is not None
        self._callgrind_control("--dump=load")
        self._callgrind_control("--instr=off")
        dumps = sorted(self.callgrind.parent.glob(f"{self.callgrind.name}.*"))
        if not dumps:
            raise BenchError(f"callgrind wrote no dump next to {self.callgrind}")
        for line in dumps[-1].read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise BenchError(f"no instruction total in {dumps[-1]}")

    def profile_stop(self, timeout: float = 30.0) -> None:
        """Stop the server's profile and wait until its file is written."""
        if self.profile is None:
            return
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while not Path(f"{self.profile}.gc.json").exists():
            if time.monotonic() > deadline:
                raise BenchError(f"the server wrote no profile to {self.profile} within {timeout:.0f} s")
            time.sleep(0.05)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = _tail(self.log)
                reason = tail[-1] if tail else f"exit code {self.proc.returncode}"
                raise AppUnavailableError(f"server exited at start-up: {reason}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise BenchError(f"server did not accept connections within {timeout:.0f} s")

    def cpu_s(self) -> float:
        """Server user+system CPU seconds so far."""
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_kib(self) -> float:
        """Server resident set size in KiB."""
        return float(self.ps.memory_info().rss) / 1024.0

    def stderr_tail(self, lines: int = 8) -> list[str]:
        """What the server logged (warning level and above), minus known noise."""
        return _tail(self.log, lines)

    def stop(self) -> None:
        """Terminate (then kill) the server; idempotent."""
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate *proc* (then kill it after 10 s) and reap it; nothing if it has ended."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_server(app: str, loop: str, args: argparse.Namespace, profile: Path | None = None) -> Iterator[Server]:
    with tempfile.TemporaryFile() as log:
        server = Server(app, loop, args, log, profile)
        try:
            yield server
        finally:
            server.stop()


# --------------------------------------------------------------------------
# client side
# --------------------------------------------------------------------------


def own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy_s() -> tuple[float, float]:
    """The whole machine's busy CPU seconds so far (every core, every process), and steal."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, getattr(t, "steal", 0.0)


async def open_many(uri: str, count: int, batch: int, into: list[ClientConnection]) -> None:
    """Open ``count`` connections, at most ``batch`` handshakes in flight at once.

    Connections are appended to ``into`` as soon as they are open, so the
    caller can close them even if this is cancelled half-way.
    """

    async def open_one() -> None:
        ws = await connect(
            uri,
            compression=None,  # measure the frameworks, not zlib
            proxy=None,  # never route loopback traffic through an env proxy
            ping_interval=None,
            open_timeout=30,
            close_timeout=5,
            max_queue=4,
        )
        into.append(ws)

    for start in range(0, count, batch):
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(batch, count - start)):
                tg.create_task(open_one())


async def close_many(conns: list[ClientConnection], batch: int, time_limit: float = 60) -> None:
    """Close all connections (bounded in time; aborts whatever is left)."""
    try:
        async with asyncio.timeout(time_limit):
            for start in range(0, len(conns), batch):
                await asyncio.gather(
                    *(ws.close() for ws in conns[start : start + batch]),
                    return_exceptions=True,
                )
    except TimeoutError:
        for ws in conns:
            ws.transport.abort()
    conns.clear()


async def echo_loop(ws: ClientConnection, count: int, payload: str | bytes, latencies_ns: list[int]) -> None:
    """Send ``count`` messages one at a time, awaiting (and checking) each echo."""
    for _ in range(count):
        t0 = time.perf_counter_ns()
        await ws.send(payload)
        reply = await ws.recv()
        latencies_ns.append(time.perf_counter_ns() - t0)
        if reply != payload:
            raise BenchError(f"echo mismatch: sent {payload!r:.40}, got {reply!r:.40}")


async def exchange(conns: list[ClientConnection], count: int, payload: str | bytes) -> list[int]:
    """Every connection runs ``echo_loop`` concurrently; returns all latencies (ns)."""
    latencies_ns: list[int] = []
    async with asyncio.TaskGroup() as tg:
        for ws in conns:
            tg.create_task(echo_loop(ws, count, payload, latencies_ns))
    return latencies_ns


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values."""
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


async def phase(name: str, time_limit: float, coro: Coroutine[Any, Any, T]) -> T:
    """Run one phase under a time bound, turning a timeout into a ``BenchError``."""
    try:
        async with asyncio.timeout(time_limit):
            return await coro
    except TimeoutError:
        raise BenchError(f"phase {name!r} exceeded {time_limit:.0f} s") from None


def json_payload(size: int) -> str:
    """A text frame of about *size* bytes that every app echoes unchanged: the JSON apps
    decode it and encode it again (``json.dumps`` of the decoded object is the same text)."""
    frame = json.dumps({"type": "echo", "data": ""})
    return json.dumps({"type": "echo", "data": "x" * max(0, size - len(frame))})


async def bench_app(server: Server, args: argparse.Namespace, result: AppResult) -> None:
    """All measurement phases against one running server; fills ``result``."""
    uri = f"ws://{HOST}:{server.port}/"
    payload: str | bytes = b"x" * args.size if args.binary else json_payload(args.size)
    batch: int = args.batch
    limit: float = args.phase_timeout
    conns: list[ClientConnection] = []
    try:
        # -- warm-up (not counted) -------------------------------------------
        warm = max(1, min(args.clients, 10))
        await phase("warm-up", limit, open_many(uri, warm, batch, conns))
        await phase("warm-up", limit, exchange(conns, args.warmup_messages, payload))
        await close_many(conns, batch)
        await asyncio.sleep(args.settle)

        # -- idle memory -------------------------------------------------------
        result.rss_baseline_kib = server.rss_kib()
        result.idle_conns = args.idle
        if args.idle > 0:
            cpu0 = server.cpu_s()
            await phase("idle", limit, open_many(uri, args.idle, batch, conns))
            await asyncio.sleep(args.settle)
            cpu1 = server.cpu_s()
            result.rss_idle_kib = server.rss_kib()
            result.kib_per_idle_conn = (result.rss_idle_kib - result.rss_baseline_kib) / args.idle
            result.server_cpu_us_per_connect = (cpu1 - cpu0) / args.idle * 1e6
            await close_many(conns, batch)
            await asyncio.sleep(args.settle)

        # -- throughput / latency ---------------------------------------------
        result.clients = args.clients
        result.messages_per_client = args.messages
        total = args.clients * args.messages
        result.total_messages = total
        await phase("connect", limit, open_many(uri, args.clients, batch, conns))
        await asyncio.sleep(args.settle)
        server.profile_start()
        for _ in range(args.rounds):
            await asyncio.sleep(args.settle)
            srv0, own0, (busy0, steal0), t0 = server.cpu_s(), own_cpu_s(), machine_busy_s(), time.perf_counter()
            lat = await phase("load", limit, exchange(conns, args.messages, payload))
            wall = time.perf_counter() - t0
            srv_cpu, own_cpu = server.cpu_s() - srv0, own_cpu_s() - own0
            busy1, steal1 = machine_busy_s()
            lat.sort()
            result.rounds.append(
                LoadRound(
                    wall_s=wall,
                    msgs_per_s=total / wall,
                    p50_ms=percentile(lat, 50) / 1e6,
                    p99_ms=percentile(lat, 99) / 1e6,
                    max_ms=lat[-1] / 1e6,
                    server_cpu_us_per_msg=srv_cpu / total * 1e6,
                    server_cpu_util=srv_cpu / wall,
                    client_cpu_util=own_cpu / wall,
                    others_cpu_util=max(0.0, busy1 - busy0 - srv_cpu - own_cpu) / wall,
                    steal_util=(steal1 - steal0) / wall,
                )
            )
        server.profile_stop()
        if server.callgrind is not None:
            result.instructions_per_msg = server.instructions() / (total * args.rounds)
        rounds = result.rounds
        result.wall_s = statistics.median(r.wall_s for r in rounds)
        result.msgs_per_s = statistics.median(r.msgs_per_s for r in rounds)
        result.p50_ms = statistics.median(r.p50_ms for r in rounds)
        result.p99_ms = statistics.median(r.p99_ms for r in rounds)
        result.max_ms = max(r.max_ms for r in rounds)
        result.server_cpu_us_per_msg = statistics.median(r.server_cpu_us_per_msg for r in rounds)
        result.server_cpu_util = statistics.median(r.server_cpu_util for r in rounds)
        result.client_cpu_util = statistics.median(r.client_cpu_util for r in rounds)
        result.others_cpu_util = statistics.median(r.others_cpu_util for r in rounds)
    finally:
        await close_many(conns, batch)


def new_loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        try:
            import uvloop  # noqa: PLC0415 (optional)
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_one(app: str, loop: str, turn: int, args: argparse.Namespace) -> AppResult:
    """Start the server for ``app`` on *loop*, benchmark it, always stop it."""
    result = AppResult(app=app, loop=loop, turn=turn)
    args.turn = turn
    profile: Path | None = None
    if args.profile is not None:
        profile = Path(args.profile) / f"{app}-{loop}-{turn}.pstats"
        profile.unlink(missing_ok=True)
        Path(f"{profile}.gc.json").unlink(missing_ok=True)
        result.profile = str(profile)
    try:
        with running_server(app, loop, args, profile) as server:
            try:
                with asyncio.Runner(loop_factory=new_loop_factory(args.client_loop)) as runner:
                    runner.run(bench_app(server, args, result))
            except Exception as exc:  # one broken app must not stop the rest
                result.status, result.reason = "failed", describe(exc)
            # anything the server logged at warning level or above
            result.server_stderr_tail = server.stderr_tail()
    except AppUnavailableError as exc:
        result.status, result.reason = "skipped", str(exc)
    except BenchError as exc:
        result.status, result.reason = "failed", str(exc)
    return result


def describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping TaskGroup exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


def comparisons(results: list[AppResult]) -> dict[str, dict[str, float | None]]:
    """Per app: throughput ratio, CPU/msg ratio and idle KiB/conn delta vs raw."""
    raw = next((r for r in results if r.app == "raw" and r.status == "ok"), None)
    out: dict[str, dict[str, float | None]] = {}
    for r in results:
        kib_delta: float | None = None
        if raw is not None and r.kib_per_idle_conn is not None and raw.kib_per_idle_conn is not None:
            kib_delta = r.kib_per_idle_conn - raw.kib_per_idle_conn
        out[r.app] = {
            "throughput_vs_raw": ratio(r.msgs_per_s, raw.msgs_per_s if raw else None),
            "cpu_per_msg_vs_raw": ratio(r.server_cpu_us_per_msg, raw.server_cpu_us_per_msg if raw else None),
            "kib_per_idle_conn_minus_raw": kib_delta,
            "instructions_vs_raw": ratio(r.instructions_per_msg, raw.instructions_per_msg if raw else None),
        }
    return out


def print_table(results: list[AppResult], args: argparse.Namespace) -> None:
    """One turn on one loop: every app's figures and its ratios to raw in the same group."""
    comp = comparisons(results)
    loop = results[0].loop if results else "?"
    turn = f"turn {results[0].turn} of {args.repeat}: " if results and args.repeat > 1 else ""
    header = (
        f"{'app':<10} {'msgs/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/msg':>10} "
        f"{'KiB/idle':>8} {'thr/raw':>7} {'CPU/raw':>7} {'ΔKiB/raw':>8} {'others':>6}"
    )
    print()
    print(
        f"{turn}{args.clients} clients x {args.messages} msgs x {args.rounds} rounds "
        f"(medians; {args.size} B "
        f"{'bytes' if args.binary else 'text'}), {args.idle} idle conns; "
        f"uvicorn --loop {loop} --ws {args.ws}; {os.cpu_count()} CPUs; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.status != "ok":
            print(f"{r.app:<10} {r.status.upper()}: {r.reason}")
            continue
        c = comp[r.app]
        print(
            f"{r.app:<10} {fmt(r.msgs_per_s, '9.0f')} {fmt(r.p50_ms, '7.2f')} "
            f"{fmt(r.p99_ms, '7.2f')} {fmt(r.server_cpu_us_per_msg, '10.1f')} "
            f"{fmt(r.kib_per_idle_conn, '8.1f')} {fmt(c['throughput_vs_raw'], '7.2f')} "
            f"{fmt(c['cpu_per_msg_vs_raw'], '7.2f')} {fmt(c['kib_per_idle_conn_minus_raw'], '+8.1f')} "
            f"{fmt(r.others_cpu_util, '6.0%')}"
        )
    print("  (others: CPU the rest of the machine used during load, in cores: neighbours)")
    for r in results:
        if r.instructions_per_msg is not None:
            print(
                f"  {r.app}: {r.instructions_per_msg:,.0f} instructions per message (callgrind), "
                f"{fmt(comp[r.app]['instructions_vs_raw'], '.3f')}x raw's"
            )
    print()
    for r in results:
        if r.status == "ok":
            per_round = [f"{x.server_cpu_us_per_msg:.1f}" for x in r.rounds]
            print(
                f"  {r.app}: server CPU {fmt(r.server_cpu_util, '.0%')} / client CPU "
                f"{fmt(r.client_cpu_util, '.0%')} / the rest of the machine "
                f"{fmt(r.others_cpu_util, '.0%')} of one core during load; "
                f"CPU µs/msg per round {', '.join(per_round)}; "
                f"server CPU {fmt(r.server_cpu_us_per_connect, '.0f')} µs per connect; "
                f"RSS {fmt(r.rss_baseline_kib, '.0f')} → {fmt(r.rss_idle_kib, '.0f')} KiB"
            )
        if r.server_stderr_tail:
            print(f"  {r.app}: server output (last lines):")
            for line in r.server_stderr_tail:
                print(f"    | {line}")


def groups(results: list[AppResult]) -> list[list[AppResult]]:
    """The results split by (turn, loop), in run order: ratios compare within a group."""
    out: dict[tuple[int, str], list[AppResult]] = {}
    for r in results:
        out.setdefault((r.turn, r.loop), []).append(r)
    return list(out.values())


def print_summary(results: list[AppResult]) -> None:
    """Across the turns: each app's ratios to raw (same turn, same loop), median and range."""
    per: dict[tuple[str, str], list[tuple[float, float]]] = {}
    instr: dict[tuple[str, str], list[float]] = {}
    for group in groups(results):
        comp = comparisons(group)
        for r in group:
            thr, cpu = comp[r.app]["throughput_vs_raw"], comp[r.app]["cpu_per_msg_vs_raw"]
            if r.status == "ok" and thr is not None and cpu is not None:
                per.setdefault((r.loop, r.app), []).append((thr, cpu))
            ins = comp[r.app]["instructions_vs_raw"]
            if ins is not None:
                instr.setdefault((r.loop, r.app), []).append(ins)
    print()
    print("ratios to raw in the same turn and loop, over the turns: median [min-max]")
    print(f"{'loop':<8} {'app':<10} {'turns':>5} {'msgs/s vs raw':>22} {'CPU/msg vs raw':>22}")
    for (loop, app), pairs in per.items():
        thrs = sorted(p[0] for p in pairs)
        cpus = sorted(p[1] for p in pairs)
        print(
            f"{loop:<8} {app:<10} {len(pairs):>5} "
            f"{statistics.median(thrs):>8.2f} [{thrs[0]:.2f}-{thrs[-1]:.2f}]   "
            f"{statistics.median(cpus):>8.2f} [{cpus[0]:.2f}-{cpus[-1]:.2f}]"
            + (
                f"   instructions vs raw {min(instr[loop, app]):.3f}-{max(instr[loop, app]):.3f}"
                if (loop, app) in instr
                else ""
            )
        )


def print_profiles(results: list[AppResult], top: int) -> None:
    """What each profiled server did per message in its load rounds (cProfile inflates times)."""
    for r in results:
        if r.status != "ok" or r.profile is None or not Path(r.profile).exists():
            continue
        stats = pstats.Stats(r.profile)
        total = r.total_messages * len(r.rounds)
        entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps no public accessor
        calls = sum(entry[1] for entry in entries.values())
        gc_at = json.loads(Path(f"{r.profile}.gc.json").read_text(encoding="utf-8"))
        collections = [b["collections"] - a["collections"] for a, b in zip(gc_at["start"], gc_at["stop"], strict=True)]
        print()
        print(
            f"[{r.app} {r.loop} turn {r.turn}] profile of {total:,} messages: {calls / total:.1f} calls per message, "
            f"{stats.total_tt / total * 1e6:.1f} profiled µs per message (inflated by the profiler); "  # type: ignore[attr-defined]
            f"gc collections per generation {collections}, {gc_at['objects']:,} tracked objects; {r.profile}"
        )
        rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
        print(f"  {'calls/msg':>9} {'own µs/msg':>10}  function")
        for (filename, line, name), (_, ncalls, tottime, _, _) in rows:
            where = f"{Path(filename).name}:{line}" if line else filename
            print(f"  {ncalls / total:>9.2f} {tottime / total * 1e6:>10.2f}  {name} ({where})")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("uvicorn", "websockets", "uvloop", "channels", "django", "interlock"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def write_json(path: str, results: list[AppResult], args: argparse.Namespace) -> None:
    doc = {
        "benchmark": "websocket-echo",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "results": [asdict(r) for r in results],
        "vs_raw": [{"turn": g[0].turn, "loop": g[0].loop, "apps": comparisons(g)} for g in groups(results)],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft fd limit (inherited by the server) if too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            print(f"warning: fd limit {target} < {needed} needed", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--clients", type=int, default=100, help="concurrent clients (default 100)")
    p.add_argument("--messages", type=int, default=200, help="messages per client (default 200)")
    p.add_argument("--idle", type=int, default=1000, help="idle connections (default 1000)")
    p.add_argument("--only", default=",".join(DEFAULT_APPS), help="comma list of " + ",".join(APPS))
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--rounds", type=int, default=3, help="load rounds, median reported (default 3)")
    p.add_argument("--size", type=int, default=64, help="payload size in bytes (default 64)")
    p.add_argument("--binary", action="store_true", help="send bytes frames instead of text")
    p.add_argument(
        "--warmup-messages",
        type=int,
        default=50,
        help="per warm-up client (10 clients)",
    )
    p.add_argument("--batch", type=int, default=100, help="max concurrent handshakes (default 100)")
    p.add_argument("--settle", type=float, default=0.5, help="pause between phases, s")
    p.add_argument("--phase-timeout", type=float, default=120.0, help="bound per phase, s")
    p.add_argument("--ready-timeout", type=float, default=30.0, help="server start bound, s")
    p.add_argument(
        "--loop",
        default="uvloop",
        choices=["uvloop", "asyncio", "both"],
        help="server loop (both: each turn runs both)",
    )
    p.add_argument("--repeat", type=int, default=1, help="turns: every app on every loop, again (default 1)")
    p.add_argument("--profile", metavar="DIR", help="cProfile each server's load rounds into DIR (figures inflated)")
    p.add_argument("--top", type=int, default=25, help="functions listed per profile (default 25)")
    p.add_argument(
        "--callgrind",
        metavar="DIR",
        help="run each server under valgrind's callgrind and count its instructions per message in the load rounds",
    )
    p.add_argument("--hashseed", type=int, help="PYTHONHASHSEED for the servers (default: random per process)")
    p.add_argument(
        "--ws",
        default="websockets",
        choices=["websockets", "websockets-sansio", "wsproto"],
        help="uvicorn WebSocket implementation (default websockets)",
    )
    p.add_argument("--client-loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = p.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(APPS))
    if unknown or not only:
        p.error(f"--only: unknown app(s) {unknown}; choose from {','.join(APPS)}")
    args.only = [name for name in APPS if name in only]
    args.loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    for folder in (args.profile, args.callgrind):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
    for name in ("clients", "messages", "rounds", "size", "batch", "warmup_messages", "repeat"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.idle < 0:
        p.error("--idle must be >= 0")
    return args


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every try/finally, stopping the server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    raise_fd_limit(max(args.clients, args.idle) + 256)
    results: list[AppResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="echo-copy-") as copy_dir:
            args.copy_dir = Path(copy_dir)
            for turn in range(1, args.repeat + 1):
                for loop in args.loops:
                    for app in args.only:
                        print(f"[{app} {loop} turn {turn}] starting uvicorn ...", flush=True)
                        started = time.monotonic()
                        result = run_one(app, loop, turn, args)
                        results.append(result)
                        took = time.monotonic() - started
                        if result.status == "ok":
                            print(f"[{app} {loop} turn {turn}] done in {took:.1f} s", flush=True)
                        else:
                            print(f"[{app} {loop} turn {turn}] {result.status}: {result.reason}", flush=True)
    except KeyboardInterrupt:
        print("interrupted; server stopped", file=sys.stderr)
        return 130
    for group in groups(results):
        print_table(group, args)
    if args.repeat > 1 or len(args.loops) > 1:
        print_summary(results)
    print_profiles(results, args.top)
    if args.json:
        write_json(args.json, results, args)
        print(f"\nwrote {args.json}")
    return 0 if all(r.status != "failed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
