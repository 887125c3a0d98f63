"""Per-channel queues in process memory: what every layer's local delivery is made of.

A queue is a deque of ``(expires_at, message, size)`` on :func:`time.monotonic`'s clock,
with at most one :class:`anyio.Event` that its receivers share. ``put`` checks capacity and
copies the message once; ``take`` pops from the left, skipping expired messages; nothing
ever scans across channels, so delivering to *n* members costs *n* appends.

A group send queues one copy, *shared* by its members' queues (an entry of four,
``(expires_at, message, size, copy)``, made once and appended to every member's queue),
and each member's own copy is made when it takes it, by the entry's ``copy``
(:func:`~._validation.copier`: ``dict.copy`` for a message of immutable values): a waiting
delivery then holds no dict and no tuple of its own.  A channel whose only waiting message
is that entry, and whose receiver does not wait in ``receive`` (an actor watching it),
keeps the entry without a queue at all (:class:`ChannelQueues`; the in-memory and SQLite
layers): a group send to 15,000 idle actors makes no object per member, where a tuple and
a deque each were 30,000 objects for the garbage collector to count, promote and scan
while they wait (in process, 15,000 members, 10 bursts: generation-0 collections 731 ->
364, generation-1 67 -> 33; the SQLite layer's local group send to 15,000: 76-88 -> 24-50
ms).

Queues belong to one event loop; an emptied queue with no waiter is dropped, so
channels that come and go leave nothing behind.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar, Final

import anyio

from ._errors import ChannelFull
from ._types import Message
from ._validation import copier, copy_message, copy_sized, message_size, require_capacity

__all__ = [
    "DEFAULT_CAPACITY_BYTES",
    "YIELD_EVERY",
    "CapacityRule",
    "ChannelGroups",
    "ChannelQueue",
    "ChannelQueues",
    "Entry",
    "Pacer",
]

DEFAULT_CAPACITY_BYTES: Final = 8 * 2**20
"""The bytes the messages waiting in one channel may hold, by default (``capacity_bytes``)."""

YIELD_EVERY: Final = 32
"""Calls that finished without waiting between two yields to the event loop (:class:`Pacer`)."""


class Pacer:
    """Says when a layer call that finished without waiting should still yield to the loop.

    A ``send`` to a local queue awaits nothing, so a loop of sends would starve every
    other task.  A layer counts such calls and, once every :data:`YIELD_EVERY`, yields
    with ``anyio.lowlevel.cancel_shielded_checkpoint()``: shielded, because the call
    has already happened and a cancellation must wait for the caller's next checkpoint
    instead of hiding that.
    """

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count = 0

    def due(self) -> bool:
        """Count one call; True once every :data:`YIELD_EVERY` of them."""
        self._count += 1
        if self._count < YIELD_EVERY:
            return False
        self._count = 0
        return True


class ChannelGroups:
    """Each channel's groups: a channel in one group, the usual case, keeps the group's name
    alone, a set only from its second group (a one-element set costs 216 bytes, each
    connection of a process)."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[str, str | set[str]] = {}  # channel -> its group, or its groups

    def add(self, group: str, channel: str) -> None:
        """Record that *channel* joined *group*."""
        groups = self._groups.get(channel)
        if groups is None or groups == group:
            self._groups[channel] = group
        elif isinstance(groups, str):
            self._groups[channel] = {groups, group}
        else:
            groups.add(group)

    def discard(self, group: str, channel: str) -> None:
        """Record that *channel* left *group* (nothing happens if it was not in it)."""
        groups = self._groups.get(channel)
        if groups is None:
            return
        if isinstance(groups, str):
            if groups == group:
                del self._groups[channel]
            return
        groups.discard(group)
        if len(groups) == 1:  # back to one group: its name again
            self._groups[channel] = next(iter(groups))

    def drop(self, channel: str) -> Iterable[str]:
        """Forget *channel*; return the groups it was in."""
        groups = self._groups.pop(channel, ())
        return (groups,) if isinstance(groups, str) else groups

    def clear(self) -> None:
        """Forget every channel."""
        self._groups.clear()

    def pairs(self) -> list[tuple[str, str]]:
        """Every ``(group, channel)``."""
        return [
            (group, channel)
            for channel, groups in self._groups.items()
            for group in ((groups,) if isinstance(groups, str) else groups)
        ]


