"""Watching peers: who is told when a channel is gone.

A layer that implements :class:`~interlock.layers.PeerWatchingLayer` keeps the watches
made through it in a :class:`PeerWatches`, and calls :meth:`PeerWatches.gone` when it
learns that a channel is gone — closed with ``close_channel()`` (reason ``"closed"``),
never made or already gone when watched (``"unknown"``), or owned by a process whose
lease ended (``"lease"``): every watcher of that channel is told once, then forgotten.

The layers with a store shared by processes (SQLite, Redis) use :class:`StorePeers`:

1. The store keeps one record per watched channel and watching process (channel,
   watcher, owner). The owner's ``close_channel`` (and its layer's ``close()``) marks the
   records closed, and remembers a process's closed channel for a while, so a watch that
   begins after the close is told too; an owner the store no longer registers (pruned
   after its lease and grace ended) makes its channels' watches ``"lease"``.
2. A channel of this process is gone when it is closed here: its watchers are told at
   once. A ``!`` channel of this process it did not make, or closed already, is
   ``"unknown"`` at once.
3. A channel of another process, or a named one, is watched through the store: a poller
   task on the layer's home loop writes new watches, forgets cancelled ones and collects
   the gone ones every :data:`POLL_INTERVAL` seconds while this process watches any; so a
   remote close is told within that interval, a dead process within its lease + grace +
   that interval. A dead watcher's records go when it is pruned.
4. A watch cancelled before the poller wrote it is never written; one made again before
   the poller forgot it keeps its record.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import anyio

from ._background import spawn_system_task
from ._core import owner_of

__all__ = ["GONE_REASONS", "POLL_INTERVAL", "GoneReason", "OnGone", "PeerWatches", "StorePeers", "Sync", "nothing"]

logger = logging.getLogger("interlock.layers")

GoneReason = Literal["closed", "unknown", "lease"]
GONE_REASONS: Final = ("closed", "unknown", "lease")

OnGone = Callable[[str, str], None]
"""``on_gone(channel, reason)``: called once, on the layer's event loop thread."""

Sync = Callable[[list[tuple[str, "str | None"]], list[str]], Awaitable[list[tuple[str, str]]]]
"""``sync(add, remove)``: write the new watches ``(channel, owner)``, forget *remove*, and
return (and forget) this process's gone ones as ``(channel, reason)``."""

POLL_INTERVAL: Final = 0.5
"""Seconds between two looks at the store while channels of other processes are watched."""

_ids = itertools.count()


class PeerWatches:
    """The watchers of each watched channel."""

    __slots__ = ("_watchers",)

    def __init__(self) -> None:
        self._watchers: dict[str, dict[int, OnGone]] = {}

    def __len__(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    def add(self, channel: str, on_gone: OnGone) -> Callable[[], None]:
        """Watch *channel*; return the function that cancels this watch (idempotent)."""
        key = next(_ids)
        self._watchers.setdefault(channel, {})[key] = on_gone

        def cancel() -> None:
            watchers = self._watchers.get(channel)
            if watchers is not None:
                watchers.pop(key, None)
                if not watchers:
                    del self._watchers[channel]

        return cancel

    def watched(self) -> list[str]:
        """The channels somebody watches."""
        return list(self._watchers)

    def gone(self, channel: str, reason: GoneReason) -> None:
        """*channel* is gone: tell each of its watchers once, and forget them."""
        watchers = self._watchers.pop(channel, None)
        if not watchers:
            return
        for on_gone in watchers.values():
            try:
                on_gone(channel, reason)
            except Exception:  # one watcher's bug must not keep the others uninformed
                logger.exception("a watcher of channel %r failed when told it is gone", channel)

    def all_gone(self, reason: GoneReason) -> None:
        """Every watched channel is gone (the layer was flushed or closed)."""
        for channel in list(self._watchers):
            self.gone(channel, reason)


class StorePeers:
    """The watches of a layer with a shared store (SQLite, Redis): its own live channels,
    its watchers, and the poller that syncs watches of other processes' channels (rules 2-4)."""

    def __init__(self, process: str, sync: Sync, name: str, interval: float = POLL_INTERVAL) -> None:
        self.process = process
        self._sync = sync
        self._name = name
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
        """This process closed *channel*: its local watchers are told (rule 2)."""
        self.live.discard(channel)
        self.watches.gone(channel, "closed")

    def stop(self) -> None:
        """The layer closed or was flushed: every watch is gone, the poller stops."""
        watches = self.watches
        self.forget()
        watches.all_gone("closed")

    def remote(self) -> dict[str, str | None]:
        """The channels watched through the store, with their owners (None: named)."""
        return dict(self._remote)

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
        """Watch *channel* (rules 2 and 3); return the cancel function."""
        owner = owner_of(channel)
        if owner == self.process:
            if channel not in self.live:
                on_gone(channel, "unknown")
                return nothing
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
        spawn_system_task(lambda: self._poll(generation), f"interlock-{self._name}-peers-{self.process}")

    async def _poll(self, generation: int) -> None:
        try:
            while self._generation == generation and (self._remote or self._remove):
                add, self._add = self._add, []
                remove, self._remove = self._remove, []
                try:
                    gone = await self._sync(add, remove)
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


def nothing() -> None:
    """The cancel function of a watch that ended at once."""
