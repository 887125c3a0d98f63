"""Cross-process delivery: interlock's SQLite layer against channels_redis, in one run.

A receiver process makes a channel (``new_channel()``) and tells the sender its name; the
sender, another process, then

1. sends ``--paced`` messages one every ``--interval`` seconds: the receiver records each
   one-way latency (send time to receive time on the machine-wide monotonic clock);
2. sends ``--burst`` messages as fast as it can: the receiver reports messages/s from the
   first to the last arrival.

Run::

    .venv/bin/python bench/xproc.py [--paced 500] [--interval 0.005] [--burst 5000] [--only sqlite,redis,sqlite-trio]

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


async def receiver(kind: str, where: str, paced: int, burst: int) -> None:
    """Child: make a channel, print its name, then measure what arrives."""
    layer = make_layer(kind, where)
    channel = await layer.new_channel("bench")
    print(channel, flush=True)
    latencies = []
    for _ in range(paced):
        message = await layer.receive(channel)
        latencies.append(time.monotonic() - message["t"])
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
    print(json.dumps(result), flush=True)
    await close(layer)


async def sender(kind: str, where: str, channel: str, paced: int, interval: float, burst: int) -> float:
    """Parent: paced sends, then a burst; return the sender's own burst rate."""
    layer = make_layer(kind, where)
    for _ in range(paced):
        await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})
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
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, where, str(args.paced), str(args.burst)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        channel = child.stdout.readline().strip()
        if not channel:
            msg = f"{kind} receiver did not start"
            raise RuntimeError(msg)
        send_rate = _run(kind, sender(kind, where, channel, args.paced, args.interval, args.burst))
        line = child.stdout.readline()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result: dict[str, Any] = json.loads(line)
    result["sender_msgs_per_s"] = send_rate
    return result


def _run(kind: str, coro: Any) -> Any:
    """Run *coro* on trio for ``sqlite-trio``, else on asyncio (uvloop when ``XPROC_UVLOOP=1``)."""
    if kind.endswith("-trio"):
        return anyio.run(lambda: coro, backend="trio")
    use_uvloop = os.environ.get("XPROC_UVLOOP") == "1"
    return anyio.run(lambda: coro, backend="asyncio", backend_options={"use_uvloop": use_uvloop})


def main() -> None:
    """Run each layer and print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, kind, where, paced, burst = sys.argv
        _run(kind, receiver(kind, where, int(paced), int(burst)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--only", default=",".join(LAYERS))
    parser.add_argument("--uvloop", action="store_true", help="run both processes on uvloop")
    args = parser.parse_args()
    if args.uvloop:
        os.environ["XPROC_UVLOOP"] = "1"
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


if __name__ == "__main__":
    main()
