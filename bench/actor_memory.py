"""Bytes per live connection in process: raw ASGI against interlock actors, with tracemalloc.

Each connection is one task (as a server runs one per connection) serving one app with an
in-process receive/send pair: ``receive()`` gives ``websocket.connect`` once, then waits
(on one event shared by all, so the waiting costs raw and interlock alike) until the
round ends. Once every connection waits, tracemalloc counts what the round allocated
(after a full collection): allocation counts, not timings, so the figure does not move
with the machine's load. Kinds:

* ``raw``: the ASGI app of ``bench/scale_apps.py`` (accept, keep ``send`` in a set);
* ``direct``: a ``WebsocketActor`` without a layer (it awaits ``receive()`` itself);
* ``memory``: the broadcast actor of ``bench/scale_apps.py`` on an ``InMemoryChannelLayer``,
  in one group (mailbox mode: the shape ``bench/scale.py`` measures by RSS);
* ``sqlite``: the same actor on a ``SQLiteChannelLayer`` in a fresh file (what SQLite
  allocates with its own allocator, its page cache, is not traced: RSS tells that).

Run::

    .venv/bin/python bench/actor_memory.py [--conns 3000] [--backend asyncio|trio|both]
        [--only raw,direct,memory,sqlite] [--top N]

``--top N`` lists, for each interlock kind, the N source lines whose bytes per connection
differ most from the raw round's (what interlock adds: what is worth cutting).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_apps  # the apps bench/scale.py serves
from idle_ws import serve_idle

KINDS = ("raw", "direct", "memory", "sqlite")


def _factory(kind: str) -> Callable[[], Any]:
    if kind == "raw":
        app = scale_apps.make_raw()
        return lambda: app
    if kind == "direct":
        from interlock.actors import WebsocketActor  # noqa: PLC0415

        class Plain(WebsocketActor):
            async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
                await self.send(text_data=text_data)

        direct = Plain.as_asgi()
        return lambda: direct
    if kind == "sqlite":  # a fresh database file for the round (scale_apps reads SCALE_DB)
        os.environ["SCALE_DB"] = os.path.join(tempfile.mkdtemp(prefix="actor-memory-"), "layer.db")
        stored = scale_apps.make_sqlite()
        return lambda: stored
    layered = scale_apps.make_memory()
    return lambda: layered


Sites = dict[str, tuple[int, int]]  # "dir/file.py:line" -> (bytes, blocks) over the round


async def _settle(base: int, timeout: float = 20.0) -> None:
    """Wait until what is traced stops moving: work still in flight (a layer's thread) is not counted.

    Checks every 50 ms; done once three checks in a row moved by under 0.1 % (at least five
    checks, so an in-memory round, idle at once, still lets its pumps start).
    """
    last, steady, checks = tracemalloc.get_traced_memory()[0], 0, 0
    with anyio.move_on_after(timeout):
        while steady < 3 or checks < 5:
            await anyio.sleep(0.05)
            gc.collect()
            now = tracemalloc.get_traced_memory()[0]
            checks += 1
            steady = steady + 1 if abs(now - last) < 0.001 * max(now - base, 1) else 0
            last = now


async def measure(kind: str, count: int, sites: bool) -> tuple[float, Sites]:
    """Bytes allocated per live connection of *kind*, and by allocation site if asked."""
    app = _factory(kind)()
    stop = anyio.Event()
    waiting = 0
    all_waiting = anyio.Event()

    def one_waits() -> None:
        nonlocal waiting
        waiting += 1
        if waiting == count:
            all_waiting.set()

    async def one() -> None:
        await serve_idle(app, one_waits, stop)

    by_site: Sites = {}
    async with anyio.create_task_group() as tasks:
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot() if sites else None
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            tasks.start_soon(one)
        with anyio.fail_after(120):
            await all_waiting.wait()
        await _settle(base)  # every actor at its idle wait (pumps started, groups joined)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
        if before is not None:
            for stat in tracemalloc.take_snapshot().compare_to(before, "lineno"):
                frame = stat.traceback[0]
                where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
                by_site[where] = (stat.size_diff, stat.count_diff)
        tracemalloc.stop()
        stop.set()
    return used / count, by_site


async def run(kinds: list[str], count: int, top: int) -> dict[str, tuple[float, Sites]]:
    """Measure each kind in a round of its own."""
    return {kind: await measure(kind, count, bool(top)) for kind in kinds}


def _above(sites: Sites, raw: Sites, count: int, top: int) -> list[str]:
    """The *top* sites whose bytes differ most from the raw round's, per connection."""
    rows = []
    for where in sites.keys() | raw.keys():
        size, blocks = sites.get(where, (0, 0))
        raw_size, raw_blocks = raw.get(where, (0, 0))
        rows.append((size - raw_size, blocks - raw_blocks, where))
    rows.sort(key=lambda row: -abs(row[0]))
    return [f"{size / count:+8.0f} B {blocks / count:+6.2f} blocks  {where}" for size, blocks, where in rows[:top]]


def main() -> None:
    """Parse arguments, measure, print bytes per connection and interlock's cost above raw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--conns", type=int, default=3000)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    parser.add_argument("--only", default=",".join(KINDS))
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    kinds = [kind for kind in args.only.split(",") if kind]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"--only takes {', '.join(KINDS)}, not {', '.join(sorted(unknown))}")
    if args.conns < 1:
        parser.error("--conns must be at least 1")
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    for backend in backends:
        results = anyio.run(run, kinds, args.conns, args.top, backend=backend)
        print(f"{args.conns} live connections on {backend} (tracemalloc, bytes per connection, incl. its task)")
        raw, raw_sites = results.get("raw", (None, {}))
        for kind, (used, sites) in results.items():
            extra = f"   {used - raw:+7.0f} B over raw" if raw is not None and kind != "raw" else ""
            print(f"  {kind:<8} {used:8.0f} B ({used / 1024:5.2f} KiB){extra}")
            if kind != "raw":
                for line in _above(sites, raw_sites, args.conns, args.top):
                    print(f"      {line}")


if __name__ == "__main__":
    main()
