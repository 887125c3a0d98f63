"""The hold a :class:`~interlock.layers.SQLiteChannelLayer` has on its file: two connections,
the lease keeper, and running calls on them.

Rules:

1. **Two connections, opened together.**  :meth:`Connections.open` (in a worker thread)
   opens the *worker* connection (``conn``: every call that may wait, one at a time,
   :meth:`Connections.db`) and the *loop's* connection (``fast``, set up by
   :func:`~._sqlite_file.for_event_loop`: :meth:`Connections.on_loop` tries a call on it
   once, on the home thread, and returns :data:`~._sqlite_store.BUSY` rather than wait);
   then it prunes dead processes, registers this one with the memberships it keeps, and
   starts its :class:`~._sqlite_lease.LeaseKeeper`.  Anything that fails closes both.
2. **Calls off the loop run one at a time**, under ``conn_lock``, on aiosqlite's
   connection thread on asyncio and in anyio worker threads on trio
   (:class:`~._sqlite_thread.ConnectionThread`); ``fast_lock`` guards the loop's
   connection only against :meth:`Connections.shutdown` from another thread.
3. **Checkpoints are asked for, not run.**  Every call that may have written counts
   (:meth:`Connections.wrote`); every :data:`CHECKPOINT_EVERY` of them the lease thread is
   asked for a checkpoint (no connection checkpoints on commit: :mod:`._sqlite_file`,
   rule 3).
4. :meth:`Connections.shutdown` closes the loop's connection, stops the keeper, and
   unregisters this process on the worker connection before closing it; a layer dropped
   without ``close()`` stops its keeper when it is collected.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from . import _sqlite_file as dbfile
from . import _sqlite_store as store
from ._errors import LayerClosed
from ._sqlite_lease import LeaseKeeper
from ._sqlite_thread import ConnectionThread

if TYPE_CHECKING:
    from ._sqlite import SQLiteChannelLayer

__all__ = ["CHECKPOINT_EVERY", "Connections"]

T = TypeVar("T")

CHECKPOINT_EVERY: Final = 1000  # writes (and calls on the worker connection) between checkpoint requests


class Connections:
    """One layer start's connections to its file, its lease keeper, and its worker thread.

    :param path: the layer file.
    :param process: the layer's process id (names its worker thread).
    """

    def __init__(self, path: Path, process: str) -> None:
        self.path = path
        # Shared with worker threads.
        self.conn: sqlite3.Connection | None = None
        self.conn_lock = threading.Lock()
        self.fast: sqlite3.Connection | None = None  # the home thread's (rule 1)
        self.fast_lock = threading.Lock()  # only against shutdown() from another thread
        self.writes = 0
        self.open_lock = threading.Lock()
        self.me: store.Owner | None = None
        self.keeper: LeaseKeeper | None = None
        self.stop_on_collect: weakref.finalize[[], SQLiteChannelLayer] | None = None
        self.thread = ConnectionThread(f"interlock-sqlite-{process}")

    def open(self, layer: SQLiteChannelLayer) -> None:
        """In a worker thread: open both connections, register *layer*'s process, start its lease."""
        with self.open_lock:
            if self.conn is not None:
                return
            conn = dbfile.connect(self.path)
            fast = None
            try:
                fast = dbfile.for_event_loop(dbfile.connect(self.path))
                now = time.time()
                me = store.Owner(
                    layer._process,
                    secrets.token_hex(8),
                    os.getpid(),
                    socket.gethostname(),
                    now,
                    now + layer.lease,
                    layer.grace,
                )
                store.call(conn, store.prune, now)
                store.call(conn, store.register, me, layer._own.snapshot())
                identity = dbfile.file_identity(self.path)
            except BaseException:
                conn.close()
                if fast is not None:
                    fast.close()
                raise
            keeper = LeaseKeeper(
                self.path,
                me,
                lease=layer.lease,
                group_expiry=layer.group_expiry,
                memberships=layer._own,
                identity=identity,
                drops=layer._pending_drops,
                on_replaced=layer._file_replaced,
            )
            keeper.start()
            self.stop_on_collect = weakref.finalize(layer, keeper.stop)  # dropped without close()
            self.me, self.keeper, self.fast, self.conn = me, keeper, fast, conn

    def shutdown(self) -> None:
        """In a worker thread: close both connections, stop the lease and unregister (rule 4)."""
        with self.open_lock:
            keeper, me = self.keeper, self.me
            with self.conn_lock:
                conn, self.conn = self.conn, None
            with self.fast_lock:
                fast, self.fast = self.fast, None
            if fast is not None:
                fast.close()
            if keeper is not None:
                keeper.stop()
                keeper.join()
                if self.stop_on_collect is not None:
                    self.stop_on_collect.detach()
            if conn is None or me is None:
                return
            try:
                store.call(conn, store.unregister, me.id)
            finally:
                conn.close()
                self.keeper = self.me = None

    def _run_locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.conn_lock:
            conn = self.conn
            if conn is None:
                msg = f"the layer on {str(self.path)!r} was closed"
                raise LayerClosed(msg)
            result = store.call(conn, fn, *args, **kwargs)
        self.wrote()
        return result

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` off the event loop, one call at a time."""
        return await self.thread.run(functools.partial(self._run_locked, fn, *args, **kwargs))

    def on_loop(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T | store.Busy:
        """On the home thread: run ``fn(conn, ...)`` on the loop's connection if that needs no wait.

        Returns :data:`~._sqlite_store.BUSY` when it would (the file is locked, or the
        layer is closing): the caller then goes through :meth:`db`.
        """
        if not self.fast_lock.acquire(blocking=False):
            return store.BUSY
        try:
            conn = self.fast
            return store.BUSY if conn is None else store.try_once(conn, fn, *args, **kwargs)
        finally:
            self.fast_lock.release()

    def wrote(self) -> None:
        """Count a call that may have written; now and then, ask the lease thread for a checkpoint.

        Called on the home thread (the loop's connection) and in worker threads (the other
        one): a count lost between them only puts the next request off by one.
        """
        self.writes += 1
        if self.writes >= CHECKPOINT_EVERY:
            self.writes = 0
            keeper = self.keeper
            if keeper is not None:
                keeper.request_checkpoint()
