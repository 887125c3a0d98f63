"""The layer core that the SQLite and Redis layers share: one facade over a store.

Rules:

1. **Routing is decided here, once.**  A call on the *home* thread (the event loop the
   layer started on) for one of this process's own channels is served from the
   in-memory queues (:class:`~._core.HomeQueues`), exactly as in
   :class:`~interlock.layers.InMemoryChannelLayer`; everything else (named channels,
   other processes' channels, calls from another thread where the store allows them)
   goes to the store.  ``group_send`` asks the store for the members and what it could
   not serve itself, and queues the local members' copies here (:func:`~._core.put_local`).
2. **The store is a small set of hooks.**  A subclass (:mod:`._sqlite`, :mod:`._redis`)
   starts and stops its store and implements, each as one method, what only it can do:
   ``_at_home`` and ``_ready`` (started, and on which thread), ``_send_stored``,
   ``_receive_stored``, ``_wait_local``, ``_close_stored``, ``_add_stored``,
   ``_discard_stored``, ``_group_send_stored``, ``_members_stored``, ``_counts_stored``,
   ``_drop_counts_stored``, ``_history_stored`` and ``_sync_watches``.  Its pump (the
   task that feeds the home queues from the store) lives in its own module.
3. **What a process must remember is kept here.**  Its channel names
   (:class:`~._core.ProcessNames`), the memberships its store re-asserts
   (:class:`~._core.OwnMemberships`), its drops not yet written
   (:class:`~._core.PendingDrops`), its drop hooks and its peer watches are reset
   together (:meth:`StoreLayer._reset`), on first start and in a forked child, which is
   a new process.
"""

from __future__ import annotations

import logging
import math
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar

import anyio
import anyio.lowlevel

from ._core import HomeQueues, OwnMemberships, PendingDrops, ProcessNames, owner_of, put_local
from ._drops import DropHook, Drops
from ._history import GroupHistory, HistoryPage, read_policy
from ._peers import StorePeers
from ._queues import CapacityRule, Pacer
from ._types import Message, StartsAndCloses
from ._validation import check_message, require_capacity, require_channel_name, require_group_name, require_positive

__all__ = ["StoreLayer", "check_history"]


def check_history(history: GroupHistory | None) -> GroupHistory | None:
    """*history* if it is a :class:`~interlock.layers.GroupHistory` or None; else a clear error."""
    if history is not None and not isinstance(history, GroupHistory):
        msg = f"history must be a GroupHistory or None, got {history!r}"
        raise TypeError(msg)
    return history


