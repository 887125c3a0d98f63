"""Cross-process delivery: interlock's SQLite layer against channels_redis, in one run.

A receiver process makes a channel (``new_channel()``) and tells the sender its name; the
sender, another process, then

1. sends ``--paced`` messages one every ``--interval`` seconds: the receiver records each
   one-way latency (send time to receive time on the machine-wide monotonic clock);
2. sends ``--burst`` messages as fast as it can: the receiver reports messages/s from the
   first to the last arrival.

Run::

    .venv/bin/python bench/xproc.py [--paced 500] [--interval 0.005] [--burst 5000] [--only sqlite,redis,sqlite-trio]

``--runs N`` repeats the whole run N times and ends with each row's p99 over the runs (min,
median, max, and how many runs kept it at most 20 ms).  ``--trace`` (SQLite rows) records, in
both processes, what the layer did while the slow paced messages (over ``--slow`` ms) were on
their way — the sender's sends that found the file locked, checkpoints, the pump's watches and
claims, garbage collections — and prints it per slow message.

``redis`` needs the Redis server on 127.0.0.1:6379.  ``sqlite-trio`` runs the SQLite layer
with both processes on trio (channels_redis runs on asyncio only); ``--uvloop`` puts the
asyncio rows on uvloop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

LAYERS = ("sqlite", "redis", "sqlite-trio")
TARGET_P99_MS = 20.0


class Tracer:
    """What the SQLite layer does in this process, as ``(what, start, end, detail)`` on the monotonic clock.

    Installed by wrapping the layer's own functions (nothing in the layer knows of it);
    used only with ``--trace``.
    """

    def __init__(self, side: str) -> None:
        self.side = side
        self.events: list[tuple[str, float, float, str]] = []
        self._gc_start = 0.0

    def add(self, what: str, start: float, end: float, detail: str = "") -> None:
        self.events.append((what, start, end, detail))

    def install(self) -> None:
        import functools  # noqa: PLC0415
        import gc  # noqa: PLC0415

        from interlock.layers import _sqlite_file, _sqlite_lease, _sqlite_local, _sqlite_pump  # noqa: PLC0415
        from interlock.layers import _sqlite_store as store  # noqa: PLC0415

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                self._gc_start = time.monotonic()
            else:
                self.add("gc", self._gc_start, time.monotonic(), f"gen{info['generation']}")

        gc.callbacks.append(on_gc)

        def timed(owner: Any, name: str, what: str, detail: Any = None, always: bool = True) -> None:
            original = getattr(owner, name)

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.monotonic()
                result = original(*args, **kwargs)
                end = time.monotonic()
                if always or end - start > 0.0005 or result is store.BUSY:
                    self.add(what, start, end, "" if detail is None else detail(args, result))
                return result

            setattr(owner, name, wrapper)

        def fn_name(args: Any, result: Any) -> str:
            return str(getattr(args[1], "__name__", type(args[1]).__name__))

        timed(_sqlite_file, "checkpoint", "checkpoint", lambda args, result: f"complete={result}")
        timed(store, "try_once", "try_once", lambda a, r: f"{fn_name(a, r)} {'BUSY' if r is store.BUSY else ''}", False)
        timed(store, "call", "call", fn_name, False)
        timed(_sqlite_lease.LeaseKeeper, "beat", "beat")
        timed(_sqlite_pump.Pump, "watch", "watch", lambda a, r: f"changed={r[1]}")
        timed(_sqlite_pump, "claim", "claim", lambda a, r: f"rows={len(r[0])}")
        timed(_sqlite_local.LocalQueues, "deliver", "deliver", lambda a, r: f"rows={len(a[1])}")


def slow_report(
    latencies: list[tuple[float, float]],
    send_times: list[float],
    events: list[tuple[str, str, float, float, str]],
    slow_ms: float,
) -> list[str]:
    """Lines naming, for each paced message slower than *slow_ms*, what both processes did meanwhile."""
    lines = []
    for index, (sent, received) in enumerate(latencies):
        if (received - sent) * 1000 <= slow_ms:
            continue
        took = send_times[index] * 1000 if index < len(send_times) else float("nan")
        lines.append(f"  message {index}: {(received - sent) * 1000:.1f} ms (its send took {took:.2f} ms)")
        for side, what, start, end, detail in events:
            recent = what in {"checkpoint", "beat"} and sent - 0.1 <= end  # may leave work to the next commit
            if (end >= sent - 0.0005 or recent) and start <= received:
                lines.append(
                    f"    {side:<8} {what:<10} {(start - sent) * 1000:+8.2f} .. {(end - sent) * 1000:+8.2f} {detail}"
                )
    return lines


def make_layer(kind: str, where: str) -> Any:
    """A layer of *kind*: a SQLite file path, or a Redis key prefix."""
    if kind.startswith("sqlite"):
        from interlock.layers import SQLiteChannelLayer  # noqa: PLC0415

        return SQLiteChannelLayer(where, capacity=100_000)
    from channels_redis.core import RedisChannelLayer  # noqa: PLC0415

    return RedisChannelLayer(hosts=[("127.0.0.1", 6379)], capacity=100_000, prefix=where)


async def close(layer: Any) -> None:
    """Close either kind of layer."""
    closer = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if closer is not None:
        await closer()


async def receiver(kind: str, where: str, paced: int, burst: int, trace: bool) -> None:
    """Child: make a channel, print its name, then measure what arrives."""
    tracer = Tracer("receiver") if trace else None
    if tracer is not None:
        tracer.install()
    layer = make_layer(kind, where)
    channel = await layer.new_channel("bench")
    print(channel, flush=True)
    latencies = []
    pairs = []
    for _ in range(paced):
        message = await layer.receive(channel)
        now = time.monotonic()
        latencies.append(now - message["t"])
        pairs.append((message["t"], now))
    first = await layer.receive(channel)
    start = time.monotonic()
    for _ in range(burst - 1):
        await layer.receive(channel)
    elapsed = time.monotonic() - start
    latencies.sort()
    result = {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "burst_msgs_per_s": (burst - 1) / elapsed if elapsed else 0.0,
        "first_burst_latency_ms": (start - first["t"]) * 1000,
    }
    if tracer is not None:
        result["pairs"] = pairs
        result["events"] = tracer.events
    print(json.dumps(result), flush=True)
    await close(layer)


async def sender(
    kind: str, where: str, channel: str, paced: int, interval: float, burst: int, send_times: list[float]
) -> float:
    """Parent: paced sends (their durations go to *send_times*), then a burst; return the sender's own burst rate."""
    layer = make_layer(kind, where)
    for _ in range(paced):
        sent = time.monotonic()
        await layer.send(channel, {"type": "bench.message", "t": sent, "text": "hello"})
        send_times.append(time.monotonic() - sent)
        await anyio.sleep(interval)
    start = time.monotonic()
    for _ in range(burst):
        await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})
    rate = burst / (time.monotonic() - start)
    await close(layer)
    return rate


