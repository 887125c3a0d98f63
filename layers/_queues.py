"""Per-channel queues in process memory: what every layer's local delivery is made of.

A queue is a deque of ``(expires_at, message, size)`` on :func:`time.monotonic`'s clock,
with at most one :class:`anyio.Event` that its receivers share. ``put`` checks capacity and
copies the message once; ``take`` pops from the left, skipping expired messages; nothing
ever scans across channels, so delivering to *n* members costs *n* appends.

A group send queues one copy, *shared* by its members' queues (an entry of four,
``(expires_at, message, size, True)``), and each member's own copy is made when it takes
it: a waiting delivery then holds no dict of its own, which at 15,000 members is 15,000
fewer objects for the garbage collector to promote and scan while they wait.

Queues belong to one event loop; an emptied queue with no waiter is dropped, so
channels that come and go leave nothing behind.
"""

from __future__ import annotations

import fnmatch
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final

import anyio

from ._errors import ChannelFull
from ._types import Message
from ._validation import copy_message, copy_sized, message_size, require_capacity

__all__ = ["DEFAULT_CAPACITY_BYTES", "YIELD_EVERY", "CapacityRule", "ChannelQueue", "ChannelQueues", "Pacer"]

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


class CapacityRule:
    """Each channel's capacity: the first glob pattern of *channel_capacity* it matches, else *capacity*."""

    def __init__(self, capacity: int, channel_capacity: Mapping[str, int] | None = None) -> None:
        self.capacity = require_capacity("capacity", capacity)
        self.patterns = [
            (re.compile(fnmatch.translate(pattern)), require_capacity(f"channel_capacity[{pattern!r}]", size))
            for pattern, size in (channel_capacity or {}).items()
        ]

    def __call__(self, name: str) -> int:
        for pattern, size in self.patterns:
            if pattern.match(name):
                return size
        return self.capacity


class ChannelQueue(deque[tuple[float, Message, int] | tuple[float, Message, int, bool]]):
    """One channel's undelivered messages and the event its receivers wait on.

    The queue *is* its deque of ``(expires at, message, its size)`` entries (``True``
    after them if the message is shared), ``messages`` naming it: a queue made for a
    delivery and dropped once it is taken is then one object, not a queue and a deque.
    At 15,000 members a group send makes 15,000 of them at once, each one an object
    the garbage collector counts towards its next collection and scans in it.
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
    """The queues of the channels one layer delivers to in this process."""

    def __init__(self, capacity_for: Callable[[str], int], expiry: float, capacity_bytes: int | None = None) -> None:
        self.capacity_for = capacity_for
        self.expiry = expiry
        self.capacity_bytes: float = math.inf if capacity_bytes is None else capacity_bytes
        self._queues: dict[str, ChannelQueue] = {}
        self._watchers: dict[str, Callable[[], None]] = {}

    def __contains__(self, channel: str) -> bool:
        return channel in self._queues

    def __len__(self) -> int:
        return len(self._queues)

    def _queue(self, name: str) -> ChannelQueue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = ChannelQueue(self.capacity_for(name))
        return queue

    def put(self, name: str, message: Message, now: float, size: int | None = None, *, shared: bool = False) -> None:
        """Queue a copy of a checked *message*; raise :class:`ChannelFull` at capacity.

        *size* is the message's :func:`message_size`, if the caller knows it already (a
        group send measures once for every member). With *shared*, *message* is already
        the layer's own copy, queued as it is for several channels: each taker gets its
        own copy then. A queue whose messages hold ``capacity_bytes`` or more takes no
        more; below that it takes one of any size, so a queue holds at most the bound plus
        one message.
        """
        queue = messages = self._queue(name)  # the queue is its deque
        limit = self.capacity_bytes
        if queue.over(limit):
            while messages and messages[0][0] <= now:
                queue.size -= messages.popleft()[2]
            if len(messages) >= queue.capacity:
                msg = f"channel {name!r} is full ({queue.capacity} undelivered messages)"
                raise ChannelFull(msg)
            if queue.size >= limit:
                msg = (
                    f"channel {name!r} is full: its {len(messages)} undelivered messages hold "
                    f"{queue.size:,} bytes, capacity_bytes is {limit:,.0f}"
                )
                raise ChannelFull(msg)
        if shared:
            if size is None:
                size = message_size(message)
            messages.append((now + self.expiry, message, size, True))
            queue.size += size
            self._appended(name, queue)
            return
        if size is None:  # copied only once it is taken: a full channel costs no copy
            copy, size = copy_sized(message)
        else:
            copy = copy_message(message)
        messages.append((now + self.expiry, copy, size))
        queue.size += size
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
        return 0 if queue is None else len(queue)

    def take(self, name: str) -> Message | None:
        """Pop the oldest unexpired message of *name*'s queue, if any."""
        queue = self._queues.get(name)
        if queue is None:
            return None
        messages = queue  # the queue is its deque
        now = time.monotonic()
        while messages:
            entry = messages.popleft()
            queue.size -= entry[2]
            if entry[0] > now:
                self._taken(name, queue)
                if not messages and queue.waiter is None:
                    del self._queues[name]
                return copy_message(entry[1]) if len(entry) == 4 else entry[1]
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
