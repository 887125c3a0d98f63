"""Watching peers: who is told when a channel is gone.

A layer that implements :class:`~interlock.layers.PeerWatchingLayer` keeps one
:class:`PeerWatches` for the watches made through it. It calls :meth:`PeerWatches.gone`
when it learns that a channel is gone — closed with ``close_channel()`` (reason
``"closed"``), never made or already gone when watched (``"unknown"``), or owned by a
process whose lease ended (``"lease"``) — and every watcher of that channel is told
once, then forgotten. A watch is cancelled with the function ``add()`` returned.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Final, Literal

__all__ = ["GONE_REASONS", "GoneReason", "OnGone", "PeerWatches"]

logger = logging.getLogger("interlock.layers")

GoneReason = Literal["closed", "unknown", "lease"]
GONE_REASONS: Final = ("closed", "unknown", "lease")

OnGone = Callable[[str, str], None]
"""``on_gone(channel, reason)``: called once, on the layer's event loop thread."""

_ids = itertools.count()


class PeerWatches:
    """The watchers of each watched channel."""

    __slots__ = ("_watchers",)

    def __init__(self) -> None:
        self._watchers: dict[str, dict[int, OnGone]] = {}

    def __len__(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    def add(self, channel: str, on_gone: OnGone) -> Callable[[], None]:
        """Watch *channel*; return the function that cancels this watch (idempotent)."""
        key = next(_ids)
        self._watchers.setdefault(channel, {})[key] = on_gone

        def cancel() -> None:
            watchers = self._watchers.get(channel)
            if watchers is not None:
                watchers.pop(key, None)
                if not watchers:
                    del self._watchers[channel]

        return cancel

    def watched(self) -> list[str]:
        """The channels somebody watches."""
        return list(self._watchers)

    def gone(self, channel: str, reason: GoneReason) -> None:
        """*channel* is gone: tell each of its watchers once, and forget them."""
        watchers = self._watchers.pop(channel, None)
        if not watchers:
            return
        for on_gone in watchers.values():
            try:
                on_gone(channel, reason)
            except Exception:  # one watcher's bug must not keep the others uninformed
                logger.exception("a watcher of channel %r failed when told it is gone", channel)

    def all_gone(self, reason: GoneReason) -> None:
        """Every watched channel is gone (the layer was flushed or closed)."""
        for channel in list(self._watchers):
            self.gone(channel, reason)
