"""Redis layers across processes: interlock's RedisChannelLayer against channels_redis, in one run.

Two measurements, each layer in turn, on the Redis at 127.0.0.1:6379:

1. **Point to point.**  A receiver process makes a channel and prints its name; the sender
   (this process) sends ``--paced`` messages one every ``--interval`` seconds (the receiver
   records each one-way latency on the machine-wide monotonic clock), then ``--burst``
   messages as fast as it can (the receiver reports messages/s from first to last arrival).
2. **Fan-out.**  Four processes each make 250 channels and join them to one group; the
   sender ``group_send``s ``--rounds`` times (one at a time) and each process reports when
   the last of its 250 copies arrived: the round's time is the latest of the four.  Each
   process also reports its CPU time per round (the mean of the four is shown).

3. **Senders in one process** (``--concurrency``, interlock only): 1, 4 and 16 tasks of
   one process share ``--burst`` awaited sends to a receiver process; and the round trip
   under them: ``PING`` awaited one at a time through coredis, through the layer's lean
   connection, and through a bare anyio socket.

Layers: ``interlock`` and ``interlock-trio`` (both processes on trio), channels_redis's
``core`` (``RedisChannelLayer``) and ``pubsub`` (``RedisPubSubChannelLayer``).  Run::

    .venv/bin/python bench/redis_layer.py [--paced 500] [--interval 0.005] [--burst 5000] [--rounds 20]
    .venv/bin/python bench/redis_layer.py --concurrency
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio

LAYERS = ("interlock", "interlock-trio", "core", "pubsub")
FANOUT_PROCESSES = 4
FANOUT_MEMBERS = 250  # per process


def make_layer(kind: str, prefix: str) -> Any:
    """A layer of *kind* on the local Redis, its keys under *prefix*."""
    if kind.startswith("interlock"):
        from interlock.layers import RedisChannelLayer  # noqa: PLC0415

        return RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=prefix, capacity=100_000)
    if kind == "core":
        from channels_redis.core import RedisChannelLayer as Core  # noqa: PLC0415

        return Core(hosts=[("127.0.0.1", 6379)], capacity=100_000, prefix=prefix)
    from channels_redis.pubsub import RedisPubSubChannelLayer  # noqa: PLC0415

    return RedisPubSubChannelLayer(hosts=[("127.0.0.1", 6379)], prefix=prefix)


async def close(layer: Any, *, flush: bool = True) -> None:
    """Close any of the layers; *flush*: delete the run's keys first (the receiving side, once
    it has everything: a sender's flush would delete what the receiver's pump has not yet taken)."""
    if flush and hasattr(layer, "flush") and type(layer).__module__.startswith("interlock"):
        await layer.flush()
    closer = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if closer is not None:
        await closer()


def _run(kind: str, fn: Any, *args: Any) -> Any:
    return anyio.run(fn, *args, backend="trio" if kind.endswith("-trio") else "asyncio")


# -- point to point ----------------------------------------------------------------------------


async def receiver(kind: str, prefix: str, paced: int, burst: int) -> None:
    """Child: make a channel, print its name, then measure what arrives."""
    layer = make_layer(kind, prefix)
    channel = await layer.new_channel("bench")
    print(channel, flush=True)
    latencies = []
    for _ in range(paced):
        message = await layer.receive(channel)
        latencies.append(time.monotonic() - message["t"])
    await layer.receive(channel)
    start = time.monotonic()
    for _ in range(burst - 1):
        await layer.receive(channel)
    elapsed = time.monotonic() - start
    latencies.sort()
    result = {
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0,
        "burst_msgs_per_s": (burst - 1) / elapsed if elapsed else 0.0,
    }
    print(json.dumps(result), flush=True)
    await close(layer)


async def sender(kind: str, prefix: str, channel: str, paced: int, interval: float, burst: int) -> float:
    """Parent: paced sends, then a burst; return the sender's own burst rate."""
    layer = make_layer(kind, prefix)
    for _ in range(paced):
        await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})
        await anyio.sleep(interval)
    start = time.monotonic()
    for _ in range(burst):
        await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})
    rate = burst / (time.monotonic() - start)
    await close(layer, flush=False)  # the receiver flushes once it has the burst
    return rate