class CapacityRule:
    """Each channel's capacity: the first glob pattern of *channel_capacity* it matches, else *capacity*."""

    def __init__(self, capacity: int, channel_capacity: Mapping[str, int] | None = None) -> None:
        self.capacity = require_capacity("capacity", capacity)
        self.patterns = [
            (re.compile(fnmatch.translate(pattern)), require_capacity(f"channel_capacity[{pattern!r}]", size))
            for pattern, size in (channel_capacity or {}).items()
        ]
        self.smallest = min([self.capacity, *(size for _, size in self.patterns)])
        """The smallest capacity any channel can have."""

    def __call__(self, name: str) -> int:
        for pattern, size in self.patterns:
            if pattern.match(name):
                return size
        return self.capacity


Entry = tuple[float, Message, int] | tuple[float, Message, int, Callable[[Message], Message]]
"""A queued message: ``(expires at, message, its size)``, and if shared the function that
copies it for each taker after them."""


class ChannelQueue(deque[Entry]):
    """One channel's undelivered messages and the event its receivers wait on.

    The queue *is* its deque of :data:`Entry` (``(expires at, message, its size)``, and
    the copying function after them if the message is shared): one object, not a queue
    and a deque.  Emptied, it is dropped unless a receiver waits on it.
    """

    __slots__ = ("capacity", "size", "waiter")

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.waiter: anyio.Event | None = None
        self.capacity = capacity
        self.size = 0  # the message_size() of what it holds

    def __repr__(self) -> str:
        return f"<ChannelQueue messages={len(self)} size={self.size} capacity={self.capacity}>"

    @property
    def messages(self) -> ChannelQueue:
        """The queued entries, oldest first: the queue itself."""
        return self

    def over(self, capacity_bytes: float) -> bool:
        """Whether it holds as many messages, or as many bytes, as it may."""
        return len(self) >= self.capacity or self.size >= capacity_bytes


