"""Channel-layer benchmark: interlock's layers against Channels' and channels_redis', in one run.

In-process figures, each the median of ``--rounds`` runs on asyncio:

* round trips/s: ``send`` then ``receive`` on one channel, one message at a time;
* group_send to groups of 1, 100 and 1,000 members, drained: the time from
  ``group_send`` until every member has received its copy.

Run::

    .venv/bin/python bench/channel_layers.py [--rounds 5] [--trips 2000] [--only memory,sqlite,channels,redis]

``redis`` needs the Redis server on 127.0.0.1:6379; ``sqlite`` uses a file in a
temporary directory. Then, in the same run, ``bench/xproc.py`` measures cross-process
delivery (latency p50/p99 and throughput: the SQLite layer on asyncio and on trio, and
channels_redis) in processes of its own; ``--no-xproc`` leaves that out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

LAYERS = ("memory", "sqlite", "channels", "redis")


@contextlib.asynccontextmanager
async def open_layer(name: str, tmp: Path) -> AsyncIterator[Any]:
    """A fresh layer of kind *name*, closed afterwards."""
    if name == "memory":
        from interlock.layers import InMemoryChannelLayer  # noqa: PLC0415

        layer: Any = InMemoryChannelLayer(capacity=2000)
    elif name == "sqlite":
        from interlock.layers import SQLiteChannelLayer  # type: ignore[attr-defined,unused-ignore]  # noqa: PLC0415

        layer = SQLiteChannelLayer(tmp / f"bench-{time.monotonic_ns()}.sqlite3", capacity=2000)
    elif name == "channels":
        from channels.layers import InMemoryChannelLayer as ChannelsMemory  # noqa: PLC0415

        layer = ChannelsMemory(capacity=2000)
    elif name == "redis":
        from channels_redis.core import RedisChannelLayer  # noqa: PLC0415

        layer = RedisChannelLayer(hosts=[("127.0.0.1", 6379)], capacity=2000, prefix=f"bench{time.monotonic_ns()}")
    else:  # pragma: no cover - argparse restricts the names
        raise ValueError(name)
    try:
        yield layer
    finally:
        with contextlib.suppress(Exception):
            await layer.flush()
        close: Callable[[], Any] | None = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


async def round_trips(layer: Any, count: int) -> float:
    """Send-then-receive round trips per second on one channel."""
    channel = await layer.new_channel()
    message = {"type": "bench.message", "text": "hello", "n": 1}
    for _ in range(20):
        await layer.send(channel, message)
        await layer.receive(channel)
    start = time.perf_counter()
    for _ in range(count):
        await layer.send(channel, message)
        await layer.receive(channel)
    return count / (time.perf_counter() - start)


async def group_send_drained(layer: Any, members: int) -> float:
    """Milliseconds from group_send until every member received the message."""
    group = f"bench-{members}-{time.monotonic_ns()}"
    channels = [await layer.new_channel() for _ in range(members)]
    for channel in channels:
        await layer.group_add(group, channel)
    start = time.perf_counter()
    await layer.group_send(group, {"type": "bench.message", "text": "hello"})
    for channel in channels:
        await layer.receive(channel)
    elapsed = (time.perf_counter() - start) * 1000
    for channel in channels:
        await layer.group_discard(group, channel)
    return elapsed


async def bench_layer(name: str, tmp: Path, rounds: int, trips: int) -> dict[str, float]:
    """Median figures for one layer kind."""
    results: dict[str, list[float]] = {"trips/s": [], "g1 ms": [], "g100 ms": [], "g1000 ms": []}
    for _ in range(rounds):
        async with open_layer(name, tmp) as layer:
            results["trips/s"].append(await round_trips(layer, trips))
            for size in (1, 100, 1000):
                results[f"g{size} ms"].append(await group_send_drained(layer, size))
    return {key: statistics.median(values) for key, values in results.items()}


def main() -> None:
    """Run the chosen layers and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trips", type=int, default=2000)
    parser.add_argument("--only", default=",".join(LAYERS), help="comma list of " + ",".join(LAYERS))
    parser.add_argument("--no-xproc", action="store_true", help="leave out the cross-process figures (bench/xproc.py)")
    args = parser.parse_args()
    chosen = [name for name in LAYERS if name in args.only.split(",")]
    rows: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            try:
                rows[name] = asyncio.run(bench_layer(name, Path(tmp), args.rounds, args.trips))
            except Exception as exc:  # a missing package or server skips that layer
                rows[name] = f"skipped: {type(exc).__name__}: {exc}"
    print(f"in-process, asyncio, median of {args.rounds} rounds; group_send times include draining every member")
    print(f"{'layer':<10} {'trips/s':>10} {'g=1 ms':>9} {'g=100 ms':>9} {'g=1000 ms':>10}")
    for name, row in rows.items():
        if isinstance(row, str):
            print(f"{name:<10} {row}")
            continue
        print(
            f"{name:<10} {row['trips/s']:>10.0f} {row['g1 ms']:>9.3f} {row['g100 ms']:>9.2f} {row['g1000 ms']:>10.2f}"
        )
    across = [
        kind for name in chosen for kind in {"sqlite": ("sqlite", "sqlite-trio"), "redis": ("redis",)}.get(name, ())
    ]
    if across and not args.no_xproc:
        print(flush=True)
        xproc = Path(__file__).with_name("xproc.py")
        subprocess.run([sys.executable, str(xproc), "--only", ",".join(across)], check=True)


if __name__ == "__main__":
    main()
