"""The in-memory half of :class:`~interlock.layers.SQLiteChannelLayer`.

The queues of this process's own channels, and the events its receivers wait on, owned by
the layer's *home* event loop thread: nothing else reads or writes them.  A queue works as
in :class:`~interlock.layers.InMemoryChannelLayer`: a deque of ``(expires_at, message)``
with at most one :class:`anyio.Event` its receivers share.

Rules:

1. A queue takes messages from two sources: :meth:`LocalQueues.put` (senders in this
   process, checked against the capacity: :class:`~interlock.layers.ChannelFull`) and
   :meth:`LocalQueues.deliver` (messages the pump claimed from the file, which
   :meth:`LocalQueues.room` limited to what fits when it claimed them).
2. A queue at capacity is *full*; the first receive that makes room in it sets the
   ``kick`` event, since rows may be waiting in the file for that room.
3. Receivers of channels that live in the file (named channels, other processes') wait on
   one event per channel (:class:`~._core.HomeQueues`), set whenever the file may hold
   something new for them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Final

from ._core import HomeQueues
from ._queues import ChannelQueue, Entry
from ._types import Message
from ._validation import message_size

__all__ = ["LocalQueues", "Room"]


class Room:
    """How many more messages each local queue takes, as seen when the pump asked."""

    __slots__ = ("capacity_bytes", "capacity_for", "lengths", "sizes")

    def __init__(
        self,
        capacity_for: Callable[[str], int],
        lengths: dict[str, int],
        sizes: dict[str, int] | None = None,
        capacity_bytes: float = math.inf,
    ) -> None:
        self.capacity_for = capacity_for
        self.lengths: Final = lengths
        self.sizes: Final = sizes or {}
        self.capacity_bytes = capacity_bytes

    def __call__(self, channel: str) -> int:
        """Free places in *channel*'s queue (safe to call from a worker thread)."""
        return self.capacity_for(channel) - self.lengths.get(channel, 0)

    def bytes_left(self, channel: str) -> float:
        """Bytes *channel*'s queue takes before its byte bound (safe to call from a worker thread)."""
        return self.capacity_bytes - self.sizes.get(channel, 0)

    def full(self) -> list[str]:
        """The channels with no free place."""
        return [channel for channel in self.lengths if self(channel) <= 0]


class LocalQueues(HomeQueues):
    """The queues and waiters of the home event loop (see the module's rules)."""

    def __init__(
        self,
        capacity_for: Callable[[str], int],
        expiry: float,
        kick: threading.Event,
        capacity_bytes: int | None = None,
    ) -> None:
        super().__init__(capacity_for, expiry, capacity_bytes)
        self.kick = kick
        self.waiting = 0
        self._full: set[str] = set()
        # Whether a channel's capacity may be 1 (then one message fills it): asked per message only then.
        self._tiny = getattr(capacity_for, "smallest", 1) <= 1

    singles = True  # a lone message stands without its queue (see ChannelQueues) unless it fills it

    def _add(self, name: str, queue: ChannelQueue | None, entry: Entry) -> None:
        if queue is None and (entry[2] >= self.capacity_bytes or (self._tiny and self.capacity_for(name) <= 1)):
            queue = self._queue(name)  # this one message fills the channel: its queue tracks that (_full)
        super()._add(name, queue, entry)

    def _appended(self, name: str, queue: ChannelQueue) -> None:
        if queue.over(self.capacity_bytes):
            self._full.add(name)
        super()._appended(name, queue)

    def _taken(self, name: str, queue: ChannelQueue) -> None:
        if name in self._full and not queue.over(self.capacity_bytes):
            self._full.discard(name)
            self.kick.set()  # rows may be waiting in the file for this room

    def room(self) -> Room:
        """A snapshot of the free places, for the pump's claim."""
        # A queue at its byte bound takes nothing more from the file, whatever its length.
        limit = self.capacity_bytes
        lengths = {
            name: queue.capacity if queue.size >= limit else len(queue.messages)
            for name, queue in self._queues.items()
            if queue.messages
        }
        sizes = {name: queue.size for name, queue in self._queues.items() if queue.size}
        for name, entry in self._single.items():  # one message each, never a full channel (_add)
            lengths[name] = 1
            if entry[2]:
                sizes[name] = entry[2]
        return Room(self.capacity_for, lengths, sizes, limit)

    def deliver(self, rows: list[tuple[str, float, Message]]) -> None:
        """Append messages claimed from the file (``expires`` in wall-clock seconds)."""
        offset = time.monotonic() - time.time()
        for name, expires, message in rows:
            queue = self._queue(name)
            size = message_size(message)
            queue.messages.append((expires + offset, message, size))
            queue.size += size
            self._appended(name, queue)

    def watch(self, name: str, notify: Callable[[], None]) -> int:
        """As :meth:`ChannelQueues.watch`; a watched channel counts as a waiting receiver."""
        if name not in self._watchers:
            self.waiting += 1  # the pump keeps claiming its messages from the file
        return super().watch(name, notify)

    def forget_waiters(self) -> None:
        """Drop the events and watchers of an event loop that has ended, without setting them."""
        super().forget_waiters()
        self.waiting = 0

    def drop(self, name: str) -> None:
        """Drop *name*'s queue and watcher (the channel was closed); its receivers wait on afresh."""
        self._full.discard(name)
        if name in self._watchers:
            self.waiting -= 1
        super().drop(name)

    def clear(self) -> None:
        """Drop every queue, waking every receiver."""
        super().clear()
        self._full.clear()
