"""An actor's background tasks, as cheap as each event loop allows.

An actor in mailbox mode runs tasks beside its own: the pump that feeds the server's
``receive()`` into the mailbox (on trio, or for a ``receive`` that ``._pump`` cannot
step without a task), the pump of a layer it cannot watch, a state actor's invoked
tasks, a give-up's watcher.  They live exactly as long as the actor's loop, like the tasks of an
anyio task group, but each actor pays for them with every open connection.

Rules:

1. **Tasks end with the block.**  Leaving ``async with TaskSet(...)`` cancels every task
   still running and waits for them, shielded from the cancellation of the block.
2. **A task's exception does not escape by itself.**  It goes to ``on_error``, which the
   actor turns into a mailbox item, so the failure reaches the actor in order, after
   the events the task delivered before failing, and fails it like a handler's exception
   would.  Only cancellation and ``BaseException``\\ s pass.
3. **The cheapest task each backend has.**  On asyncio a task is a bare
   :class:`asyncio.Task` (measured 1.2 KiB, against 4.7 KiB for an anyio task group and
   its task); on trio, where every task needs a nursery, the tasks run in a trio nursery
   (2.0 KiB with its task, against 3.0 KiB for an anyio task group).  anyio runs on these
   two backends only, so an event loop that is not asyncio's is trio's.
4. **A task that keeps rule 2 itself costs less.**  :meth:`TaskSet.start_guarded` runs a
   function that hands its own exceptions to ``on_error`` (the actor's client pump):
   no wrapper coroutine around it; and on asyncio the first such task is held in a slot,
   without a set or a done callback (about 570 bytes less per connection, tracemalloc).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    import trio

__all__ = ["TaskSet", "running_asyncio_loop"]


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio event loop, or None on trio (anyio's other backend)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class TaskSet:
    """Tasks started by one actor, cancelled and awaited when its loop ends (see the module)."""

    __slots__ = ("_first", "_group", "_on_error", "_tasks")

    def __init__(self, on_error: Callable[[Exception], None]) -> None:
        self._on_error = on_error
        self._group: tuple[AbstractAsyncContextManager[trio.Nursery], trio.Nursery] | None = None  # on trio
        self._tasks: set[asyncio.Task[None]] | None = None  # on asyncio, from the first start_soon
        self._first: asyncio.Task[Any] | None = None  # on asyncio, the first start_guarded task

    async def __aenter__(self) -> TaskSet:
        if running_asyncio_loop() is not None:
            return self
        import trio  # noqa: PLC0415 - present whenever a trio loop runs

        manager = trio.open_nursery()
        self._group = (manager, await manager.__aenter__())
        return self

    def start_soon(self, fn: Callable[..., Awaitable[Any]], /, *args: Any) -> None:
        """Run ``await fn(*args)`` in a task of its own."""
        group = self._group
        if group is not None:
            group[1].start_soon(self._guard, fn, args)
            return
        self._keep(asyncio.get_running_loop().create_task(self._guard(fn, args)))

    def start_guarded(self, fn: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any) -> None:
        """Run ``await fn(*args)`` in a task of its own; *fn* hands its exceptions to ``on_error`` itself.

        Rule 4: no wrapper around it. The first such task on asyncio is kept without a
        done callback (it is awaited when the block ends, done or not).
        """
        group = self._group
        if group is not None:
            group[1].start_soon(fn, *args)
            return
        task = asyncio.get_running_loop().create_task(fn(*args))
        if self._first is None:
            self._first = task
        else:
            self._keep(task)

    def cancel(self) -> None:
        """On trio, cancel the block: its tasks and the code inside it (the actor's loop).

        The nursery's own cancel scope does it, so a loop that may be cut short needs no
        scope of its own (a trio cancel scope costs about 430 bytes while it is entered).
        On asyncio the actor cancels its own task instead: this does nothing there.
        """
        if self._group is not None:
            self._group[1].cancel_scope.cancel()

    def _keep(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        if tasks is None:
            tasks = self._tasks = set()
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _guard(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the actor (rule 2)
            self._on_error(exc)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        if group is not None:
            manager, nursery = group
            nursery.cancel_scope.cancel()
            return bool(await manager.__aexit__(exc_type, exc, tb))
        tasks, self._tasks = self._tasks, None
        first, self._first = self._first, None
        running = [task for task in (first,) if task is not None and not task.done()]
        if tasks:
            running += tasks
        if running:
            for task in running:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait(running)
        return None
