"""Background tasks that outlive their caller, on asyncio and trio alike.

A layer starts lazily, inside whatever task first uses it, so it has no task group of its
own to run a background task in.  :func:`spawn_system_task` starts one in the running
event loop itself (a trio *system task*, an asyncio task kept referenced), which the
loop cancels when it ends.  The task must catch its own exceptions (under trio, one that
escapes crashes the run); cancellation may pass.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["spawn_system_task"]

_asyncio_tasks: set[Any] = set()  # strong references: asyncio keeps only weak ones


def spawn_system_task(fn: Callable[[], Awaitable[None]], name: str) -> None:
    """Start ``fn()`` in the background of the running event loop, on asyncio or trio.

    Under trio it is a system task; under asyncio, a task this module keeps referenced until
    it ends.  Either way the event loop cancels it when the loop itself ends, so it may
    outlive the task that called this.  ``fn`` must catch its own exceptions: under trio
    one that escapes a system task crashes the whole run.  ``name`` names the task in
    debuggers and task listings.  Must be called from inside a running event loop.
    """
    if "trio" in sys.modules:
        import trio  # noqa: PLC0415 - only when the program uses trio

        if trio.lowlevel.in_trio_run():
            trio.lowlevel.spawn_system_task(fn, name=name)
            return
    import asyncio  # noqa: PLC0415 - likewise

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        msg = f"spawn_system_task({name!r}) needs a running event loop (asyncio or trio); call it from async code"
        raise RuntimeError(msg) from None
    task = loop.create_task(_run(fn), name=name)
    _asyncio_tasks.add(task)
    task.add_done_callback(_asyncio_tasks.discard)


async def _run(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()