class StoreLayer(StartsAndCloses):
    """The facade a layer with a store shared by processes is made of (see the module's rules).

    Not used alone: :class:`~interlock.layers.SQLiteChannelLayer` and
    :class:`~interlock.layers.RedisChannelLayer` are its store adapters.
    """

    _kind: ClassVar[str]  # "sqlite", "redis": names its tasks and threads
    _logger: ClassVar[logging.Logger]
    _keeps_named: ClassVar[bool] = False  # whether named channels' memberships are re-asserted too
    _local: HomeQueues
    history: GroupHistory | None

    def _configure(
        self,
        *,
        capacity: int,
        expiry: float,
        group_expiry: float | None,
        channel_capacity: Mapping[str, int] | None,
        capacity_bytes: int | None,
        lease: float,
        grace: float,
    ) -> None:
        """Check and keep the parameters every store takes."""
        self._capacity_for = CapacityRule(capacity, channel_capacity)
        self.capacity = capacity
        self.capacity_bytes = None if capacity_bytes is None else require_capacity("capacity_bytes", capacity_bytes)
        self.expiry = require_positive("expiry", expiry)
        self.group_expiry = None if group_expiry is None else require_positive("group_expiry", group_expiry)
        self.lease = require_positive("lease", lease)
        self.grace = require_positive("grace", grace)

    def _begin(self) -> None:
        """Set the state of a layer that has not started, and forget it in a forked child (rule 3)."""
        self._generation = 0  # bumped by close(): receives of an older generation end
        self._reset()
        _layers.add(self)

    def _reset(self) -> None:
        """Set the state of a layer that has not started (also in a forked child)."""
        self._names = ProcessNames()
        self._process = self._names.process
        self._own = OwnMemberships()  # memberships its store writes again (rule 3)
        self._pending_drops = PendingDrops()  # own channels' drops, not yet in the store
        self._drops = Drops(self._logger)
        self._pacer = Pacer()  # the home thread's
        self._generation += 1
        old: StorePeers | None = getattr(self, "_peers", None)
        if old is not None:
            old.forget()  # a forked child: the parent's watchers are not here to be told
        self._peers = StorePeers(self._process, self._sync_watches, self._kind)
        self._reset_store()

    def _reset_store(self) -> None:
        """The store's part of :meth:`_reset`: its local queues (``_local``) and connections."""
        raise NotImplementedError

    def _after_fork(self) -> None:
        """In a forked child: a new process, which forgets its parent's store, lease and channels."""
        self._reset()

    # -- the store's hooks (rule 2) -------------------------------------------------------

    def _at_home(self) -> bool:
        """Whether the layer runs and the calling thread is its home (no await: the hot path)."""
        raise NotImplementedError

    async def _ready(self) -> bool:
        """Start if needed; return whether the calling thread owns the in-memory queues."""
        raise NotImplementedError

    async def _send_stored(self, channel: str, checked: Message, home: bool) -> None:
        """Send a checked message to a channel this thread's queues do not hold."""
        raise NotImplementedError

    async def _receive_stored(self, channel: str, home: bool) -> Message | None:
        """Receive from a channel this thread's queues do not hold; None: start over."""
        raise NotImplementedError

    async def _wait_local(self, event: anyio.Event, generation: int, channel: str) -> bool:
        """Wait on a local receiver's *event*; raise if the layer closed; False: start over."""
        raise NotImplementedError

    async def _close_stored(self, channel: str, home: bool) -> None:
        """Close *channel* in the store, and here (:meth:`_forget_channel`) in the store's order."""
        raise NotImplementedError

    async def _add_stored(self, group: str, channel: str, owner: str | None, now: float) -> None:
        """Write *channel*'s membership of *group*; *owner* is its process (None: named)."""
        raise NotImplementedError

    async def _discard_stored(self, group: str, channel: str) -> None:
        """Remove the membership from the store, and from :attr:`_own` in the store's order."""
        raise NotImplementedError

    async def _group_send_stored(self, group: str, checked: Message, home: bool) -> tuple[list[str], Message, bool]:
        """Deliver to the members the store serves; return the local members, their message, and
        whether the call waited (then it has yielded already)."""
        raise NotImplementedError

    async def _members_stored(self, group: str) -> Iterable[str]:
        """The channels in *group*."""
        raise NotImplementedError

    async def _counts_stored(self) -> dict[str, int]:
        """Every non-empty group with its member count."""
        raise NotImplementedError

    async def _drop_counts_stored(self) -> dict[str, int]:
        """Every process's drop counts (this one's written first)."""
        raise NotImplementedError

    async def _history_stored(
        self, group: str, since: int, epoch: str | None, limit: int | None, policy: GroupHistory
    ) -> HistoryPage:
        """A page of *group*'s kept messages."""
        raise NotImplementedError

    async def _sync_watches(self, add: list[tuple[str, str | None]], remove: list[str]) -> list[tuple[str, str]]:
        """Write and forget peer watches; return the gone ones (see :class:`~._peers.StorePeers`)."""
        raise NotImplementedError

    # -- what the store's code shares -----------------------------------------------------

    def _joined_after(self) -> float:
        return -math.inf if self.group_expiry is None else time.time() - self.group_expiry

    def _forget_channel(self, channel: str, local: bool) -> None:
        """*channel* was closed: drop its queue and drops (*local*: on the home thread), its
        memberships and its watchers."""
        if local:
            self._local.drop(channel)
            self._drops.forget(channel)
        self._own.drop(channel)
        self._pending_drops.discard(channel)
        self._peers.closed(channel)  # this process's watchers of it, at once

    async def _write_drops(self, write: Callable[[str, dict[str, int]], Awaitable[object]]) -> None:
        """Write this process's pending drops with ``write(process, counts)``; kept if it fails."""
        counts = self._pending_drops.take()
        if not counts:
            return
        try:
            await write(self._process, counts)
        except BaseException:
            self._pending_drops.put_back(counts)
            raise

    def _forget_all(self, home: bool) -> None:
        """The layer closed or was flushed: forget what this process remembered of it."""
        if home:
            self._local.clear()
            self._drops.clear()
        self._own.clear()
        self._pending_drops.take()
        self._peers.stop()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Reach the store, register this process and start its lease (done lazily otherwise)."""
        await self._ready()

    # -- channels --------------------------------------------------------------------------

    async def send(self, channel: str, message: Mapping[str, Any], /) -> None:
        """Queue a copy of *message* on *channel*: in memory if it is ours, else in the store."""
        channel = require_channel_name(channel)
        checked = check_message(message)
        home = self._at_home() or await self._ready()
        if home and self._names.is_mine(channel):
            self._local.put(channel, checked, time.monotonic())
            if self._pacer.due():
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        await self._send_stored(channel, checked, home)

    async def receive(self, channel: str, /) -> Message:
        """Wait for the next unexpired message on *channel*."""
        channel = require_channel_name(channel)
        while True:
            home = self._at_home() or await self._ready()
            if not (home and self._names.is_mine(channel)):
                message = await self._receive_stored(channel, home)
            else:
                message = self._local.take(channel)
                if message is None:
                    message = await self._receive_local(channel)
            if message is not None:
                return message

    async def _receive_local(self, channel: str) -> Message | None:
        generation = self._generation
        local = self._local
        while True:
            message = local.take(channel)
            if message is not None:
                return message
            if not await self._wait_local(local.waiter(channel), generation, channel):
                return None  # the home loop ended: start over

    async def new_channel(self, prefix: str = "specific", /) -> str:
        """Return a new channel name owned by this process, ``PREFIX.PROCESS!TOKEN``."""
        name = self._names.new_name(prefix)
        await self._ready()
        self._local.made(name)
        self._peers.made(name)
        return name

    def watch_channel(
        self, channel: str, notify: Callable[[], None], /, *, on_drop: DropHook | None = None
    ) -> int | None:
        """Feed this process's own *channel* to its owner without a receiving task.

        Returns None (receive instead) unless the layer runs and the calling thread owns
        its in-memory queues (its home event loop) and *channel* is this process's;
        otherwise as :meth:`InMemoryChannelLayer.watch_channel`: messages from this
        process and those its pump takes from the store alike.  *on_drop* hears of drops
        by this process's ``group_send`` at once, and of other processes' once the pump
        hears of them from the store.
        """
        channel = require_channel_name(channel)
        if not (self._at_home() and self._names.is_mine(channel)):
            return None
        self._drops.hook(channel, on_drop)
        waiting = self._local.watch(channel, notify)
        self._receiver_came()
        return waiting

    def _receiver_came(self) -> None:
        """A watcher now waits on the home queues (a pump that sleeps while nobody waits wakes)."""

    def take_message(self, channel: str, /) -> Message | None:
        """The next unexpired message of a watched channel, or None: never waits."""
        return self._local.take(channel)

    def watch_peer(self, channel: str, on_gone: Callable[[str, str], None], /) -> Callable[[], None]:
        """Call ``on_gone(channel, reason)`` once when *channel* is gone, whichever process
        owns it: closed (``"closed"``), a channel of this process it did not make or closed
        already (``"unknown"``, at once), or one whose process was pruned after its lease
        and grace ended (``"lease"``). See :mod:`._peers`; call it on the layer's
        home event loop (the one the layer started on)."""
        return self._peers.watch(require_channel_name(channel), on_gone)

    async def close_channel(self, channel: str, /) -> None:
        """Drop *channel*'s queued messages and remove it from all its groups."""
        channel = require_channel_name(channel)
        home = await self._ready()
        await self._close_stored(channel, home)

    # -- groups ----------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str, /) -> None:
        """Add *channel* to *group* in the store, or renew its membership."""
        group = require_group_name(group)
        channel = require_channel_name(channel)
        await self._ready()
        owner = owner_of(channel)
        await self._add_stored(group, channel, owner, time.time())
        if owner == self._process or (owner is None and self._keeps_named):
            self._own.add(group, channel)  # what this process writes again if the store loses it

    async def group_discard(self, group: str, channel: str, /) -> None:
        """Remove *channel* from *group*; no error if it was not there."""
        group = require_group_name(group)
        channel = require_channel_name(channel)
        await self._ready()
        await self._discard_stored(group, channel)

    async def group_send(self, group: str, message: Mapping[str, Any], /) -> None:
        """Send a copy of *message* to every member; full members miss it (counted, logged)."""
        group = require_group_name(group)
        checked = check_message(message)
        home = self._at_home() or await self._ready()
        local, checked, waited = await self._group_send_stored(group, checked, home)
        if local:
            put_local(self._local, self._drops, self._pending_drops, group, local, checked, time.monotonic())
        if not waited and self._pacer.due():
            await anyio.lowlevel.cancel_shielded_checkpoint()

    async def group_members(self, group: str, /) -> frozenset[str]:
        """Return the channels currently in *group*, whichever process added them."""
        group = require_group_name(group)
        await self._ready()
        return frozenset(await self._members_stored(group))

    async def groups(self) -> dict[str, int]:
        """Return every non-empty group with its member count."""
        await self._ready()
        return await self._counts_stored()

    async def drop_counts(self) -> dict[str, int]:
        """Messages ``group_send`` dropped for each channel because it was full, in every process.

        Read from the store (after writing this process's own drops there): what each
        channel lost since it was first used, until it is closed or its process pruned.
        """
        await self._ready()
        return await self._drop_counts_stored()

    async def group_history(
        self, group: str, /, *, since: int = 0, epoch: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """The kept messages of *group* after offset *since* of *epoch*, from the store (see
        :class:`~interlock.layers.HistoryLayer`)."""
        policy = read_policy(self.history, group, since, epoch, limit)
        await self._ready()
        return await self._history_stored(group, since, epoch, limit, policy)


_layers: weakref.WeakSet[StoreLayer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for layer in list(_layers):
        layer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
