"""One bridge between sync and async code, on asyncio and trio alike.

Sync handlers run in anyio worker threads (:func:`run_in_worker`); from there,
:func:`async_to_sync` calls back into the event loop with ``anyio.from_thread``.
There is no thread-sensitive executor: one actor's handlers never overlap, which is
the guarantee sync code needs.

Theory of operation: database connections
-----------------------------------------
Django keeps one database connection per thread and closes it only when asked
(``close_old_connections()``, which its request cycle calls before and after every
request). Sync handlers run in a pool of worker threads, so without that call every
thread that ever touched the ORM keeps a connection open, a broken one stays broken,
and ``CONN_MAX_AGE`` is never honoured. So in a Django project every sync handler call
runs between two ``close_old_connections()`` in its own thread, as Channels'
``SyncConsumer`` and ``database_sync_to_async`` do: open connections stay bounded by the
thread pool's size (``CONN_MAX_AGE = 0``: none survive the call).

"A Django project" is found without configuration: the first call after ``django.db``
was imported into a configured, set-up Django installs the guard for good. Until then
each call pays one dict lookup (``"django.db" in sys.modules``): measured with
``bench/sync_dispatch.py``, nothing a thread hop (~100 µs) lets you see.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread

__all__ = ["async_to_sync", "connection_guard", "disable_connection_guard", "guarded", "run_in_worker", "sync_to_async"]

P = ParamSpec("P")
T = TypeVar("T")

_guard: Callable[[], None] | None = None  # close_old_connections, once Django is set up
_settled = False  # True once the guard is known for good (installed, or switched off)


def connection_guard() -> Callable[[], None] | None:
    """The call that closes stale database connections around sync code, if there is one.

    Django's ``close_old_connections`` once ``django.setup()`` has run in this process;
    None otherwise (and always after :func:`disable_connection_guard`).
    """
    global _guard, _settled
    if _settled:
        return _guard
    if "django.db" not in sys.modules:
        return None
    from django.apps import apps  # noqa: PLC0415 - only in a process that imported Django

    if not apps.ready:  # imported, not set up: maybe later (settings.configure() + setup())
        return None
    from django.db import close_old_connections  # noqa: PLC0415

    _guard, _settled = close_old_connections, True
    return _guard


def disable_connection_guard() -> None:
    """Never close database connections around sync calls in this process (benchmarks, tests)."""
    global _guard, _settled
    _guard, _settled = None, True


def guarded(guard: Callable[[], None], fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` between two ``guard()`` calls, in the calling thread."""
    guard()
    try:
        return fn(*args, **kwargs)
    finally:
        guard()


async def run_in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run sync *fn* in an anyio worker thread, from which :func:`async_to_sync` works.

    In a Django project the call is :func:`guarded` by ``close_old_connections()``.
    """
    guard = _guard if _settled else connection_guard()
    if guard is None:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    return await anyio.to_thread.run_sync(guarded, guard, fn, args, kwargs)


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
