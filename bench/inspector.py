"""What the inspector costs an actor: echo throughput and memory per actor, in three modes.

* ``without``: the registry's insert is switched off (``_base.LIVE`` replaced by an
  object whose ``__setitem__`` and ``pop`` do nothing) — the runtime as it was before the
  inspector, but for the ``TAP.watching`` read per mailbox item, which cannot be switched
  off without editing the code (its cost is printed apart, as ns per read);
* ``mounted``: the runtime as shipped, an :class:`Inspector` built and nobody watching;
* ``watched``: as while a page is open: ``TAP.watch()``, every state-actor class made to
  record transitions, and a sampler taking the summary every 0.5 s as a stream does.

Each actor runs in this process, fed through an in-process ASGI receive/send pair (no
sockets: the figure is the actor's own cost, not the network's), on an
``InMemoryChannelLayer`` (so in mailbox mode, as chat members are). Throughput: ``--actors``
actors each echo ``--messages`` frames, all at once, and the messages per second of this process's CPU time are counted
(client and actors share it, as in-process; CPU time rather than wall time, so that other
work on the machine counts less); the modes run in turn, ``--rounds``
times in a rotating order, and the best round of each is reported (the median too, in the
JSON): other work on a shared machine only ever slows a round down. Memory: ``--idle`` actors are
started and left open, and tracemalloc counts what they hold, per actor. Both a plain
``WebsocketActor`` echo and a ``JsonStateActor`` echo (whose transitions are recorded
while watched). Run::

    .venv/bin/python bench/inspector.py [--actors 100] [--messages 200] [--rounds 5] [--idle 2000]
                                        [--backend asyncio|trio] [--json FILE]

Bounded: every phase has a count and a time limit.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import timeit
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import interlock.actors._base as base
from interlock.actors import JsonStateActor, WebsocketActor
from interlock.actors._inspect_registry import TAP
from interlock.actors._inspect_snapshot import Rates, observe_state_actors, summary
from interlock.actors.inspector import Inspector
from interlock.dsl import State, on
from interlock.layers import InMemoryChannelLayer

MODES = ("without", "mounted", "watched")
TIME_LIMIT = 120.0
_REGISTRY = "LIVE"  # the registry's name in interlock.actors._base, where the runtime inserts


class PlainEcho(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class MachineEcho(JsonStateActor):
    talking = State(initial=True, terminal=True)

    @on.client("echo", source=talking)
    async def echo(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


KINDS: dict[str, type[WebsocketActor]] = {"plain": PlainEcho, "machine": MachineEcho}


class _NoRegistry(dict[int, Any]):
    def __setitem__(self, key: int, value: Any) -> None:
        pass

    def pop(self, key: int, default: Any = None) -> Any:  # a no-op on purpose
        return default


@contextmanager
def mode(name: str) -> Iterator[None]:
    """Set the runtime up as *name* says, and back."""
    saved = getattr(base, _REGISTRY)
    if name == "without":
        setattr(base, _REGISTRY, _NoRegistry())
    if name == "watched":
        TAP.watch()
        observe_state_actors(True)
    try:
        yield
    finally:
        setattr(base, _REGISTRY, saved)
        if name == "watched":
            TAP.unwatch()
            observe_state_actors(False)


def _scope(layer: InMemoryChannelLayer) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/",
        "headers": [],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "interlock.channel_layer": layer,
    }


async def run_actor(app: Any, layer: InMemoryChannelLayer, frames: list[str], hold: anyio.Event | None) -> int:
    """Serve one actor its connect, *frames*, then (after *hold*, if given) a disconnect."""
    items: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    items += [{"type": "websocket.receive", "text": frame} for frame in frames]
    sent = 0
    position = 0

    async def receive() -> dict[str, Any]:
        nonlocal position
        if position < len(items):
            position += 1
            return items[position - 1]
        if hold is not None:
            await hold.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        if message["type"] == "websocket.send":
            sent += 1

    await app(_scope(layer), receive, send)
    return sent


async def sampler(stop: anyio.Event) -> None:
    """Take the summary every 0.5 s, as an open stream does."""
    rates = Rates()
    while not stop.is_set():
        summary(rates=rates)
        with anyio.move_on_after(0.5):
            await stop.wait()


async def throughput(kind: str, name: str, args: argparse.Namespace) -> float:
    """Messages per CPU second of this process for *kind* in mode *name*."""
    app = KINDS[kind].as_asgi()
    frames = [json.dumps({"type": "echo", "n": i}) for i in range(args.messages)]
    async with InMemoryChannelLayer() as layer:
        with mode(name):
            stop = anyio.Event()
            start = time.process_time()  # this process's CPU: other work on the machine counts less
            with anyio.fail_after(TIME_LIMIT):
                async with anyio.create_task_group() as tasks:
                    if name == "watched":
                        tasks.start_soon(sampler, stop)
                    async with anyio.create_task_group() as actors:
                        for _ in range(args.actors):
                            actors.start_soon(run_actor, app, layer, frames, None)
                    elapsed = time.process_time() - start
                    stop.set()
    return float(args.actors * args.messages / elapsed)


async def memory(kind: str, name: str, args: argparse.Namespace) -> float:
    """KiB held per idle actor for *kind* in mode *name*."""
    app = KINDS[kind].as_asgi()
    async with InMemoryChannelLayer() as layer:
        with mode(name):
            hold = anyio.Event()
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            with anyio.fail_after(TIME_LIMIT):
                async with anyio.create_task_group() as tasks:
                    for _ in range(args.idle):
                        tasks.start_soon(run_actor, app, layer, ['{"type": "echo", "n": 0}'], hold)
                    for _ in range(50):
                        await anyio.sleep(0.01)
                    gc.collect()
                    held = tracemalloc.get_traced_memory()[0] - before
                    tracemalloc.stop()
                    hold.set()
    return float(held / args.idle / 1024)


def watching_read_ns() -> float:
    """The cost of the ``if TAP.watching:`` check every mailbox item pays, in ns."""
    number = 2_000_000
    seconds = min(timeit.repeat("TAP.watching", globals={"TAP": TAP}, number=number, repeat=5))
    empty = min(timeit.repeat("pass", number=number, repeat=5))
    return (seconds - empty) / number * 1e9


def registry_ns() -> float:
    """The cost of one actor's insert and pop in the registry, in ns."""
    live: dict[int, Any] = {}
    obj = object()
    number = 1_000_000
    stmt = "live[id(obj)] = obj; live.pop(id(obj), None)"
    return min(timeit.repeat(stmt, globals={"live": live, "obj": obj}, number=number, repeat=5)) / number * 1e9


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    Inspector(token="bench-token-0123456789")  # "mounted": one exists, nobody watches
    results: dict[str, Any] = {"args": vars(args), "throughput": {}, "memory_kib": {}}
    for kind in KINDS:
        await throughput(kind, "mounted", args)  # warm-up, not counted
        runs: dict[str, list[float]] = {name: [] for name in MODES}
        for round_no in range(args.rounds):
            order = MODES[round_no % 3 :] + MODES[: round_no % 3]
            for name in order:
                runs[name].append(await throughput(kind, name, args))
        # The best round of each mode: other work on the machine only ever slows a round down.
        results["throughput"][kind] = {name: max(values) for name, values in runs.items()}
        results["throughput_median"] = results.get("throughput_median", {})
        results["throughput_median"][kind] = {name: statistics.median(values) for name, values in runs.items()}
        await memory(kind, "mounted", args)  # warm-up: the first run pays one-time allocations
        results["memory_kib"][kind] = {name: await memory(kind, name, args) for name in MODES}
    results["tap_check_ns"] = watching_read_ns()
    results["registry_insert_pop_ns"] = registry_ns()
    return results


def report(results: dict[str, Any]) -> None:
    args = results["args"]
    print(
        f"inspector cost: {args['actors']} actors x {args['messages']} echoes, best of {args['rounds']} rounds; "
        f"{args['idle']} idle actors for memory; backend {args['backend']}"
    )
    for kind in KINDS:
        rate = results["throughput"][kind]
        mem = results["memory_kib"][kind]
        base_rate, base_mem = rate["without"], mem["without"]
        print(f"\n{kind} echo ({KINDS[kind].__mro__[1].__name__})")
        print(f"  {'mode':<8} {'msgs/cpu-s':>10} {'vs without':>11} {'KiB/actor':>10} {'vs without':>11}")
        for name in MODES:
            print(
                f"  {name:<8} {rate[name]:>10,.0f} {100 * (rate[name] / base_rate - 1):>+10.1f}% "
                f"{mem[name]:>10.2f} {mem[name] - base_mem:>+10.3f}"
            )
    print(
        f"\nper mailbox item, the TAP.watching check: {results['tap_check_ns']:.1f} ns; "
        f"per actor, the registry's insert and pop: {results['registry_insert_pop_ns']:.0f} ns"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results = anyio.run(main_async, args, backend=args.backend)
    report(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
