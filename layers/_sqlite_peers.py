"""Peer watching on the SQLite layer: who is told when a channel is gone.

Rules:

1. A channel of this process is gone when it is closed here (``close_channel``, the
   layer's ``close()`` or ``flush()``): its local watchers are told at once. A ``!``
   channel of this process that it did not make, or closed already, is ``"unknown"``
   at once.
2. A channel of another process, or a named one, is watched through the file: the
   watching process writes one row per watched channel (``watches``: channel, watcher,
   owner). The owner's ``close_channel`` (and its layer's ``close()``) marks the rows
   ``gone = 'closed'``; an owner whose process row is gone — pruned after its lease and
   grace ended — makes the watch gone with reason ``"lease"``.
3. A poller task on the layer's home loop writes new watches, forgets cancelled ones
   and collects the gone ones every :data:`POLL_INTERVAL` seconds, while this process
   watches any channel through the file; so a remote close is told within that interval,
   a dead process within its lease + grace + that interval. A dead watcher's rows go
   with its process row when it is pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio

from . import _sqlite_store as store
from ._background import spawn_system_task
from ._core import owner_of
from ._peers import OnGone, PeerWatches

__all__ = ["POLL_INTERVAL", "SQLitePeers"]

logger = logging.getLogger("interlock.layers.sqlite")

POLL_INTERVAL: Final = 0.5
"""Seconds between two looks at the file while channels of other processes are watched."""


class SQLitePeers:
    """One SQLite layer instance's watches, its live channels, and the poller."""

    def __init__(self, process: str, db: Callable[..., Awaitable[Any]], interval: float = POLL_INTERVAL) -> None:
        self.process = process
        self._db = db
        self.interval = interval
        self.live: set[str] = set()  # this process's channels made and not closed
        self.watches = PeerWatches()
        self._remote: dict[str, str | None] = {}  # watched through the file: channel -> owner
        self._add: list[tuple[str, str | None]] = []
        self._remove: list[str] = []
        self._polling = False
        self._generation = 0

    def made(self, channel: str) -> None:
        self.live.add(channel)

    def closed(self, channel: str) -> None:
        """This process closed *channel*: its local watchers are told (rule 1)."""
        self.live.discard(channel)
        self.watches.gone(channel, "closed")

    def stop(self) -> None:
        """The layer closed or was flushed: every watch is gone, the poller stops."""
        watches = self.watches
        self.forget()
        watches.all_gone("closed")

    def forget(self) -> None:
        """In a forked child: drop the parent's watches without telling anyone."""
        self._generation += 1
        self.live.clear()
        self._remote.clear()
        self._add.clear()
        self._remove.clear()
        self._polling = False
        self.watches = PeerWatches()

    def watch(self, channel: str, on_gone: OnGone) -> Callable[[], None]:
        """Watch *channel* (rules 1 and 2); return the cancel function."""
        owner = owner_of(channel)
        if owner == self.process:
            if channel not in self.live:
                on_gone(channel, "unknown")
                return _nothing
            return self.watches.add(channel, on_gone)
        cancel = self.watches.add(channel, on_gone)
        if channel not in self._remote:
            self._remote[channel] = owner
            if channel in self._remove:  # its row is still in the file: keep it
                self._remove.remove(channel)
            else:
                self._add.append((channel, owner))
            self._start_polling()

        def cancel_remote() -> None:
            cancel()
            if channel not in self.watches.watched() and self._remote.pop(channel, 0) != 0:
                if (channel, owner) in self._add:  # never written: nothing to forget
                    self._add.remove((channel, owner))
                else:
                    self._remove.append(channel)

        return cancel_remote

    def _start_polling(self) -> None:
        if self._polling:
            return
        self._polling = True
        generation = self._generation
        spawn_system_task(lambda: self._poll(generation), f"interlock-sqlite-peers-{self.process}")

    async def _poll(self, generation: int) -> None:
        try:
            while self._generation == generation and (self._remote or self._remove):
                add, self._add = self._add, []
                remove, self._remove = self._remove, []
                try:
                    gone = await self._db(store.sync_watches, self.process, add, remove)
                except Exception as exc:  # noqa: BLE001 - the file is busy or closing: next round
                    if self._generation != generation:
                        return
                    logger.debug("watches of %s not synced (%r): retried", self.process, exc)
                    self._add[:0] = add
                    self._remove[:0] = remove
                    gone = []
                for channel, reason in gone:
                    if self._remote.pop(channel, None) is not None or channel in self.watches.watched():
                        self.watches.gone(channel, "lease" if reason == "lease" else "closed")
                await anyio.sleep(self.interval)
        finally:
            if self._generation == generation:
                self._polling = False
                if self._remote or self._remove:  # watched again while the last round ended
                    self._start_polling()


def _nothing() -> None:
    """The cancel function of a watch that ended at once."""