def point_to_point(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the receiver process, drive it, return its figures."""
    prefix = f"bench-p2p-{time.monotonic_ns()}"
    child = subprocess.Popen(
        [sys.executable, __file__, "--receiver", kind, prefix, str(args.paced), str(args.burst)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        channel = child.stdout.readline().strip()
        if not channel:
            msg = f"{kind} receiver did not start"
            raise RuntimeError(msg)
        send_rate = _run(kind, sender, kind, prefix, channel, args.paced, args.interval, args.burst)
        line = child.stdout.readline()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result: dict[str, Any] = json.loads(line)
    result["sender_msgs_per_s"] = send_rate
    return result


# -- senders in one process --------------------------------------------------------------------


async def concurrent_sender(kind: str, prefix: str, channel: str, tasks: int, burst: int) -> float:
    """Parent: *tasks* tasks share *burst* awaited sends; return the messages/s."""
    layer = make_layer(kind, prefix)
    await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})
    share = burst // tasks

    async def one() -> None:
        for _ in range(share):
            await layer.send(channel, {"type": "bench.message", "t": time.monotonic(), "text": "hello"})

    start = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(one)
    rate = share * tasks / (time.monotonic() - start)
    await close(layer, flush=False)  # the receiver flushes once it has the burst
    return rate


def concurrency(kind: str, burst: int) -> dict[int, float]:
    """Senders' rate for 1, 4 and 16 tasks, each run against a fresh receiver process."""
    rates = {}
    for tasks in (1, 4, 16):
        prefix = f"bench-conc-{time.monotonic_ns()}"
        total = 1 + burst // tasks * tasks
        child = subprocess.Popen(
            [sys.executable, __file__, "--receiver", kind, prefix, "0", str(total)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            channel = child.stdout.readline().strip()
            rates[tasks] = _run(kind, concurrent_sender, kind, prefix, channel, tasks, burst)
            child.stdout.readline()
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return rates


async def round_trips(count: int = 5000) -> dict[str, float]:
    """Awaited PINGs per second: coredis, the layer's lean connection, a bare anyio socket."""
    import coredis  # noqa: PLC0415
    from interlock.layers._redis_resp import Resp  # noqa: PLC0415

    rates = {}
    client: Any = coredis.Redis(host="127.0.0.1", port=6379)
    async with client:
        await client.ping()
        start = time.monotonic()
        for _ in range(count):
            await client.ping()
        rates["coredis"] = count / (time.monotonic() - start)
    lean = Resp("redis://127.0.0.1:6379/0", 2.0)
    await lean.execute("PING")
    start = time.monotonic()
    for _ in range(count):
        await lean.execute("PING")
    rates["lean"] = count / (time.monotonic() - start)
    await lean.aclose()
    async with await anyio.connect_tcp("127.0.0.1", 6379) as stream:
        start = time.monotonic()
        for _ in range(count):
            await stream.send(b"*1\r\n$4\r\nPING\r\n")
            await stream.receive()
        rates["socket"] = count / (time.monotonic() - start)
    return rates


def run_concurrency(args: argparse.Namespace) -> None:
    """Print the senders-in-one-process table."""
    print(f"{args.burst} awaited sends shared by 1, 4, 16 tasks of one process; PINGs awaited one at a time")
    heads = f"{'1 task':>8} {'4 tasks':>8} {'16 tasks':>9} {'PING coredis':>13} {'lean':>7} {'socket':>7}"
    print(f"{'backend':<15} {heads}")
    for kind in ("interlock", "interlock-trio"):
        rates = concurrency(kind, args.burst)
        pings = _run(kind, round_trips)
        print(
            f"{kind:<15} {rates[1]:>8.0f} {rates[4]:>8.0f} {rates[16]:>9.0f} "
            f"{pings['coredis']:>13.0f} {pings['lean']:>7.0f} {pings['socket']:>7.0f}"
        )


# -- fan-out ----------------------------------------------------------------------------------


async def members(kind: str, prefix: str, rounds: int) -> None:
    """Child: join FANOUT_MEMBERS channels to the group, then report each round's last arrival."""
    layer = make_layer(kind, prefix)
    channels = [await layer.new_channel("member") for _ in range(FANOUT_MEMBERS)]
    for channel in channels:
        await layer.group_add("crowd", channel)
    print("ready", flush=True)
    cpu = time.process_time()
    arrived: dict[int, list[float]] = {}
    done = anyio.Event()

    async def receive(channel: str) -> None:
        for _ in range(rounds):
            message = await layer.receive(channel)
            times = arrived.setdefault(message["round"], [])
            times.append(time.monotonic())
            if len(times) == FANOUT_MEMBERS:
                print(json.dumps({"round": message["round"], "last": max(times)}), flush=True)
                if len(arrived) == rounds:
                    done.set()

    async with anyio.create_task_group() as tasks:
        for channel in channels:
            tasks.start_soon(receive, channel)
        await done.wait()
    print(json.dumps({"cpu_ms_per_round": (time.process_time() - cpu) / rounds * 1000}), flush=True)
    await close(layer)


async def group_sender(kind: str, prefix: str, rounds: int, children: list[subprocess.Popen[str]]) -> list[float]:
    """Parent: one group_send a round, waiting for every child to report it; return the round times."""
    layer = make_layer(kind, prefix)
    times = []
    for n in range(rounds):
        sent = time.monotonic()
        await layer.group_send("crowd", {"type": "bench.message", "round": n, "text": "hello"})
        last = 0.0
        for child in children:
            assert child.stdout is not None
            line = await anyio.to_thread.run_sync(child.stdout.readline)
            report = json.loads(line)
            last = max(last, report["last"])
        times.append(last - sent)
        await anyio.sleep(0.02)
    await close(layer)
    return times


def fan_out(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Start the member processes, time each round, return p50 and max."""
    prefix = f"bench-fan-{time.monotonic_ns()}"
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--members", kind, prefix, str(args.rounds)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(FANOUT_PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                msg = f"{kind} members did not start"
                raise RuntimeError(msg)
        times = _run(kind, group_sender, kind, prefix, args.rounds, children)
        cpu = []
        for child in children:
            assert child.stdout is not None
            cpu.append(json.loads(child.stdout.readline())["cpu_ms_per_round"])
            child.wait(timeout=60)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return {
        "fan_p50_ms": statistics.median(times) * 1000,
        "fan_max_ms": max(times) * 1000,
        "member_cpu_ms": statistics.mean(cpu),
    }


def main() -> None:
    """Run each layer and print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--receiver":
        _, _, kind, prefix, paced, burst = sys.argv
        _run(kind, receiver, kind, prefix, int(paced), int(burst))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--members":
        _, _, kind, prefix, rounds = sys.argv
        _run(kind, members, kind, prefix, int(rounds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paced", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default=",".join(LAYERS))
    parser.add_argument("--concurrency", action="store_true", help="senders in one process instead")
    args = parser.parse_args()
    if args.concurrency:
        run_concurrency(args)
        return
    rows: dict[str, dict[str, Any] | str] = {}
    for kind in [k for k in LAYERS if k in args.only.split(",")]:
        try:
            rows[kind] = point_to_point(kind, args) | fan_out(kind, args)
        except Exception as exc:
            rows[kind] = f"failed: {type(exc).__name__}: {exc}"
    print(
        f"{args.paced} paced messages every {args.interval * 1000:g} ms, a burst of {args.burst}, "
        f"{args.rounds} group_sends to {FANOUT_PROCESSES * FANOUT_MEMBERS} members in {FANOUT_PROCESSES} processes"
    )
    print(
        f"{'layer':<15} {'p50 ms':>8} {'p99 ms':>8} {'burst msg/s':>12} {'sender msg/s':>13} "
        f"{'fan-out p50 ms':>15} {'fan-out max ms':>15} {'member CPU ms':>14}"
    )
    for kind, row in rows.items():
        if isinstance(row, str):
            print(f"{kind:<15} {row}")
        else:
            print(
                f"{kind:<15} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['burst_msgs_per_s']:>12.0f} "
                f"{row['sender_msgs_per_s']:>13.0f} {row['fan_p50_ms']:>15.1f} {row['fan_max_ms']:>15.1f} "
                f"{row['member_cpu_ms']:>14.1f}"
            )
    pubsub = rows.get("pubsub")
    for kind in ("interlock", "interlock-trio"):
        found = rows.get(kind)
        if isinstance(found, dict) and isinstance(pubsub, dict):
            ratio = found["burst_msgs_per_s"] / pubsub["burst_msgs_per_s"]
            print(f"{kind} burst throughput = {ratio:.1f}x channels_redis pubsub")


if __name__ == "__main__":
    main()
