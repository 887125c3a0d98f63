"""An actor's mailbox: one ordered queue for client events and layer messages.

Rule 1. Items leave in the order they arrived, one at a time.
Rule 2. Producers wait while the mailbox holds ``limit`` items (backpressure reaches
        the client's socket and the layer's channel capacity, not memory).
Rule 3. ``get`` on a non-empty mailbox does not yield to the event loop: a busy actor
        drains its backlog without a scheduler round trip per item.
Rule 4. ``get`` can wait with a deadline, so the consumer itself serves its timers:
        no clock task per actor.

A list and two waiters, so it costs less than an anyio memory stream on the hot path and
works on asyncio and trio alike.  Every connection's actor has one, most of the time
idle, so its resting cost counts: a list rather than a deque (an empty list costs 56
bytes, an empty deque 600, and ``pop(0)`` on a few dozen items costs less than the
handler that follows it), and on asyncio the consumer waits on a bare future (about 100
bytes) rather than an :class:`anyio.Event` (an ``asyncio.Event`` with its own deque and a
future per wait, 1.5 KiB).  Producers, who wait only when the mailbox is full, and the
consumer on trio use :class:`anyio.Event`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Generic, TypeVar

import anyio

from ._taskset import running_asyncio_loop

__all__ = ["Mailbox"]

T = TypeVar("T")


class Mailbox(Generic[T]):
    """A bounded FIFO with async ``put``/``get`` for one consumer, on the event loop that made it."""

    __slots__ = ("_items", "_limit", "_loop", "_not_empty", "_not_full")

    def __init__(self, limit: int = 64) -> None:
        self._items: list[T] = []
        self._limit = limit
        self._loop = running_asyncio_loop()
        self._not_empty: asyncio.Future[None] | anyio.Event | None = None
        self._not_full: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Append *item*, waiting while the mailbox is full."""
        while len(self._items) >= self._limit:
            if self._not_full is None:
                self._not_full = anyio.Event()
            await self._not_full.wait()
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Append *item* now, past the limit: for items another bound already limits."""
        self._items.append(item)
        waiter = self._not_empty
        if waiter is not None:
            self._not_empty = None
            if isinstance(waiter, anyio.Event):
                waiter.set()
            elif not waiter.done():
                waiter.set_result(None)

    async def get(self, deadline: float = math.inf) -> T | None:
        """Pop the oldest item, waiting while the mailbox is empty.

        Returns None if *deadline* (on ``anyio.current_time()``'s clock) passes first.
        """
        while not self._items:
            waiter = self._not_empty
            if waiter is None:
                waiter = self._not_empty = anyio.Event() if self._loop is None else self._loop.create_future()
            wait = waiter.wait() if isinstance(waiter, anyio.Event) else waiter
            try:
                if deadline == math.inf:
                    await wait
                else:
                    with anyio.CancelScope(deadline=deadline) as scope:
                        await wait
                    if scope.cancelled_caught:
                        return None
            finally:
                if self._not_empty is waiter and not isinstance(waiter, anyio.Event) and waiter.cancelled():
                    self._not_empty = None  # a cancelled wait cancels its future: the next one needs a new one
        item = self._items.pop(0)
        waiter = self._not_full
        if waiter is not None:
            self._not_full = None
            waiter.set()
        return item
