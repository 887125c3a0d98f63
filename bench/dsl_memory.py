"""Memory per live actor: plain WebsocketActor vs DSL state actors, measured with tracemalloc.

Each actor is served its connect event through an in-process ASGI receive/send pair,
accepts, and then waits for its next event — alive, as under a server — while
tracemalloc counts what the actors allocated. Run::

    .venv/bin/python bench/dsl_memory.py [--actors 10000] [--backend asyncio|trio]

Reported: KiB per actor for each kind and each DSL kind's cost above the plain actor.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
from idle_ws import serve_idle
from interlock.actors import JsonStateActor, WebsocketActor
from interlock.dsl import State, Timeout, on
from interlock.layers import InMemoryChannelLayer


class Plain(WebsocketActor):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class Machine(JsonStateActor):
    """Three states, guards, hooks: no clock, so it runs without a mailbox task."""

    lobby = State(initial=True)
    in_room = State(tags=["member"])

    @on.client("join", source=lobby, target=in_room, guard=lambda self, e: bool(e.get("room")))
    async def join(self, event: dict[str, Any]) -> None:
        await self.send_json({"joined": event["room"]})

    @on.client("leave", source=in_room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None:
        await self.send_json({"left": True})


class TimedMachine(Machine):
    """The same machine with a state timeout and an idle timeout: a clock task per actor."""

    idle_timeout = 3600
    waiting = State(parent="in_room", initial=True, timeout=3600)
    talking = State(parent="in_room", terminal=True)

    @on.timeout(waiting, target=talking)
    async def waited(self, event: Timeout) -> None:
        pass

    @on.idle()
    async def idle(self, event: Timeout) -> None:
        await self.close(4000)


async def measure(factory: Callable[[], Any], count: int) -> float:
    """KiB allocated per live actor."""
    stop = anyio.Event()
    started = 0
    all_started = anyio.Event()

    def one_started() -> None:
        nonlocal started
        started += 1
        if started == count:
            all_started.set()

    async def one() -> None:
        await serve_idle(factory(), one_started, stop)

    async with anyio.create_task_group() as tasks:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            tasks.start_soon(one)
        await all_started.wait()
        await anyio.sleep(0.1)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        stop.set()
    return (after - before) / count / 1024


async def run(count: int) -> dict[str, float]:
    """Measure every kind, each in a fresh round."""
    layer = InMemoryChannelLayer()
    return {
        "plain WebsocketActor": await measure(Plain.as_asgi, count),
        "DSL (states, guards)": await measure(Machine.as_asgi, count),
        "DSL + state timeout + idle timeout": await measure(TimedMachine.as_asgi, count),
        "plain WebsocketActor with a layer": await measure(lambda: Plain.as_asgi(channel_layer=layer), count),
        "DSL + timeouts, with a layer": await measure(lambda: TimedMachine.as_asgi(channel_layer=layer), count),
    }


def main() -> None:
    """Parse arguments, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--actors", type=int, default=10_000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    results = anyio.run(run, args.actors, backend=args.backend)
    print(f"{args.actors} live actors on {args.backend} (tracemalloc, KiB per actor, incl. its task)")
    for name, kib in results.items():
        plain = results["plain WebsocketActor with a layer" if "layer" in name else "plain WebsocketActor"]
        extra = "" if name.startswith("plain") else f"   {kib - plain:+.2f} KiB over the plain actor"
        print(f"  {name:<38} {kib:7.2f}{extra}")


if __name__ == "__main__":
    main()
