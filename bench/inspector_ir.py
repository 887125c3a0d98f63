"""What the inspector costs an actor, counted in instructions (valgrind's callgrind), not timed.

The CPU-time figure of ``bench/inspector.py`` cannot resolve 2 % on a shared 2-core machine;
an instruction count does not depend on what else the machine runs.

Rules:

1. The workload is fixed: ``--actors`` ``PlainEcho`` actors (from ``bench/inspector.py``)
   each echo ``--messages`` frames on an ``InMemoryChannelLayer``, on asyncio, in process,
   with ``PYTHONHASHSEED=0``; the modes are those of ``bench/inspector.py`` (``without``,
   ``mounted``, ``watched``; the sampler is not run while watched, so no timer enters the count),
   and in ``mounted`` and ``watched`` the inspector's agent answers on the layer, as when an
   app's lifespan starts it.
2. Each count is one ``valgrind --tool=callgrind`` run of a child process that runs a warm-up
   round, then the workload once (size N) or twice (size 2N); the N run's total is subtracted
   from the 2N run's, so start-up, imports and first-time costs cancel, and the difference
   divided by the echoes is the instructions per echo.
3. Bounded: every child has a time limit; two run at once.

Run (needs valgrind: Debian package ``valgrind``)::

    .venv/bin/python bench/inspector_ir.py [--actors 20] [--messages 200]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODES = ("without", "mounted", "watched")
CHILD_TIME_LIMIT = 300.0


def child(mode_name: str, rounds: int, actors: int, messages: int) -> None:
    """Run in the child: one warm-up round, then *rounds* rounds of the workload in *mode_name*."""
    sys.path.insert(0, str(Path(__file__).parent))
    # Imported here, in the child only: the parent just runs valgrind.
    import anyio  # noqa: PLC0415
    import inspector as bench  # noqa: PLC0415 - bench/inspector.py, on the path just set
    from interlock.actors.inspector import Inspector  # noqa: PLC0415
    from interlock.layers import InMemoryChannelLayer  # noqa: PLC0415

    async def workload(layer: Any, count: int) -> int:
        app = bench.PlainEcho.as_asgi()
        frames = [f'{{"type": "echo", "n": {i}}}' for i in range(messages)]
        async with anyio.create_task_group() as tasks:
            for _ in range(count):
                tasks.start_soon(bench.run_actor, app, layer, frames, None)
        return count * messages

    async def run() -> None:
        async with InMemoryChannelLayer() as layer:
            inspector = Inspector(token="bench-token-0123456789", channel_layer=layer)
            if mode_name != "without":  # mounted as an app's lifespan mounts it: its agent answers on the layer
                await inspector.start()
            with bench.mode(mode_name):
                await workload(layer, 2)  # warm-up: first-time costs, counted in both runs alike
                for _ in range(rounds):
                    await workload(layer, actors)
            await inspector.stop()

    anyio.run(run, backend="asyncio")


def count(mode_name: str, rounds: int, args: argparse.Namespace) -> int:
    """Total instructions (Ir) callgrind counts for one child."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, __file__, "--child", mode_name, str(rounds),
            "--actors", str(args.actors), "--messages", str(args.messages),
        ]  # fmt: skip
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=CHILD_TIME_LIMIT)
        match = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("no totals line in the callgrind output")
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.actors, args.messages)
        return
    jobs = [(name, rounds) for name in MODES for rounds in (1, 2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: count(job[0], job[1], args), jobs), strict=True))
    echoes = args.actors * args.messages
    per_echo = {name: (totals[name, 2] - totals[name, 1]) / echoes for name in MODES}
    print(f"inspector cost in instructions: {args.actors} actors x {args.messages} echoes, asyncio, callgrind")
    print(f"  {'mode':<8} {'Ir total (N)':>14} {'Ir total (2N)':>14} {'Ir/echo':>9} {'vs without':>11}")
    for name in MODES:
        ratio = 100 * (per_echo[name] / per_echo["without"] - 1)
        print(f"  {name:<8} {totals[name, 1]:>14,} {totals[name, 2]:>14,} {per_echo[name]:>9,.0f} {ratio:>+10.2f}%")


if __name__ == "__main__":
    main()