def run_one(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the receiver process, drive it, return its figures."""
    where = str(tmp / f"{kind}.sqlite3") if kind.startswith("sqlite") else f"xproc{time.monotonic_ns()}"
    trace = args.trace and kind.startswith("sqlite")
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, where, str(args.paced), str(args.burst), str(int(trace))],
        stdout=subprocess.PIPE,
        text=True,
    )
    tracer = Tracer("sender") if trace else None
    if tracer is not None and not _TRACING:
        tracer.install()
        _TRACING.append(tracer)
    elif tracer is not None:
        tracer = _TRACING[0]
        tracer.events.clear()
    send_times: list[float] = []
    try:
        assert child.stdout is not None
        channel = child.stdout.readline().strip()
        if not channel:
            msg = f"{kind} receiver did not start"
            raise RuntimeError(msg)
        send_rate = _run(kind, sender(kind, where, channel, args.paced, args.interval, args.burst, send_times))
        line = child.stdout.readline()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result: dict[str, Any] = json.loads(line)
    result["sender_msgs_per_s"] = send_rate
    if tracer is not None:
        events = [("receiver", *event) for event in result.pop("events")]
        events += [("sender", *event) for event in tracer.events]
        events.sort(key=lambda event: event[2])
        result["slow"] = slow_report(result.pop("pairs"), send_times, events, args.slow)
    return result


_TRACING: list[Tracer] = []  # the sender's, installed once per process


def _run(kind: str, coro: Any) -> Any:
    """Run *coro* on trio for ``sqlite-trio``, else on asyncio (uvloop when ``XPROC_UVLOOP=1``)."""
    if kind.endswith("-trio"):
        return anyio.run(lambda: coro, backend="trio")
    use_uvloop = os.environ.get("XPROC_UVLOOP") == "1"
    return anyio.run(lambda: coro, backend="asyncio", backend_options={"use_uvloop": use_uvloop})


def main() -> None:
    """Run each layer and print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, kind, where, paced, burst, trace = sys.argv
        _run(kind, receiver(kind, where, int(paced), int(burst), trace == "1"))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--only", default=",".join(LAYERS))
    parser.add_argument("--uvloop", action="store_true", help="run both processes on uvloop")
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole run; end with each row's p99 spread")
    parser.add_argument("--trace", action="store_true", help="say what the SQLite layer did during slow messages")
    parser.add_argument("--slow", type=float, default=10.0, help="ms above which --trace reports a message")
    args = parser.parse_args()
    if args.uvloop:
        os.environ["XPROC_UVLOOP"] = "1"
    p99s: dict[str, list[float]] = {}
    for run in range(args.runs):
        if args.runs > 1:
            print(f"run {run + 1} of {args.runs}")
        rows = run_all(args)
        for kind, row in rows.items():
            if isinstance(row, dict):
                p99s.setdefault(kind, []).append(row["p99_ms"])
    if args.runs > 1:
        print(f"p99 over {args.runs} runs (ms): min, median, max; runs at most {TARGET_P99_MS:g} ms")
        for kind, values in p99s.items():
            kept = sum(value <= TARGET_P99_MS for value in values)
            listed = " ".join(f"{value:.1f}" for value in values)
            print(
                f"{kind:<12} {min(values):>6.2f} {statistics.median(values):>6.2f} {max(values):>6.2f}"
                f"  {kept}/{len(values)}  [{listed}]"
            )


def run_all(args: argparse.Namespace) -> dict[str, dict[str, Any] | str]:
    """One run: each layer in turn, then the table."""
    rows: dict[str, dict[str, Any] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in [k for k in LAYERS if k in args.only.split(",")]:
            try:
                rows[kind] = run_one(kind, args, Path(tmp))
            except Exception as exc:
                rows[kind] = f"skipped: {type(exc).__name__}: {exc}"
    loop = "asyncio rows on uvloop" if args.uvloop else "asyncio rows on asyncio"
    pacing = f"{args.paced} paced messages every {args.interval * 1000:g} ms"
    print(f"cross-process, {loop}: {pacing}, then a burst of {args.burst}")
    print(f"{'layer':<12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'burst msg/s':>12} {'sender msg/s':>13}")
    for kind, row in rows.items():
        if isinstance(row, str):
            print(f"{kind:<12} {row}")
        else:
            print(
                f"{kind:<12} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f} "
                f"{row['burst_msgs_per_s']:>12.0f} {row['sender_msgs_per_s']:>13.0f}"
            )
    redis = rows.get("redis")
    for kind in ("sqlite", "sqlite-trio"):
        found = rows.get(kind)
        if isinstance(found, dict) and isinstance(redis, dict):
            ratio = found["burst_msgs_per_s"] / redis["burst_msgs_per_s"]
            print(f"{kind} burst throughput = {ratio:.1f}x channels_redis")
    for kind, row in rows.items():
        if isinstance(row, dict) and row.get("slow"):
            print(f"{kind}: slow paced messages (times from the send's start)")
            print("\n".join(row["slow"]))
    return rows


if __name__ == "__main__":
    main()
