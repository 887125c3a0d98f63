"""The in-memory half of :class:`~interlock.layers.RedisChannelLayer`: its own channels' queues.

Rules:

1. A queue takes messages from two sources: :meth:`ChannelQueues.put` (senders in this
   process, checked against the capacity: :class:`~interlock.layers.ChannelFull`) and
   :meth:`InboxQueues.deliver` (messages the pump took off this process's Redis inbox,
   which their senders already checked against the channel's in-flight count there).
2. A delivered message that finds its queue full waits *held*, in order, outside it; the
   receive that makes room moves the next held message in.  Held messages still count in
   Redis, so remote senders get :class:`~interlock.layers.ChannelFull` while they wait.
3. A ``group_send``'s copies reach the pump as one entry for all of this process's
   members (:meth:`InboxQueues.deliver_copy`): they were not counted in Redis, so each
   is checked against its queue here, and a full member misses it (a drop, counted by
   the caller), as with a local ``group_send``.
4. Every message that enters a queue from a ``send`` through the inbox (or expires, or
   is discarded) is added to :attr:`InboxQueues.settled`, which the pump's settler
   subtracts from the in-flight counts in Redis; :attr:`InboxQueues.on_settle` says
   there is some.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ._core import HomeQueues
from ._queues import ChannelQueue
from ._types import Message
from ._validation import message_size

__all__ = ["InboxQueues"]


class InboxQueues(HomeQueues):
    """The queues of this process's channels, fed by local senders and the inbox (see the rules)."""

    def __init__(
        self,
        capacity_for: Callable[[str], int],
        expiry: float,
        capacity_bytes: int | None,
        on_settle: Callable[[], None],
    ) -> None:
        super().__init__(capacity_for, expiry, capacity_bytes)
        self.on_settle = on_settle
        self.settled: dict[str, int] = {}
        self.live: set[str] = set()  # channels new_channel() made and close_channel() did not close
        self._held: dict[str, deque[tuple[float, Message]]] = {}

    def _settle(self, name: str, count: int = 1) -> None:
        first = not self.settled
        self.settled[name] = self.settled.get(name, 0) + count
        if first:
            self.on_settle()

    def deliver(self, name: str, expires: float, message: Message, size: int | None = None) -> None:
        """Queue a message from the inbox (*expires* in wall-clock seconds), or hold it if full.

        *size* is its :func:`message_size`, if known (one group entry measures once).
        """
        now = time.time()
        if expires <= now or not (name in self.live or name in self):
            self._settle(name)  # expired, or for a channel closed meanwhile: gone
            return
        held = self._held.get(name)
        queue = self._queue(name)
        if held or queue.over(self.capacity_bytes):
            self._held.setdefault(name, deque()).append((expires, message))
            return
        self._append(name, queue, expires, message, size)

    def deliver_copy(self, name: str, expires_at: float, message: Message, size: int) -> bool:
        """Queue a ``group_send``'s copy from the inbox; False if *name* is full (a drop).

        *expires_at* is on :func:`time.monotonic`'s clock (the caller converts once for
        every member).  Such copies never counted in Redis, so nothing is settled; a
        channel closed meanwhile is skipped (True).
        """
        queue = self._queues.get(name)
        if queue is None:
            if name not in self.live:
                return True
            queue = self._queue(name)
        if name in self._held:
            return False
        if queue.over(self.capacity_bytes):
            messages, now = queue.messages, time.monotonic()
            while messages and messages[0][0] <= now:
                queue.size -= messages.popleft()[2]
            if queue.over(self.capacity_bytes):
                return False
        queue.messages.append((expires_at, message, size))
        queue.size += size
        self._appended(name, queue)
        return True

    def _append(
        self, name: str, queue: ChannelQueue, expires: float, message: Message, size: int | None = None
    ) -> None:
        if size is None:
            size = message_size(message)
        queue.messages.append((expires - time.time() + time.monotonic(), message, size))
        queue.size += size
        self._settle(name)
        self._appended(name, queue)

    def _taken(self, name: str, queue: ChannelQueue) -> None:
        held = self._held.get(name)
        if not held:
            return
        now = time.time()
        while held and not queue.over(self.capacity_bytes):
            expires, message = held.popleft()
            if expires > now:
                self._append(name, queue, expires, message)
            else:
                self._settle(name)
        if not held:
            del self._held[name]

    def held(self, name: str) -> int:
        """How many delivered messages wait outside *name*'s full queue."""
        return len(self._held.get(name, ()))

    def made(self, name: str) -> None:
        """``new_channel()`` made *name*: the inbox delivers to it from now on."""
        self.live.add(name)

    def drop(self, name: str) -> None:
        """Drop *name*'s queue, held messages and watcher (the channel was closed)."""
        self.live.discard(name)
        held = self._held.pop(name, None)
        if held:
            self._settle(name, len(held))
        super().drop(name)

    def clear(self) -> None:
        """Drop every queue and held message, waking every receiver."""
        super().clear()
        self._held.clear()
        self.live.clear()
        self.settled.clear()
