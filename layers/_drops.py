"""Counting the messages a layer drops because their channel was full, and saying so once.

Rules:

1. A drop is a message ``group_send`` could not queue because the member's channel held
   its capacity.  (A ``send`` to a full channel raises ``ChannelFull`` instead: its sender
   hears about it, so it is not a drop.)
2. :class:`Drops` counts them per channel in the process that owns the channel, and calls
   the channel's ``on_drop`` hook (given to ``watch_channel``) with how many were just
   dropped.  The SQLite layer also counts them in the file (:mod:`._sqlite_store`), so
   every process, and ``interlock layer processes``, sees them.
3. A drop storm is logged, not each drop: the first drop of a channel is a WARNING, then
   at most one WARNING per channel every :data:`LOG_EVERY` seconds, with the count since
   the last line.  Drops not logged yet are logged when the channel closes or the layer
   flushes or closes.  (A burst of 20,000 messages once logged 20,904 lines.)

Everything here runs on one thread, the event loop's that delivers to the channels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["LOG_EVERY", "DropHook", "Drops"]

LOG_EVERY: Final = 10.0
"""Seconds between two log lines about one channel's drops."""

DropHook = Callable[[int], None]
"""Called with how many messages were just dropped for the channel it watches."""


class _Unlogged:
    __slots__ = ("count", "group", "last_logged")

    def __init__(self, last_logged: float) -> None:
        self.last_logged = last_logged
        self.count = 0
        self.group = ""


class Drops:
    """Drop counts, hooks and rate-limited logging for the channels of one layer (see the rules)."""

    def __init__(self, logger: logging.Logger, log_every: float = LOG_EVERY) -> None:
        self.logger = logger
        self.log_every = log_every
        self.counts: dict[str, int] = {}
        self._hooks: dict[str, DropHook] = {}
        self._unlogged: dict[str, _Unlogged] = {}

    def seen(self, group: str, channel: str, count: int = 1) -> None:
        """Log that ``group_send`` to *group* dropped *count* messages for the full *channel*."""
        now = time.monotonic()
        state = self._unlogged.get(channel)
        if state is None:
            self._unlogged[channel] = _Unlogged(now)
            self.logger.warning(
                "group_send to %r: member %r is full, message dropped (%d); further drops for it "
                "are logged at most every %.0f s, with a count",
                group,
                channel,
                count,
                self.log_every,
            )
            return
        state.count += count
        state.group = group
        if now - state.last_logged >= self.log_every:
            self._log(channel, state, now)

    def _log(self, channel: str, state: _Unlogged, now: float) -> None:
        if state.count:
            self.logger.warning(
                "member %r is full: %d more messages dropped in the last %.0f s (the last sent to group %r)",
                channel,
                state.count,
                now - state.last_logged,
                state.group,
            )
        state.count = 0
        state.last_logged = now

    def count(self, channel: str, count: int = 1) -> None:
        """Count *count* drops for *channel*, owned here, and tell its hook."""
        self.counts[channel] = self.counts.get(channel, 0) + count
        hook = self._hooks.get(channel)
        if hook is not None:
            hook(count)

    def hook(self, channel: str, on_drop: DropHook | None) -> None:
        """Call *on_drop* for each drop of *channel* from now on (None: stop calling)."""
        if on_drop is None:
            self._hooks.pop(channel, None)
        else:
            self._hooks[channel] = on_drop

    def unhook_all(self) -> None:
        """Drop every hook (the event loop they belong to has ended)."""
        self._hooks.clear()

    def forget(self, channel: str) -> None:
        """*channel* was closed: log its drops not logged yet, and forget it."""
        self.counts.pop(channel, None)
        self._hooks.pop(channel, None)
        state = self._unlogged.pop(channel, None)
        if state is not None:
            self._log(channel, state, time.monotonic())

    def clear(self) -> None:
        """Forget every channel (the layer was flushed or closed), logging what was not logged."""
        now = time.monotonic()
        for channel, state in self._unlogged.items():
            self._log(channel, state, now)
        self._unlogged.clear()
        self.counts.clear()
        self._hooks.clear()
