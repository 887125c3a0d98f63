"""A channel layer in a SQLite file: durable, listable groups shared by the processes of one machine.

Rules:

1. **Groups are rows.**  ``group_add`` writes a membership to the file, so memberships
   survive restarts and any process can list them (``group_members``, ``groups``).
2. **Channels belong to processes.**  ``new_channel()`` names (``PREFIX.PROCESS!TOKEN``)
   belong to the layer instance that made them, which holds a lease in the file while
   it runs (:mod:`._sqlite_lease`).  When it closes, their memberships and queued
   messages go at once; when it dies, even by SIGKILL, they go ``grace`` seconds after
   its lease ends, pruned by whichever process notices.  *Named* channels (no ``!``,
   e.g. ``worker.alpha``) belong to nobody: their memberships last until discarded, and
   any process may receive from them.
3. **Local fast path.**  A message from this process to one of its own channels never
   touches the file: it goes to an in-memory queue, exactly as in
   :class:`~interlock.layers.InMemoryChannelLayer`.  Everything else (other processes'
   channels, named channels) is a row in ``messages``, encoded by :mod:`._wire`.
4. **Capacity and expiry** hold for each queue: the in-memory one and the file's.  A
   sender gets :class:`~interlock.layers.ChannelFull` when the queue it writes to is
   full; ``group_send`` skips full members.  Expired messages are never delivered.
5. **Never wait on the event loop.**  A ``send``, a small ``group_send``, a named
   channel's ``receive`` and the pump's claim of a few messages on the home thread run on
   a connection of the loop's own, once, without waiting: one short transaction (about
   25 µs), no thread round trip.  If another process holds the write lock at that moment,
   the call goes to a worker thread instead, which waits and retries.  No connection
   checkpoints on commit (:mod:`._sqlite_file`, rule 3): the lease thread does, in a way
   that makes nobody wait (a checkpoint ends with fsyncs).  Every other SQLite call runs off
   the loop, one at a time per layer (a lock), as whole transactions: on asyncio on
   aiosqlite's connection thread, on trio in anyio worker threads
   (:mod:`._sqlite_thread`); the same store functions either way.  Both connections, and
   the lease keeper started with them, are :mod:`._sqlite_conns`'s.

Theory of operation (wake-up): the in-memory queues (:mod:`._sqlite_local`) belong to
one *home* event loop thread, the first that used the layer; a *pump* task there watches
the file and claims this process's messages into them (:mod:`._sqlite_pump`, which also
says what a delivery from another process waits for).

Calls from other threads or event loops (sync code bridged with a fresh ``anyio.run``)
never touch the in-memory queues: they go through the file and kick the pump.  If the
home loop ends, the pump's ending frees the home for the next loop that uses the
layer.  A forked child forgets its parent's connection, lease and channels, and starts
as a new process on first use.

Where the code is: this module is the store adapter over :class:`~._store_layer.StoreLayer`
(which holds the facade and the routing); :mod:`._sqlite_conns` opens the file and runs calls
on it, :mod:`._sqlite_pump` feeds the home queues (:mod:`._sqlite_local`) from it,
:mod:`._sqlite_lease` beats, prunes and checkpoints in its own thread, :mod:`._sqlite_file`
is the file (schema, opening, identity, checkpoints) and :mod:`._sqlite_store` the queries.

Group histories (``history=GroupHistory(...)``): a send to a group the policy names is one
transaction of :mod:`._sqlite_history` (offset, kept copy, trim, the copies for other
processes), on the loop's connection when the file is free; other groups pay one
attribute test and nothing more.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from . import _sqlite_history as history
from . import _sqlite_store as store
from ._core import owner_of
from ._errors import LayerClosed, LayerFileReplaced
from ._history import GroupHistory, HistoryPage
from ._queues import DEFAULT_CAPACITY_BYTES
from ._sqlite_conns import Connections
from ._sqlite_local import LocalQueues
from ._sqlite_pump import Pump
from ._store_layer import StoreLayer, check_history
from ._types import Message
from ._validation import require_positive
from ._wire import encode

__all__ = ["SQLiteChannelLayer"]

logger = logging.getLogger("interlock.layers.sqlite")

_FAST_FANOUT: Final = 32  # most file members a group_send queues on the event loop; more go to a thread
_inherited: list[sqlite3.Connection] = []  # connections a forked child must leave alone


@final
class SQLiteChannelLayer(StoreLayer):
    """A channel layer kept in a SQLite file, shared by the processes of one machine.

    :param path: the layer file; created (with its schema) if missing, its directory must exist.
    :param capacity: undelivered messages a channel may hold before ``send`` raises
        :class:`~interlock.layers.ChannelFull`.
    :param expiry: seconds an undelivered message is kept.
    :param group_expiry: seconds a membership lasts unless renewed by ``group_add``; None
        (the default) keeps memberships until discarded or until their channel's process
        is pruned: leases, not a timer, clean up after dead processes.
    :param channel_capacity: per-channel capacities, keyed by glob patterns
        (``{"http.*": 500}``); the first matching pattern wins.
    :param capacity_bytes: bytes (text and bytes values, see ``message_size``) the
        messages waiting in one of this process's channels may hold before more are refused
        like at ``capacity`` (8 MiB by default; None for no bound). It bounds what a client
        that stopped reading holds, however large the messages sent to it.
    :param lease: seconds this process's lease lasts; it is renewed every ``lease / 3``.
    :param grace: seconds after its lease ends before a silent process's channels are pruned.
    :param poll_interval: seconds between two looks at the file while something waits
        for a message from another process and messages flow: the bound on their extra
        latency.  After a second without such messages the layer looks five times less
        often, until the next one.
    :param history: the groups whose messages are kept, numbered, in the file, for members
        that come back (see :class:`~interlock.layers.GroupHistory`); None keeps none.

    The layer starts on first use; ``await layer.start()`` or ``async with layer:``
    start it explicitly (and surface a bad file at once), ``await layer.close()`` ends
    its lease and drops its own channels.
    """

    _kind = "sqlite"
    _logger = logger
    _local: LocalQueues

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        capacity: int = 100,
        expiry: float = 60.0,
        group_expiry: float | None = None,
        channel_capacity: Mapping[str, int] | None = None,
        capacity_bytes: int | None = DEFAULT_CAPACITY_BYTES,
        lease: float = 10.0,
        grace: float = 20.0,
        poll_interval: float = 0.002,
        history: GroupHistory | None = None,
    ) -> None:
        self.history = check_history(history)
        self.path = Path(path)
        self._configure(
            capacity=capacity,
            expiry=expiry,
            group_expiry=group_expiry,
            channel_capacity=channel_capacity,
            capacity_bytes=capacity_bytes,
            lease=lease,
            grace=grace,
        )
        self.poll_interval = require_positive("poll_interval", poll_interval)
        self._begin()

    def _reset_store(self) -> None:
        """The file's part of a layer that has not started: connections, lease, home, pump."""
        self._broken: str | None = None  # why the file is not ours any more (LayerFileReplaced)
        self._conns = Connections(self.path, self._process)  # its file: connections, lease, worker thread
        kick = threading.Event()  # ends the pump's watch at once
        # The home event loop thread's.
        self._home: int | None = None
        self._local = LocalQueues(self._capacity_for, self.expiry, kick, self.capacity_bytes)
        self._pump = Pump(self, self._local, kick)

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's connection, lease, channels and threads."""
        conns = self._conns
        _inherited.extend(conn for conn in (conns.conn, conns.fast) if conn is not None)  # never used or closed here
        self._reset()

    def __repr__(self) -> str:
        state = "started" if self._conns.conn is not None else "not started"
        return f"<SQLiteChannelLayer {str(self.path)!r} process={self._process} {state}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the file, register this process and start its lease (done lazily otherwise)."""
        await self._ready()

    def _at_home(self) -> bool:
        return self._conns.conn is not None and self._broken is None and self._home == threading.get_ident()

    async def _ready(self) -> bool:
        """Start if needed; return whether the calling thread owns the in-memory queues."""
        self._check_file()
        if self._conns.conn is None:
            await anyio.to_thread.run_sync(self._conns.open, self)
            conn = self._conns.conn
            if conn is not None:
                await self._conns.thread.attach(conn)
        ident = threading.get_ident()
        if self._home == ident:
            return True
        if self._home is None:
            self._pump.start(ident)
            return True
        return False

    def _file_replaced(self, error: LayerFileReplaced) -> None:
        """From the lease thread: the path names another file now; every call raises from here on."""
        self._broken = str(error)
        self._pump.kick.set()  # the pump ends, waking every receiver

    def _check_file(self) -> None:
        if self._broken is not None:
            raise LayerFileReplaced(self._broken)

    async def close(self) -> None:
        """End this process's lease, drop its channels and their memberships, release the file.

        Receives still waiting raise :class:`~interlock.layers.LayerClosed`; the next call
        starts the layer again (on the file then at the path, even after
        :class:`~interlock.layers.LayerFileReplaced`).
        """
        with anyio.CancelScope(shield=True):
            self._generation += 1
            here = self._home == threading.get_ident()
            if here:
                self._local.clear()
                self._drops.clear()
            self._pump.stop(here)
            await anyio.to_thread.run_sync(self._conns.shutdown)
            await self._conns.thread.detach()
            self._own.clear()
            self._pending_drops.take()
            self._broken = None
            self._peers.stop()

    async def flush(self) -> None:
        """Delete every membership and queued message in the file, and this process's queues."""
        home = await self._ready()
        await self._conns.db(store.flush)
        self._forget_all(home)

    def _check_open(self, generation: int, channel: str) -> None:
        self._check_file()
        if self._generation != generation:
            msg = f"the layer on {str(self.path)!r} was closed while receiving on {channel!r}"
            raise LayerClosed(msg)

    async def _wait_local(self, event: anyio.Event, generation: int, channel: str) -> bool:
        await self._pump.wait(event)
        self._check_open(generation, channel)
        return self._home == threading.get_ident()  # else the pump ended: start over

    def _receiver_came(self) -> None:
        self._pump.receiver_came()  # a receiver now waits: the pump watches the file again

    # -- channels --------------------------------------------------------------------------

    async def _send_stored(self, channel: str, checked: Message, home: bool) -> None:
        now = time.time()
        targets = [(channel, owner_of(channel), self._capacity_for(channel))]
        body = encode(checked)
        expires = now + self.expiry
        done = (
            self._conns.on_loop(store.enqueue, targets, body, now=now, expires=expires, strict=True) if home else None
        )
        waited = done is None or isinstance(done, store.Busy)
        if waited:
            await self._conns.db(store.enqueue, targets, body, now=now, expires=expires, strict=True)
        else:
            self._conns.wrote()
        self._pump.nudge(home, [channel])
        if not waited and self._pacer.due():
            await anyio.lowlevel.cancel_shielded_checkpoint()

    async def _receive_stored(self, channel: str, home: bool) -> Message | None:
        generation = self._generation
        while True:
            event = self._local.named_waiter(channel) if home else None  # before looking: no lost wake-up
            found = self._conns.on_loop(store.claim_one, channel) if home else store.BUSY
            if isinstance(found, store.Busy):
                message = await self._conns.db(store.claim_one, channel)
            else:
                message = found
                if message is not None:
                    self._conns.wrote()
            if message is not None:
                self._pump.last_change = time.monotonic()
                return message
            self._check_open(generation, channel)
            if event is None:
                await anyio.sleep(self.poll_interval)
            else:
                await self._pump.wait(event)
            self._check_open(generation, channel)
            if event is not None and self._home != threading.get_ident():
                return None  # the pump ended: start over

    async def _sync_watches(self, add: list[tuple[str, str | None]], remove: list[str]) -> list[tuple[str, str]]:
        return await self._conns.db(store.sync_watches, self._process, add, remove)

    async def _close_stored(self, channel: str, home: bool) -> None:
        await self._conns.db(store.close_channel, channel)
        self._forget_channel(channel, home)

    # -- groups ----------------------------------------------------------------------------

    async def _add_stored(self, group: str, channel: str, owner: str | None, now: float) -> None:
        record = None
        if owner == self._process:
            record = store.Owner(owner, "", os.getpid(), socket.gethostname(), now, now + self.lease, self.grace)
        elif owner is not None:  # someone else's: a placeholder, pruned after grace unless it lives
            record = store.Owner(owner, "", 0, "", now, now, self.grace)
        await self._conns.db(store.group_add, group, channel, record, now)

    async def _discard_stored(self, group: str, channel: str) -> None:
        await self._conns.db(store.group_discard, group, channel)
        self._own.discard(group, channel)

    async def _drop_counts_stored(self) -> dict[str, int]:
        await self._write_drops(lambda process, counts: self._conns.db(store.add_drops, process, counts))
        return await self._conns.db(store.drop_counts)

    async def _group_send_stored(self, group: str, checked: Message, home: bool) -> tuple[list[str], Message, bool]:
        now = time.time()
        if self.history is not None and self.history.keeps(group):
            return await self._group_send_recorded(group, checked, home, now)
        body = encode(checked)
        expires = now + self.expiry
        joined_after = self._joined_after()
        split = (
            self._conns.on_loop(store.split_members, group, joined_after, self._process, self._capacity_for)
            if home
            else store.BUSY
        )
        waited = True
        if isinstance(split, store.Busy):  # one trip to a thread does it all
            local, stored, full = await self._conns.db(
                store.group_send,
                group,
                body,
                joined_after=joined_after,
                local_owner=self._process if home else None,
                now=now,
                expires=expires,
                capacity_for=self._capacity_for,
            )
        else:
            local, targets = split
            stored = [channel for channel, _, _ in targets]
            full = []
            if not targets:
                waited = False
            else:
                queued = (
                    self._conns.on_loop(store.enqueue, targets, body, now=now, expires=expires, strict=False)
                    if len(targets) <= _FAST_FANOUT
                    else store.BUSY
                )
                if isinstance(queued, store.Busy):
                    full = await self._conns.db(store.enqueue, targets, body, now=now, expires=expires, strict=False)
                else:
                    self._conns.wrote()
                    full, waited = queued, False
        if stored:
            self._pump.nudge(home, stored)
        for channel in full:  # counted in the file already; its owner hears of it from there
            self._drops.seen(group, channel)
        return local, checked, waited

    async def _group_send_recorded(
        self, group: str, checked: Message, home: bool, now: float
    ) -> tuple[list[str], Message, bool]:
        """``group_send`` to a group that keeps a history: one transaction (``_sqlite_history``)."""
        assert self.history is not None  # the caller checked
        send = functools.partial(
            history.send_recorded,
            group=group,
            message=checked,
            policy=self.history,
            joined_after=self._joined_after(),
            local_owner=self._process if home else None,
            now=now,
            expires=now + self.expiry,
            capacity_for=self._capacity_for,
        )
        done = self._conns.on_loop(send) if home else store.BUSY  # one transaction, on the loop if it need not wait
        if isinstance(done, store.Busy):
            done = await self._conns.db(send)
        else:
            self._conns.wrote()
        copy, local, stored, full = done
        if stored:
            self._pump.nudge(home, stored)
        for channel in full:
            self._drops.seen(group, channel)
        return local, copy, True  # no pacing: as before, a recorded send never yields here

    async def _history_stored(
        self, group: str, since: int, epoch: str | None, limit: int | None, policy: GroupHistory
    ) -> HistoryPage:
        return await self._conns.db(
            history.page, group, since=since, epoch=epoch, limit=limit, policy=policy, now=time.time()
        )

    async def _members_stored(self, group: str) -> list[str]:
        members = await self._conns.db(store.group_members, group, self._joined_after())
        return [channel for channel, _ in members]

    async def _counts_stored(self) -> dict[str, int]:
        return await self._conns.db(store.group_counts, self._joined_after())
