"""What one delivery of a local group send costs an actor, in process: no server, no sockets.

``N`` actors of ``bench/scale_apps.py`` (``WebsocketActor`` in one group, the ``bcast``
handler sending the text back) are served by their ``ActorApp`` with an ``asyncio.Queue``
as ``receive`` (the taskless pump, as under uvicorn) and a ``send`` that only counts; a
burst is one ``group_send`` awaited until every member's ``send()`` ran. ``--kind floor``
is the least a task per member can cost: ``N`` tasks, each woken from a future with a
message it hands to the same ``send``.

Run::

    .venv/bin/python bench/group_delivery.py --kind memory --members 15000 --bursts 8
    .venv/bin/python bench/group_delivery.py --kind sqlite --members 15000 --gc off
    .venv/bin/python bench/group_delivery.py --callgrind --members 1000       # instructions per delivery
    .venv/bin/python bench/group_delivery.py --kind memory --opcodes          # bytecodes per delivery, by function

``--callgrind`` runs each kind twice under valgrind (10 and 20 bursts, ``PYTHONHASHSEED=0``)
and prints the difference per delivery: start-up and connecting cancel out, and the figure
does not move with the machine's load. Times per burst are wall-clock, on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
KINDS = ("floor", "memory", "sqlite")
SCOPE = {"type": "websocket", "path": "/", "headers": [], "query_string": b"", "subprotocols": []}


class Counter:
    """The ASGI ``send`` of every member: counts the frames, wakes the burst when all came."""

    def __init__(self) -> None:
        self.delivered = 0
        self.target = 0
        self.done = asyncio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.delivered += 1
            if self.delivered == self.target:
                self.done.set()


async def start_floor(count: Counter, members: int) -> tuple[Callable[[], Awaitable[None]], list[asyncio.Task[None]]]:
    """A task per member woken from a future: the floor under any actor."""
    waiters: list[asyncio.Future[dict[str, Any]]] = []
    loop = asyncio.get_running_loop()

    async def member() -> None:
        while True:
            waiter = loop.create_future()
            waiters.append(waiter)
            await count(await waiter)

    tasks = [asyncio.ensure_future(member()) for _ in range(members)]
    await asyncio.sleep(0.1)

    async def burst() -> None:
        woken = waiters[:]
        waiters.clear()
        for waiter in woken:
            waiter.set_result({"type": "websocket.send", "text": "x"})

    return burst, tasks


async def start_actors(
    kind: str, count: Counter, members: int, tmp: Path
) -> tuple[Callable[[], Awaitable[None]], list[asyncio.Task[None]], list[asyncio.Queue[Any]]]:
    """*members* broadcast actors on the layer *kind*, connected and in the group."""
    sys.path.insert(0, str(BENCH))
    import scale_apps  # noqa: PLC0415 - bench/ is on the path only now

    if kind == "sqlite":
        os.environ["SCALE_DB"] = str(tmp / "group_delivery.sqlite3")
        app = scale_apps.make_sqlite()
    else:
        app = scale_apps.make_memory()
    layer = app.initkwargs["channel_layer"]
    queues: list[asyncio.Queue[Any]] = []
    tasks = []
    for _ in range(members):
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queue.put_nowait({"type": "websocket.connect"})
        queues.append(queue)
        tasks.append(asyncio.ensure_future(app(dict(SCOPE), queue.get, count)))
    deadline = time.monotonic() + 600
    while len(await layer.group_members(scale_apps.GROUP)) < members:
        if time.monotonic() > deadline:
            raise SystemExit("the actors did not all join within 10 minutes")
        await asyncio.sleep(0.2)

    async def burst() -> None:
        await layer.group_send(scale_apps.GROUP, {"type": "bcast", "text": "x"})

    return burst, tasks, queues


def count_opcodes(members: int, bursts: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """A tracer counting bytecodes per function (``sys.settrace`` opcode events); start and report."""
    ops: collections.Counter[tuple[str, str]] = collections.Counter()
    calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def trace(frame: Any, event: str, arg: object) -> Any:
        key = (Path(frame.f_code.co_filename).name, frame.f_code.co_name)
        if event == "call":
            frame.f_trace_opcodes = True
            calls[key] += 1
        elif event == "opcode":
            ops[key] += 1
        return trace

    def report() -> None:
        sys.settrace(None)
        deliveries = members * bursts
        print(f"bytecodes per delivery: {sum(ops.values()) / deliveries:.1f}")
        for key, value in ops.most_common(30):
            print(f"{value / deliveries:8.1f} bytecodes {calls[key] / deliveries:5.2f} calls  {key[0]}:{key[1]}")

    return lambda: sys.settrace(trace), report


async def run(args: argparse.Namespace) -> None:
    """Connect, warm up, time the bursts, disconnect."""
    count = Counter()
    queues: list[asyncio.Queue[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.kind == "floor":
            burst, tasks = await start_floor(count, args.members)
        else:
            burst, tasks, queues = await start_actors(args.kind, count, args.members, Path(tmp))

        async def bursts(n: int) -> None:
            for _ in range(n):
                count.target = count.delivered + args.members
                count.done.clear()
                await burst()
                await count.done.wait()

        await bursts(2)  # warm: caches, the handler lookups
        gc.collect()
        if args.gc == "off":
            gc.disable()
        before = [stat["collections"] for stat in gc.get_stats()]
        start_trace, report = count_opcodes(args.members, args.bursts) if args.opcodes else (None, None)
        if start_trace is not None:
            start_trace()
        started = time.perf_counter()
        await bursts(args.bursts)
        seconds = time.perf_counter() - started
        if report is not None:
            report()
        gc.enable()
        collections_run = [stat["collections"] - was for stat, was in zip(gc.get_stats(), before, strict=True)]
        print(
            f"{args.kind}: {seconds / args.bursts * 1000:.1f} ms per burst to {args.members:,}, "
            f"{seconds / (args.members * args.bursts) * 1e6:.2f} µs per delivery, "
            f"collections by generation {collections_run}"
        )
        for queue in queues:
            queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
        for task in tasks if args.kind == "floor" else ():
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def callgrind(args: argparse.Namespace) -> None:
    """Instructions per delivery of each kind: the difference between 20 bursts and 10, under valgrind."""
    for kind in args.kinds.split(","):
        totals = []
        for bursts in (10, 20):
            with tempfile.TemporaryDirectory() as tmp:
                command = [
                    "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                    sys.executable, __file__, "--kind", kind, "--members", str(args.members),
                    "--bursts", str(bursts), "--loop", args.loop, "--gc", args.gc,
                ]  # fmt: skip
                done = subprocess.run(
                    command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True
                )
                found = re.search(r"Collected : ([\d,]+)", done.stderr)
                if found is None:
                    raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
                totals.append(int(found.group(1).replace(",", "")))
        per_delivery = (totals[1] - totals[0]) / (10 * args.members)
        print(f"{kind}: {per_delivery:,.0f} instructions per delivery ({args.loop}, {args.members:,} members)")


def main() -> None:
    """Parse the options; time the bursts, or count their instructions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=KINDS, default="memory")
    parser.add_argument("--kinds", default=",".join(KINDS), help="with --callgrind: the kinds to count")
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--gc", choices=("on", "off"), default="on", help="off: the collector off during the bursts")
    parser.add_argument("--opcodes", action="store_true", help="count bytecodes per delivery, by function")
    parser.add_argument("--callgrind", action="store_true", help="instructions per delivery, under valgrind")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
        return
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415 - only when asked

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
