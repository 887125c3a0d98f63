"""The background machinery of :class:`~interlock.layers.SQLiteChannelLayer`: the home thread's
pump, the file watch it runs in a worker thread, and its claim.

Theory of operation (wake-up): the in-memory queues (:mod:`._sqlite_local`) belong to
one *home* event loop thread, the first that used the layer (:meth:`Pump.start` makes
it the home).  While anything on it waits to receive, a background *pump* task
(:mod:`._background`) runs there.  It asks a worker thread to watch the file
(:meth:`Pump.watch`): ``PRAGMA data_version`` (a counter read from shared memory, no
query) every ``poll_interval`` seconds (five times less often once no message has come
through the file for a second), returning as soon as another connection has committed
something for this process (or for a named channel it waits on: the watch itself
checks, so this process's own sends do not wake it), or at once when kicked (a
:class:`threading.Event` set when this process itself wrote something a local receiver
may want, or when a full local queue has room again).  Then the pump claims
(:func:`claim`), in one indexed query and one ``DELETE … RETURNING``, the messages for
this process's channels (up to 32 on the loop's own connection; after a full batch, or
when the file is locked, up to 500 in a worker thread), moves them into the in-memory
queues, and wakes the receivers of named channels, which claim their own rows.  If the
home loop ends, the pump's ending frees the home for the next loop that uses the layer.

What a delivery from another process waits for (issue 17; ``bench/xproc.py --trace``
times, in both processes, the sends, watches, claims, checkpoints, lease beats and
garbage collections around each slow message): the poll (2 ms, 1 ms on average, later
when a busy machine wakes the watch thread late), the watch thread waking the loop, and
the claim (0.3 to 0.5 ms); now and then a send that takes a few ms on the sender's loop
(once 5 ms: perhaps the fsync of a WAL starting afresh, not shown).  The tail was
checkpoints: SQLite's own checkpoint on commit (``wal_autocheckpoint``, 1,000 WAL pages)
ran inside the claim that crossed the mark, about every 145 paced messages (a message
writes about seven pages), and held that claim's messages for its fsyncs, 13 to 16 ms:
a p99 of 10 to 16 ms in every run.  Switched off alone, the next run's p99 was 6.2 ms
against 10.8.  The lease thread's checkpoint used to restart the WAL, holding the write
lock (every send and claim) through its fsync and up to 100 ms of waiting for readers;
it is passive now and restarts only a WAL file past 32 MiB.  Lease beats (a few short
transactions every ``lease / 3``) and garbage collection (generation-0 passes of 0.2 to
0.3 ms) showed in no slow message.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Final

import anyio
import anyio.to_thread

from . import _sqlite_store as store
from ._background import spawn_system_task
from ._sqlite_local import LocalQueues, Room
from ._types import Message

if TYPE_CHECKING:
    from ._sqlite import SQLiteChannelLayer

__all__ = ["FAST_CLAIM", "Pump", "claim"]

logger = logging.getLogger("interlock.layers.sqlite")

_WATCH_SPAN: Final = 1.0  # seconds one watch call lasts before the pump looks around
_QUIET_AFTER: Final = 1.0  # seconds without a message from the file before polling slows down
_QUIET_SLOWDOWN: Final = 5  # how much it slows down
FAST_CLAIM: Final = 32  # most messages the pump claims on the event loop; after a full batch, a thread claims


class Pump:
    """One layer start's pump: its task on the home thread, its watch, and what wakes it.

    :param layer: the layer it feeds (its connections, generation and drops).
    :param local: the layer's in-memory queues, which the pump fills.
    :param kick: set to end a watch at once (shared with *local*, which sets it when a
        full queue has room again).
    """

    def __init__(self, layer: SQLiteChannelLayer, local: LocalQueues, kick: threading.Event) -> None:
        self._layer = layer
        self._local = local
        self.kick = kick
        self.last_change = 0.0  # when a message last came in through the file
        self._scope: anyio.CancelScope | None = None
        self._idle: anyio.Event | None = None

    def start(self, ident: int) -> None:
        """Make thread *ident* (the caller's) the layer's home, and start the pump there."""
        layer = self._layer
        layer._home = ident
        self._local.forget_waiters()  # events of a loop that has ended
        layer._drops.unhook_all()
        self._idle = None
        scope = self._scope = anyio.CancelScope()
        generation = layer._generation

        async def run_pump() -> None:
            try:
                with scope:
                    await self._run(generation)
            except Exception:
                if layer._generation == generation:  # else closed meanwhile: its last claim failed
                    logger.exception("the pump of %r failed; the next call restarts it", layer)
            finally:
                if self._scope is scope:  # the loop is ending (or the pump failed)
                    self._scope = None
                    layer._home = None
                    self._local.wake_all()
                elif layer._generation != generation:  # closed from another thread
                    self._local.wake_all()

        spawn_system_task(run_pump, f"interlock-sqlite-pump-{layer._process}")

    def stop(self, here: bool) -> None:
        """The layer closes: cancel the pump (*here*: on the home thread) and end its watch."""
        if here and self._scope is not None:
            self._scope.cancel()
        self._scope = None
        self._layer._home = None
        self.kick.set()

    async def _run(self, generation: int) -> None:
        layer = self._layer
        conns = layer._conns
        version = -1
        more = False
        while layer._generation == generation and layer._broken is None:
            if self._local.waiting == 0:
                idle = self._idle = anyio.Event()
                await idle.wait()
                self._idle = None
                version = -1  # messages may have arrived while nobody waited
            version, changed = await anyio.to_thread.run_sync(self.watch, version, abandon_on_cancel=True)
            if layer._generation != generation or not changed:
                continue
            room = self._local.room()
            # A few messages (the usual case) are claimed on the loop's connection, without
            # a thread round trip; a batch after a full one, or when the file is locked, in
            # a worker thread.
            take = functools.partial(claim, owner=layer._process, room=room, full=room.full())
            found = store.BUSY if more else conns.on_loop(take, batch=FAST_CLAIM)
            if isinstance(found, store.Busy):
                found = await conns.db(take, batch=store.CLAIM_BATCH)
            else:
                conns.wrote()
            rows, more, drops = found
            if rows:
                self.last_change = time.monotonic()
                self._local.deliver(rows)
            for channel, count in drops:  # other processes' group_sends found our channels full
                layer._drops.count(channel, count)
            self._local.wake_named()
            if more:
                self.kick.set()

    def watch(self, version: int) -> tuple[int, bool]:
        """In a worker thread: wait until the file changed or the pump is kicked."""
        layer = self._layer
        conns = layer._conns
        deadline = time.monotonic() + _WATCH_SPAN
        while True:
            with conns.conn_lock:
                if conns.conn is None:
                    return version, False
                current = store.call(conns.conn, store.data_version)
                if (
                    current != version
                    and not self.kick.is_set()
                    and not self._local.named_waiting
                    and not store.call(conns.conn, store.has_mail, layer._process)
                ):
                    version = current  # a commit with nothing for us (this process's own sends, say)
            now = time.monotonic()
            if current != version or self.kick.is_set():
                self.kick.clear()
                return current, True
            if now >= deadline:
                return current, False
            quiet = now - self.last_change > _QUIET_AFTER
            self.kick.wait(layer.poll_interval * _QUIET_SLOWDOWN if quiet else layer.poll_interval)

    async def wait(self, event: anyio.Event) -> None:
        """Wait on a receiver's *event*, counted as waiting (so the pump runs meanwhile)."""
        self._local.waiting += 1
        if self._idle is not None:
            self._idle.set()
        try:
            await event.wait()
        finally:
            self._local.waiting -= 1

    def nudge(self, home: bool, channels: list[str]) -> None:
        """Tell receivers in this process that *channels* got a message in the file."""
        if home:
            self._local.wake_named(channels)
        else:
            self.kick.set()

    def receiver_came(self) -> None:
        """A watcher now waits on the home queues: a pump idle for want of receivers watches again."""
        if self._idle is not None:
            self._idle.set()


def claim(
    conn: sqlite3.Connection, owner: str, room: Room, full: list[str], batch: int
) -> tuple[list[tuple[str, float, Message]], bool, list[tuple[str, int]]]:
    """The pump's claim: messages for *owner*'s channels, and drops of them it has not heard of."""
    rows, more = store.claim_owned(conn, owner, room, full, room.bytes_left, batch=batch)
    return rows, more, store.take_drops(conn, owner)
