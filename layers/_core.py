"""What the layers shared by processes have in common, whatever their store (SQLite, Redis).

Rules:

1. **A channel belongs to the process that named it.**  ``new_channel()`` names are
   ``PREFIX.PROCESS!TOKEN``: :class:`ProcessNames` makes them and says whether a name is
   this process's (the local fast path) or whose it is (:func:`owner_of`); a name without
   ``!`` is *named*, and belongs to nobody.
2. **A process remembers what it must write again.**  :class:`OwnMemberships` holds the
   memberships of its own channels (and of named channels it added), which its store
   re-asserts when it registers again (a lease lost, a Redis restarted empty);
   :class:`PendingDrops` holds the drops of its own channels not yet written to the store.
   Both may be read from a lease thread, so both lock.
3. **A group's local members are served from memory.**  :func:`put_local` queues one
   ``group_send``'s message for this process's own members, one copy shared by their
   queues; a full one misses it, and the drop is counted (its hook told, the store told
   later), never raised.
4. **The home loop's queues wake two kinds of receivers.**  :class:`HomeQueues` are the
   queues of this process's own channels, on the event loop that started the layer; its
   receivers of channels that live in the store (named channels, on SQLite other
   processes' too) wait on one event per channel, set when the store may hold something
   new for them.  When that loop ends its events are forgotten, never set.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Final

import anyio

from ._drops import Drops
from ._errors import InvalidChannelName
from ._queues import ChannelGroups, ChannelQueues
from ._types import Message
from ._validation import MAX_NAME_LENGTH, copy_message, message_size

__all__ = ["HomeQueues", "OwnMemberships", "PendingDrops", "ProcessNames", "owner_of", "put_local"]

_PREFIX: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_PROCESS_HEX: Final = 6  # bytes of the process id: 12 hex digits
_TOKEN_HEX: Final = 8  # bytes of a channel token: 16 hex digits
_SUFFIX: Final = 1 + 2 * _PROCESS_HEX + 1 + 2 * _TOKEN_HEX  # ".PROCESS!TOKEN"


def owner_of(channel: str) -> str | None:
    """The process a ``!`` channel belongs to (what precedes the ``!``, after its last dot)."""
    head, bang, _ = channel.partition("!")
    return head.rpartition(".")[2] if bang else None


class ProcessNames:
    """This process's id and the channel names it makes (rule 1)."""

    __slots__ = ("_marker", "process")

    def __init__(self) -> None:
        self.process = secrets.token_hex(_PROCESS_HEX)
        self._marker = f".{self.process}!"

    def is_mine(self, channel: str) -> bool:
        """Whether *channel* belongs to this process (as :func:`owner_of` says, quicker)."""
        return self._marker in channel or channel.startswith(self._marker[1:])

    def new_name(self, prefix: str) -> str:
        """A new channel name of this process, ``PREFIX.PROCESS!TOKEN``; a bad *prefix* is refused."""
        room = MAX_NAME_LENGTH - _SUFFIX
        if not (type(prefix) is str and _PREFIX.fullmatch(prefix) and len(prefix) <= room):
            shown = repr(prefix) if len(repr(prefix)) <= 60 else repr(prefix)[:57] + "..."
            msg = (
                f"invalid channel prefix {shown}: a prefix is 1 to {room} ASCII letters, digits, "
                f"'-', '_' or '.' (the layer appends '.PROCESS!TOKEN', {_SUFFIX} characters)"
            )
            raise InvalidChannelName(msg)
        return f"{prefix}.{self.process}!{secrets.token_hex(_TOKEN_HEX)}"


class OwnMemberships(ChannelGroups):
    """The groups of the channels this process created (and named ones it added), shared with its lease thread.

    :class:`ChannelGroups` (a channel's one group as its name), each call under a lock.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def add(self, group: str, channel: str) -> None:
        """Record that *channel* joined *group*."""
        with self._lock:
            super().add(group, channel)

    def discard(self, group: str, channel: str) -> None:
        """Record that *channel* left *group*."""
        with self._lock:
            super().discard(group, channel)

    def drop(self, channel: str) -> Iterable[str]:
        """Forget *channel* (it was closed); return the groups it was in."""
        with self._lock:
            return super().drop(channel)

    def clear(self) -> None:
        """Forget every membership (the layer was flushed or closed)."""
        with self._lock:
            super().clear()

    def snapshot(self) -> list[tuple[str, str]]:
        """Every ``(group, channel)`` recorded."""
        with self._lock:
            return self.pairs()


class PendingDrops:
    """Drops of this process's own channels not yet written to the store, shared with its lease thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, channel: str, count: int = 1) -> None:
        """Count *count* drops of *channel* to write."""
        with self._lock:
            self._counts[channel] = self._counts.get(channel, 0) + count

    def take(self) -> dict[str, int]:
        """Every drop counted since the last call."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def discard(self, channel: str) -> None:
        """Forget *channel*'s drops (it was closed)."""
        with self._lock:
            self._counts.pop(channel, None)

    def put_back(self, counts: dict[str, int]) -> None:
        """Count again drops that could not be written."""
        for channel, count in counts.items():
            self.add(channel, count)


def put_local(  # noqa: PLR0917 - the pieces of one group_send, each from its own place
    queues: ChannelQueues,
    drops: Drops,
    pending: PendingDrops,
    group: str,
    channels: Iterable[str],
    message: Message,
    now: float,
) -> None:
    """Queue a checked *message* of ``group_send`` to *group* for this process's *channels* (rule 3).

    The queues share one copy of it, and each member copies it when it takes it (see
    :mod:`._queues`): a waiting delivery holds no dict of its own.
    """
    members = channels if isinstance(channels, (list, tuple)) else list(channels)
    many = len(members) > 1
    shared = copy_message(message) if many else message
    for channel in queues.put_group(members, shared, now, message_size(shared), shared=many):
        drops.seen(group, channel)
        drops.count(channel)
        pending.add(channel)


class HomeQueues(ChannelQueues):
    """The queues of this process's own channels, and the events of its store receivers (rule 4)."""

    # A store follows every queue's room (_appended, _taken): each message has its queue (SQLite: see its _add).
    singles = False

    def __init__(self, capacity_for: Callable[[str], int], expiry: float, capacity_bytes: int | None = None) -> None:
        super().__init__(capacity_for, expiry, capacity_bytes)
        self._named: dict[str, anyio.Event] = {}

    @property
    def named_waiting(self) -> bool:
        """Whether a receiver waits on a channel that lives in the store (may be read from another thread)."""
        return bool(self._named)

    def named_waiter(self, channel: str) -> anyio.Event:
        """The event set when the store may hold something new for *channel*."""
        event = self._named.get(channel)
        if event is None:
            event = self._named[channel] = anyio.Event()
        return event

    def wake_named(self, channels: Iterable[str] | None = None) -> None:
        """Wake the receivers of *channels* (all of them by default) to look in the store."""
        if channels is None:
            named, self._named = self._named, {}
            for event in named.values():
                event.set()
            return
        for channel in channels:
            if channel in self._named:
                self._named.pop(channel).set()

    def wake_all(self) -> None:
        """Wake every receiver (the layer closed, or its loop is ending); keep the messages."""
        super().wake_all()
        self.wake_named()

    def made(self, name: str) -> None:
        """``new_channel()`` made *name* (subclasses track live channels here)."""

    def forget_waiters(self) -> None:
        """Drop the events and watchers of an event loop that has ended, without setting them."""
        for queue in self._queues.values():
            queue.waiter = None
        self._named.clear()
        self._watchers.clear()