class ChannelQueues:
    """The queues of the channels one layer delivers to in this process.

    A channel with exactly one message waiting, and nobody waiting in ``receive``, keeps
    that message's entry alone, without a :class:`ChannelQueue` (rule: the common case of
    a watched channel, whose actor takes each message at its turn); a second message, or a
    receiver's event, makes the queue.  So a group send to *n* idle actors makes no object
    per member at all: each member's entry is the one shared entry of the send.
    """

    singles: ClassVar[bool] = True
    """Whether one waiting message may stand without its queue. Subclasses that follow
    every queue through :meth:`_appended` and :meth:`_taken` turn it off, or give a
    message that fills its channel alone its queue (``_add``), as the SQLite layer does."""

    def __init__(self, capacity_for: Callable[[str], int], expiry: float, capacity_bytes: int | None = None) -> None:
        self.capacity_for = capacity_for
        self.expiry = expiry
        self.capacity_bytes: float = math.inf if capacity_bytes is None else capacity_bytes
        self._queues: dict[str, ChannelQueue] = {}
        self._single: dict[str, Entry] = {}  # channels holding one message and no queue (see the class)
        self._watchers: dict[str, Callable[[], None]] = {}

    def __contains__(self, channel: str) -> bool:
        return channel in self._queues or channel in self._single

    def __len__(self) -> int:
        return len(self._queues) + len(self._single)

    def _queue(self, name: str) -> ChannelQueue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = ChannelQueue(self.capacity_for(name))
            single = self._single.pop(name, None)
            if single is not None:  # the message that stood alone is the queue's first
                queue.append(single)
                queue.size = single[2]
        return queue

    def entry(self, message: Message, now: float, size: int) -> Entry:
        """The entry of a group send's own copy *message*, queued as it is for every member (:meth:`put_group`)."""
        return (now + self.expiry, message, size, copier(message))

    def put(self, name: str, message: Message, now: float, size: int | None = None, *, shared: bool = False) -> None:
        """Queue a copy of a checked *message*; raise :class:`ChannelFull` at capacity.

        *size* is the message's :func:`message_size`, if the caller knows it already. With
        *shared*, *message* is already the layer's own copy, queued as it is for several
        channels: each taker gets its own copy then (a group send queues one
        :meth:`entry` for all, with :meth:`put_group`). A queue whose messages hold
        ``capacity_bytes`` or more takes no more; below that it takes one of any size, so
        a queue holds at most the bound plus one message.
        """
        queue = self._room(name, now)
        if shared:
            entry = self.entry(message, now, message_size(message) if size is None else size)
        elif size is None:  # copied only once there is room: a full channel costs no copy
            copy, size = copy_sized(message)
            entry = (now + self.expiry, copy, size)
        else:
            entry = (now + self.expiry, copy_message(message), size)
        self._add(name, queue, entry)

    def put_group(self, channels: Iterable[str], message: Message, now: float, size: int, *, shared: bool) -> list[str]:
        """Queue a group send's checked *message* (of :func:`message_size` *size*) for *channels*.

        With *shared*, *message* is the layer's own copy and one :meth:`entry` serves
        every queue; else each queue gets its copy (:meth:`put`). Returns the channels
        that were full (:class:`ChannelFull`): the caller counts them as drops.
        """
        full: list[str] = []
        if shared:
            entry = self.entry(message, now, size)
            room, add = self._room, self._add  # bound once: two calls per member
            for channel in channels:
                try:
                    add(channel, room(channel, now), entry)
                except ChannelFull:
                    full.append(channel)
            return full
        for channel in channels:
            try:
                self.put(channel, message, now, size)
            except ChannelFull:
                full.append(channel)
        return full

    def _room(self, name: str, now: float) -> ChannelQueue | None:
        """*name*'s queue once it has room for one more message (None: empty, and it may stay queueless)."""
        queue = self._queues.get(name)
        if queue is None:
            if self.singles and name not in self._single:
                return None
            queue = self._queue(name)
        limit = self.capacity_bytes
        if queue.over(limit):
            while queue and queue[0][0] <= now:
                queue.size -= queue.popleft()[2]
            if len(queue) >= queue.capacity:
                msg = f"channel {name!r} is full ({queue.capacity} undelivered messages)"
                raise ChannelFull(msg)
            if queue.size >= limit:
                msg = (
                    f"channel {name!r} is full: its {len(queue)} undelivered messages hold "
                    f"{queue.size:,} bytes, capacity_bytes is {limit:,.0f}"
                )
                raise ChannelFull(msg)
        return queue

    def _add(self, name: str, queue: ChannelQueue | None, entry: Entry) -> None:
        if queue is None:  # the only message, nobody in receive(): it stands alone
            self._single[name] = entry
            notify = self._watchers.get(name)
            if notify is not None:
                notify()
            return
        queue.append(entry)
        queue.size += entry[2]
        self._appended(name, queue)

    def _appended(self, name: str, queue: ChannelQueue) -> None:
        """A message joined *queue*: wake its receivers, and tell its watcher."""
        waiter = queue.waiter
        if waiter is not None:
            queue.waiter = None
            waiter.set()
        notify = self._watchers.get(name)
        if notify is not None:
            notify()

    def watch(self, name: str, notify: Callable[[], None]) -> int:
        """Call *notify* once for every message queued on *name* from now on.

        Returns how many messages the queue already holds, so the watcher can count them
        too; it then takes messages with :meth:`take` instead of waiting in ``receive``.
        """
        self._watchers[name] = notify
        queue = self._queues.get(name)
        if queue is None:
            return 1 if name in self._single else 0
        return len(queue)

    def take(self, name: str) -> Message | None:
        """Pop the oldest unexpired message of *name*'s queue, if any."""
        if self._single:
            single = self._single.pop(name, None)
            if single is not None:  # no queue: this was the only message
                if single[0] <= time.monotonic():
                    return None
                return single[3](single[1]) if len(single) == 4 else single[1]
        queue = self._queues.get(name)
        if queue is None:
            return None
        now = time.monotonic()
        while queue:
            entry = queue.popleft()
            queue.size -= entry[2]
            if entry[0] > now:
                self._taken(name, queue)
                if not queue and queue.waiter is None:
                    del self._queues[name]
                return entry[3](entry[1]) if len(entry) == 4 else entry[1]
        return None

    def _taken(self, name: str, queue: ChannelQueue) -> None:
        """A message left *queue* (subclasses track room here)."""

    def waiter(self, name: str) -> anyio.Event:
        """The event set when *name*'s queue gets a message (or is dropped)."""
        queue = self._queue(name)
        if queue.waiter is None:
            queue.waiter = anyio.Event()
        return queue.waiter

    def drop(self, name: str) -> None:
        """Drop *name*'s queue and its watcher (the channel was closed), waking its receivers."""
        self._watchers.pop(name, None)
        self._single.pop(name, None)
        queue = self._queues.pop(name, None)
        if queue is not None and queue.waiter is not None:
            queue.waiter.set()

    def wake_all(self) -> None:
        """Wake every receiver, keeping the messages."""
        for queue in self._queues.values():
            if queue.waiter is not None:
                queue.waiter.set()
                queue.waiter = None

    def clear(self) -> None:
        """Drop every queue, waking every receiver."""
        self.wake_all()
        self._queues.clear()
        self._single.clear()
