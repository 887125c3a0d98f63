"""The channel-layer contract as types.

A layer's capabilities are ``typing.Protocol`` classes, not ``NotImplementedError``
stubs: code that needs groups asks for a :class:`GroupLayer`, code that lists
members asks for a :class:`ListableGroupLayer`, and a type checker (or
``isinstance``, the protocols being runtime-checkable) tells whether a layer fits.
The written contract is ``docs/layer-spec.md``; ``interlock.layers.testing`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = [
    "ChannelLayer",
    "DropCountingLayer",
    "GroupLayer",
    "ListableGroupLayer",
    "Message",
    "PeerWatchingLayer",
    "StartsAndCloses",
    "WatchableLayer",
]

Message = dict[str, Any]
"""A layer message: a dict with a str ``"type"`` and JSON-like values (see the spec)."""


@runtime_checkable
class ChannelLayer(Protocol):
    """Point-to-point delivery between named channels."""

    async def send(self, channel: str, message: Message, /) -> None:
        """Queue *message* on *channel*; raise ``ChannelFull`` when it is at capacity."""
        ...

    async def receive(self, channel: str, /) -> Message:
        """Wait for and return the next unexpired message on *channel*, in send order."""
        ...

    async def new_channel(self, prefix: str = "specific", /) -> str:
        """Return a new, unique, process-local channel name starting with *prefix*."""
        ...

    async def close_channel(self, channel: str, /) -> None:
        """Drop *channel*'s queue and remove it from every group (its owner stopped)."""
        ...

    async def flush(self) -> None:
        """Drop every message, channel and group this layer holds."""
        ...

    async def close(self) -> None:
        """Release the layer's resources; the next call starts it again."""
        ...


@runtime_checkable
class GroupLayer(ChannelLayer, Protocol):
    """A layer with groups: named sets of channels that receive a message together."""

    async def group_add(self, group: str, channel: str, /) -> None:
        """Add *channel* to *group* (idempotent; renews the membership)."""
        ...

    async def group_discard(self, group: str, channel: str, /) -> None:
        """Remove *channel* from *group* (idempotent)."""
        ...

    async def group_send(self, group: str, message: Message, /) -> None:
        """Send *message* to every channel in *group*; members at capacity miss it."""
        ...


@runtime_checkable
class ListableGroupLayer(GroupLayer, Protocol):
    """A layer that can say who is in a group, and which groups exist."""

    async def group_members(self, group: str, /) -> frozenset[str]:
        """Return the channels currently in *group* (empty if the group does not exist)."""
        ...

    async def groups(self) -> dict[str, int]:
        """Return every non-empty group with its member count."""
        ...


@runtime_checkable
class WatchableLayer(Protocol):
    """A layer that can hand a channel's messages straight to its owner's mailbox."""

    def watch_channel(
        self, channel: str, notify: Callable[[], None], /, *, on_drop: Callable[[int], None] | None = None
    ) -> int | None:
        """Call *notify* once per message queued on *channel*; return how many wait already.

        None means the layer cannot watch this channel from here: use ``receive()``.
        *on_drop*, if given, is called (on the same thread as *notify*) with a count
        whenever messages for *channel* were dropped because it was full.
        """
        ...

    def take_message(self, channel: str, /) -> Message | None:
        """The next unexpired message on *channel*, or None, without waiting."""
        ...


@runtime_checkable
class PeerWatchingLayer(Protocol):
    """A layer that can tell when a channel is gone: closed, or its owner's process stopped."""

    def watch_peer(self, channel: str, on_gone: Callable[[str, str], None], /) -> Callable[[], None]:
        """Call ``on_gone(channel, reason)`` once when *channel* is gone; return a cancel function.

        *reason* is ``"closed"`` (``close_channel()``), ``"unknown"`` (no such channel,
        or gone already: then *on_gone* may be called before this returns) or ``"lease"``
        (the process that owned it stopped renewing its lease: it died or lost the layer).
        Called on the layer's event loop thread.
        """
        ...


@runtime_checkable
class DropCountingLayer(Protocol):
    """A layer that counts the messages ``group_send`` dropped because their channel was full."""

    async def drop_counts(self) -> dict[str, int]:
        """Return, for each channel that had drops, how many messages it lost to being full."""
        ...


class StartsAndCloses:
    """Mixin for layers: ``async with layer:`` starts it, and closes it on the way out."""

    async def start(self) -> None:
        """Start the layer (layers also start lazily on first use)."""

    async def close(self) -> None:
        """Release the layer's resources."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
