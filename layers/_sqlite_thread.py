"""Where the SQLite layer's blocking calls run: never on an event loop.

On asyncio the layer's connection is an **aiosqlite** connection: one ``sqlite3``
connection owned by one thread that runs, in order, the functions it is handed. The
layer hands it whole transactions, one thread round trip per layer operation rather than
one per statement (aiosqlite's ``_execute``, the primitive its public methods are built
on; its round trip measured 70 µs here against 124 µs for ``anyio.to_thread``).
aiosqlite resolves its futures with asyncio, so on trio the same functions run in anyio
worker threads, one at a time per event loop. Either way a lock in the layer keeps the
connection to one thread at a time.

One aiosqlite connection per layer connection, however many tasks start the layer at
once: a second one, dropped, would close the shared ``sqlite3`` connection from its own
thread on garbage collection, outside the layer's lock (a closed database at the next
call, or a segmentation fault if another thread was using it). Calls made while the
thread starts go to anyio's threads, as on trio.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite
import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

__all__ = ["ConnectionThread"]

T = TypeVar("T")


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class ConnectionThread:
    """Runs calls for one layer connection: aiosqlite's thread on asyncio, anyio's on trio."""

    def __init__(self, name: str) -> None:
        self._aio: aiosqlite.Connection | None = None
        self._starting = False  # an attach() is starting aiosqlite's thread
        self._limiter: RunVar[anyio.CapacityLimiter] = RunVar(name)

    async def attach(self, conn: sqlite3.Connection) -> None:
        """Start aiosqlite's thread for *conn* when running on asyncio."""
        if (
            self._aio is not None
            or self._starting
            or not _on_asyncio()
            or not hasattr(aiosqlite.Connection, "_execute")
        ):
            return
        self._starting = True  # before the first await: concurrent callers start no second one
        try:
            aio = aiosqlite.Connection(lambda: conn, iter_chunk_size=64)
            thread = getattr(aio, "_thread", None)
            if thread is not None:
                thread.daemon = True  # a layer never closed must not hold the process at exit
            with anyio.CancelScope(shield=True):  # a cancelled start would leave the thread behind
                self._aio = await aio
        finally:
            self._starting = False

    async def run(self, call: Callable[[], T]) -> T:
        """Run *call* off the event loop and return its result."""
        aio = self._aio
        if aio is not None and _on_asyncio():
            # Shielded, as anyio.to_thread is: a transaction that ran (a claimed message,
            # say) is never abandoned half-way by a cancelled caller; the cancellation
            # arrives at the caller's next checkpoint instead.
            with anyio.CancelScope(shield=True):
                result: T = await aio._execute(call)  # type: ignore[no-untyped-call]  # see the docstring
            return result
        try:
            limiter = self._limiter.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(1)
            self._limiter.set(limiter)
        return await anyio.to_thread.run_sync(call, limiter=limiter)

    async def detach(self) -> None:
        """Stop aiosqlite's thread once the layer has closed the connection itself."""
        aio, self._aio = self._aio, None
        if aio is None:
            return
        if _on_asyncio():
            await aio.close()  # closing the already closed connection again is harmless
        else:  # started on asyncio, closed on trio: no asyncio future to wait on
            aio._running = False
            aio._tx.put_nowait((None, lambda: aiosqlite.core._STOP_RUNNING_SENTINEL))
