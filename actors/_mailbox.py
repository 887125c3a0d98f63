"""An actor's mailbox: one ordered queue for client events and layer messages.

Rule 1. Items leave in the order they arrived, one at a time.
Rule 2. Producers wait while the mailbox holds ``limit`` items (backpressure reaches
        the client's socket and the layer's channel capacity, not memory); a producer
        without a task (the client pump on asyncio, ``._pump``) is called back instead
        (:meth:`Mailbox.call_on_room`).
Rule 3. ``get`` on a non-empty mailbox does not yield to the event loop: a busy actor
        drains its backlog without a scheduler round trip per item.
Rule 4. ``get`` can wait with a deadline, so the consumer itself serves its timers:
        no clock task per actor (on asyncio one timer handle on the loop while waiting,
        on trio a cancel scope).
Rule 5. A producer that waited gets in after the consumer's next take, even if
        ``put_nowait`` filled the room again: a steady stream of layer tokens cannot
        starve the client's frames (the mailbox then holds ``limit`` plus one per waiter).

A list and two waiters, so it costs less than an anyio memory stream on the hot path and
works on asyncio and trio alike.  Every connection's actor has one, most of the time
idle, so its resting cost counts: a list rather than a deque (an empty list costs 56
bytes, an empty deque 600, and ``pop(0)`` on a few dozen items costs less than the
handler that follows it), and the consumer waits on the cheapest thing each event loop
has: on asyncio a bare future (about 100 bytes), on trio its own task, parked
(``wait_task_rescheduled``), where an :class:`anyio.Event` costs 1.3 to 1.5 KiB while
waited on.  Producers, who wait only when the mailbox is full, use :class:`anyio.Event`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import anyio

from ._taskset import running_asyncio_loop

if TYPE_CHECKING:
    import trio

__all__ = ["CLIENT", "DROPPED", "FAILED", "INTERNAL", "LAYER", "Mailbox"]

T = TypeVar("T")

# What an actor's mailbox item ``(kind, payload)`` holds:
CLIENT: Final = 0  # an event from the server (the client's)
LAYER: Final = 1  # a layer message (None: a token, the message waits in the watched channel)
INTERNAL: Final = 2  # the actor's own: timers due, task results
FAILED: Final = 3  # a background task's exception (see _taskset)
DROPPED: Final = 4  # the layer dropped messages for this actor's channel: it was full


class Mailbox(Generic[T]):
    """A bounded FIFO with async ``put``/``get`` for one consumer, on the event loop that made it."""

    __slots__ = ("_limit", "_loop", "_not_empty", "_not_full", "_on_room", "items")

    def __init__(self, limit: int = 64) -> None:
        self.items: list[T] = []
        """What waits, oldest first: the consumer may look (the actor's loop tests it with
        no call); only the methods change it."""
        self._limit = limit
        self._loop = running_asyncio_loop()  # None: trio
        self._not_empty: asyncio.Future[None] | trio.lowlevel.Task | None = None  # the waiting consumer
        self._not_full: anyio.Event | None = None
        self._on_room: Callable[[], None] | None = None  # a producer without a task (._pump), held up

    @property
    def limit(self) -> int:
        """How many items the mailbox holds before producers wait."""
        return self._limit

    def call_on_room(self, callback: Callable[[], None] | None) -> None:
        """Call *callback* once, at the consumer's next take: a producer without a task waits so.

        One such producer at a time (the actor's client pump on asyncio, see ``._pump``);
        None forgets the one set. The callback runs inside the take: it must not block.
        """
        self._on_room = callback

    def __len__(self) -> int:
        return len(self.items)

    async def put(self, item: T) -> None:
        """Append *item*; if the mailbox is full, first wait for the consumer to take one.

        One take is enough (rule 5): items posted with :meth:`put_nowait` meanwhile (a
        layer's tokens) must not keep a waiting producer (the client's frames) out for ever.
        """
        if len(self.items) >= self._limit:
            if self._not_full is None:
                self._not_full = anyio.Event()
            await self._not_full.wait()
        self.put_nowait(item)

    def push_front(self, items: list[T]) -> None:
        """Put *items* back at the head, in their order: taken out of turn, they go first."""
        if items:
            self.items[:0] = items

    def put_nowait(self, item: T) -> None:
        """Append *item* now, past the limit: for items another bound already limits."""
        self.items.append(item)
        waiter = self._not_empty
        if waiter is not None:
            self._not_empty = None
            if self._loop is not None:  # asyncio: the consumer's future (done if it was cancelled)
                if not waiter.done():  # type: ignore[union-attr]  # a future on asyncio
                    waiter.set_result(None)  # type: ignore[union-attr]
            else:
                import trio  # noqa: PLC0415 - loaded whenever a trio loop runs

                trio.lowlevel.reschedule(waiter)  # type: ignore[arg-type]  # a parked task on trio

    def _park(self) -> Awaitable[Any]:
        """On trio: what the consumer awaits until :meth:`put_nowait` reschedules its task."""
        import trio  # noqa: PLC0415 - as above

        task = self._not_empty = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:  # cancelled: leave no trace
            if self._not_empty is task:
                self._not_empty = None
            return trio.lowlevel.Abort.SUCCEEDED

        return trio.lowlevel.wait_task_rescheduled(abort)  # noqa: ASYNC105 - the caller awaits it at once

    def arrival(self) -> Awaitable[Any]:
        """What the consumer awaits, on an empty mailbox, until an item arrives (no deadline).

        Not a coroutine: on asyncio the bare future itself, so a consumer idle between
        items keeps no suspended frame of the mailbox's (rule 3 and 4's ``get`` costs one).
        Then :meth:`get_nowait` takes the item.
        """
        if self._loop is None:
            return self._park()
        wait = self._not_empty = self._loop.create_future()
        return wait

    def get_nowait(self) -> T:
        """Pop the oldest item (the mailbox must hold one: see :meth:`arrival`)."""
        item = self.items.pop(0)
        waiter = self._not_full
        if waiter is not None:
            self._not_full = None
            waiter.set()
        on_room = self._on_room
        if on_room is not None:
            self._on_room = None
            on_room()
        return item

    async def get(self, deadline: float = math.inf) -> T | None:
        """Pop the oldest item, waiting while the mailbox is empty.

        Returns None if *deadline* (on ``anyio.current_time()``'s clock) passes first.
        """
        while not self.items:
            # Awaited right here, not in a helper coroutine: a suspended frame costs memory.
            wait = self._not_empty = self._loop.create_future() if self._loop is not None else None
            try:
                if deadline == math.inf:
                    await (wait if wait is not None else self._park())
                elif wait is not None:
                    # asyncio: a timer handle wakes the future at the deadline (anyio's clock is
                    # the loop's): about 100 bytes while waiting, where a cancel scope costs 600
                    handle = self._loop.call_at(deadline, _expire, wait)  # type: ignore[union-attr]
                    try:
                        await wait
                    finally:
                        handle.cancel()
                    if not self.items:
                        return None  # the deadline passed first
                else:
                    with anyio.CancelScope(deadline=deadline) as scope:
                        await (wait if wait is not None else self._park())
                    if scope.cancelled_caught:
                        return None
            finally:
                if wait is not None and self._not_empty is wait:  # a cancelled future: leave no trace
                    self._not_empty = None
        return self.get_nowait()


def _expire(waiter: asyncio.Future[None]) -> None:
    """The deadline of a waiting ``get`` passed: wake it (it finds the mailbox empty)."""
    if not waiter.done():
        waiter.set_result(None)
