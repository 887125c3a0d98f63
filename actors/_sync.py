"""One bridge between sync and async code, on asyncio and trio alike.

Sync handlers run in anyio worker threads (:func:`run_in_worker`); from there,
:func:`async_to_sync` calls back into the event loop with ``anyio.from_thread``.
There is no thread-sensitive executor: one actor's handlers never overlap, which is
the guarantee sync code needs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

__all__ = ["async_to_sync", "run_in_worker", "sync_to_async"]

P = ParamSpec("P")
T = TypeVar("T")


async def run_in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run sync *fn* in an anyio worker thread, from which :func:`async_to_sync` works."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def async_to_sync(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Wrap an async callable so sync code can call it.

    From a worker thread (a sync handler) it runs *fn* on the actor's event loop and
    waits; in a thread with no event loop it runs *fn* in a fresh ``anyio.run``.  On
    the event loop thread itself it refuses: blocking there would deadlock.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(fn, *args, **kwargs)
        try:
            return anyio.from_thread.run(call)
        except anyio.NoEventLoopError:
            pass
        try:
            anyio.get_current_task()
        except anyio.NoEventLoopError:
            return anyio.run(call)
        msg = (
            f"async_to_sync({getattr(fn, '__qualname__', fn)!r}) was called on the event loop "
            "thread, where it would block the loop; await the coroutine instead"
        )
        raise RuntimeError(msg)

    return wrapper


def sync_to_async(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """Wrap a sync callable so async code can await it; it runs in a worker thread."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    return wrapper
