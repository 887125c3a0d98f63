"""An in-process channel layer: channels are deques, groups are dicts.

Theory of operation: each channel holds a deque of ``(expires_at, message)`` and
at most one :class:`anyio.Event` that receivers wait on.  ``send`` checks and
copies the message once, appends it and wakes the waiters; ``receive`` pops from
the left, skipping expired messages.  Nothing is ever scanned across channels,
so ``group_send`` to *n* members costs *n* appends and draining them *n* pops.

A reverse index (channel → groups) lets :meth:`close_channel` drop a stopped
actor's memberships without scanning every group.  A channel in one group, the common
case, maps to that group's name itself, not to a set of one: at 15,000 connections a
set each would cost 3.6 MiB (216 bytes a set).

An instance belongs to one event loop at a time (asyncio or trio); sync code
reaches it through the actor's thread bridge.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import final

import anyio.lowlevel

from ._drops import DropHook, Drops
from ._errors import InvalidChannelName
from ._history import GroupHistory, HistoryPage, MemoryHistory, read_policy, wall_clock
from ._peers import OnGone, PeerWatches, nothing
from ._queues import DEFAULT_CAPACITY_BYTES, CapacityRule, ChannelGroups, ChannelQueues, Pacer
from ._types import Message, StartsAndCloses
from ._validation import (
    check_message,
    copy_message,
    message_size,
    require_capacity,
    require_channel_name,
    require_group_name,
    require_positive,
)

__all__ = ["InMemoryChannelLayer"]

logger = logging.getLogger("interlock.layers")


@final
class InMemoryChannelLayer(StartsAndCloses):
    """A channel layer that lives in this process's memory.

    :param capacity: undelivered messages a channel may hold before ``send`` raises
        :class:`~interlock.layers.ChannelFull`.
    :param expiry: seconds an undelivered message is kept.
    :param group_expiry: seconds a group membership lasts unless renewed by ``group_add``.
    :param channel_capacity: per-channel capacities, keyed by glob patterns
        (``{"http.*": 500}``); the first matching pattern wins.
    :param capacity_bytes: bytes (text and bytes values, see ``message_size``) the
        messages waiting in a channel may hold before more are refused
        like at ``capacity`` (8 MiB by default; None for no bound). It bounds what a client
        that stopped reading holds, however large the messages sent to it.
    :param history: the groups whose messages are kept, numbered, for members that come
        back (see :class:`~interlock.layers.GroupHistory`); None keeps none.
    """

    def __init__(
        self,
        *,
        capacity: int = 100,
        expiry: float = 60.0,
        group_expiry: float = 86400.0,
        channel_capacity: Mapping[str, int] | None = None,
        capacity_bytes: int | None = DEFAULT_CAPACITY_BYTES,
        history: GroupHistory | None = None,
    ) -> None:
        self.capacity = capacity
        self.capacity_bytes = None if capacity_bytes is None else require_capacity("capacity_bytes", capacity_bytes)
        self.expiry = require_positive("expiry", expiry)
        self.group_expiry = require_positive("group_expiry", group_expiry)
        self._queues = ChannelQueues(CapacityRule(capacity, channel_capacity), self.expiry, self.capacity_bytes)
        self._pacer = Pacer()
        self._live: set[str] = set()  # the new_channel() names not closed yet
        self._peers = PeerWatches()
        self._process = secrets.token_hex(6)
        self._groups: dict[str, dict[str, float]] = {}
        self._memberships = ChannelGroups()  # channel -> its groups
        self._drops = Drops(logger)
        if history is not None and not isinstance(history, GroupHistory):
            msg = f"history must be a GroupHistory or None, got {history!r}"
            raise TypeError(msg)
        self.history = history
        self._history = None if history is None else MemoryHistory(history)

    def __repr__(self) -> str:
        return (
            f"<InMemoryChannelLayer channels={len(self._queues)} groups={len(self._groups)} "
            f"capacity={self.capacity} expiry={self.expiry}>"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to start: present so every layer can be started the same way."""

    async def close(self) -> None:
        """Drop everything; the layer is usable again afterwards."""
        await self.flush()

    async def flush(self) -> None:
        """Drop every message, channel and group (their watchers are told: ``"closed"``)."""
        self._queues.clear()
        self._groups.clear()
        self._memberships.clear()
        self._drops.clear()
        self._live.clear()
        if self._history is not None:
            self._history.clear()
        self._peers.all_gone("closed")

    # -- channels --------------------------------------------------------------------------

    async def send(self, channel: str, message: Message, /) -> None:
        """Queue a copy of *message* on *channel*."""
        require_channel_name(channel)
        self._queues.put(channel, check_message(message), time.monotonic())
        if self._pacer.due():
            await anyio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self, channel: str, /) -> Message:
        """Wait for the next unexpired message on *channel*."""
        require_channel_name(channel)
        queues = self._queues
        while True:
            message = queues.take(channel)
            if message is not None:
                return message
            await queues.waiter(channel).wait()

    def watch_channel(
        self, channel: str, notify: Callable[[], None], /, *, on_drop: DropHook | None = None
    ) -> int | None:
        """Call *notify* once per message queued on *channel*; return how many wait already.

        This is how an actor's mailbox *is* its channel: the actor takes each message
        with :meth:`take_message` when it reaches that point in its mailbox, and no task
        waits in :meth:`receive` for it. Closing the channel ends the watch.  *on_drop*,
        if given, is called with a count whenever ``group_send`` drops messages for
        *channel* because it is full.
        """
        channel = require_channel_name(channel)
        self._drops.hook(channel, on_drop)
        return self._queues.watch(channel, notify)

    def take_message(self, channel: str, /) -> Message | None:
        """The next unexpired message on *channel*, or None: never waits."""
        return self._queues.take(channel)

    async def new_channel(self, prefix: str = "specific", /) -> str:
        """Return a new process-local channel name, ``PREFIX.PROCESS!TOKEN``."""
        if not isinstance(prefix, str) or "!" in prefix:
            msg = f"invalid channel prefix {prefix!r}: a prefix is a channel name without '!'"
            raise InvalidChannelName(msg)
        require_channel_name(prefix)
        channel = require_channel_name(f"{prefix}.{self._process}!{secrets.token_hex(8)}")
        self._live.add(channel)
        return channel

    async def close_channel(self, channel: str, /) -> None:
        """Drop *channel*'s queue and remove it from all its groups; its watchers are told."""
        require_channel_name(channel)
        self._live.discard(channel)
        self._peers.gone(channel, "closed")
        self._queues.drop(channel)
        self._drops.forget(channel)
        for group in self._memberships.drop(channel):
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    def watch_peer(self, channel: str, on_gone: OnGone, /) -> Callable[[], None]:
        """Call ``on_gone(channel, reason)`` once when *channel* is closed (see
        :class:`~interlock.layers.PeerWatchingLayer`). A ``!`` channel this layer did not
        make, or closed already, is ``"unknown"`` at once; a named channel is gone when
        ``close_channel()`` closes it."""
        channel = require_channel_name(channel)
        if "!" in channel and channel not in self._live:
            on_gone(channel, "unknown")
            return nothing
        return self._peers.add(channel, on_gone)

    # -- groups ----------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str, /) -> None:
        """Add *channel* to *group*, or renew its membership."""
        require_group_name(group)
        require_channel_name(channel)
        self._groups.setdefault(group, {})[channel] = time.monotonic()
        self._memberships.add(group, channel)

    async def group_discard(self, group: str, channel: str, /) -> None:
        """Remove *channel* from *group*; no error if it was not there."""
        require_group_name(group)
        require_channel_name(channel)
        self._discard(group, channel)

    def _discard(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[group]
        self._memberships.discard(group, channel)

    def _live_members(self, group: str, now: float) -> list[str]:
        members = self._groups.get(group)
        if not members:
            return []
        oldest = now - self.group_expiry
        expired = [channel for channel, joined in members.items() if joined <= oldest]
        for channel in expired:
            self._discard(group, channel)
        return list(members)

    async def drop_counts(self) -> dict[str, int]:
        """Messages ``group_send`` dropped for each channel because it was full (open channels only)."""
        return dict(self._drops.counts)

    async def group_send(self, group: str, message: Message, /) -> None:
        """Send a copy of *message* to every member; full members miss it (counted, logged)."""
        require_group_name(group)
        checked = check_message(message)
        history = self._history
        kept = False
        if history is not None and history.policy.keeps(group):  # queued shared: each taker copies the kept one
            checked, kept = history.record(group, checked, wall_clock()), True
        now = time.monotonic()
        members = self._live_members(group, now)
        many = kept or len(members) > 1
        shared = checked if kept or not many else copy_message(checked)  # one copy for all, each taker its own
        # Several members share one entry: no object per member (see ._queues).
        for channel in self._queues.put_group(members, shared, now, message_size(shared), shared=many):
            self._drops.seen(group, channel)
            self._drops.count(channel)
        if self._pacer.due():
            await anyio.lowlevel.cancel_shielded_checkpoint()

    async def group_members(self, group: str, /) -> frozenset[str]:
        """Return the channels currently in *group*."""
        require_group_name(group)
        return frozenset(self._live_members(group, time.monotonic()))

    async def groups(self) -> dict[str, int]:
        """Return every non-empty group with its member count."""
        now = time.monotonic()
        counts = {group: len(self._live_members(group, now)) for group in list(self._groups)}
        return {group: count for group, count in counts.items() if count}

    async def group_history(
        self, group: str, /, *, since: int = 0, epoch: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """The kept messages of *group* after offset *since* of *epoch* (see
        :class:`~interlock.layers.HistoryLayer`)."""
        read_policy(self.history, group, since, epoch, limit)
        assert self._history is not None  # a policy means a store
        return self._history.page(group, since, epoch, limit, wall_clock())
