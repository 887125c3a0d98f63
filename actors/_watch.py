"""Peer watching: an actor is told when a channel it watches is gone.

``self.watch(channel)`` asks the layer (a :class:`~interlock.layers.PeerWatchingLayer`)
to say when *channel* is gone — closed, unknown, or owned by a process whose lease
ended — and the actor then gets a layer message in its mailbox, in turn with the rest::

    {"type": "peer.gone", "channel": channel, "reason": "closed" | "unknown" | "lease"}

handled like any layer message: ``@on.message("peer.gone")`` in a state actor,
``@handler async def peer_gone(self, event)`` in a plain one. Each watch tells once; an
actor's watches end with it (and ``unwatch(channel)`` ends one earlier).
"""

from __future__ import annotations

from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Final

import anyio.from_thread
from interlock.layers import PeerWatchingLayer, require_channel_name

if TYPE_CHECKING:
    from ._base import BaseActor

__all__ = ["PEER_GONE", "Watches"]

PEER_GONE: Final = "peer.gone"
"""The type of the layer message a watcher gets."""


class Watches:
    """One actor's watches: the layer's cancel function for each watched channel."""

    __slots__ = ("_actor", "_cancels")

    def __init__(self, actor: BaseActor) -> None:
        self._actor = actor
        self._cancels: dict[str, Callable[[], None]] = {}

    def __contains__(self, channel: object) -> bool:
        return channel in self._cancels

    def add(self, channel: str) -> None:
        actor = self._actor
        layer = actor.channel_layer  # NoChannelLayer without one
        if not isinstance(layer, PeerWatchingLayer):
            msg = (
                f"{type(actor).__qualname__}.watch({channel!r}): {type(layer).__name__} cannot tell when a "
                "channel is gone; watch() needs a layer that watches peers (InMemoryChannelLayer, "
                "SQLiteChannelLayer, RedisChannelLayer)"
            )
            raise TypeError(msg)
        channel = require_channel_name(channel)
        if channel in self._cancels:
            return
        if get_ident() != actor._loop_thread:  # from a sync handler, in a worker thread
            anyio.from_thread.run_sync(self.add, channel)
            return
        self._cancels[channel] = _NOT_YET  # a watch that ends at once must not be kept
        cancel = layer.watch_peer(channel, self._gone)
        if channel in self._cancels:
            self._cancels[channel] = cancel

    def discard(self, channel: str) -> None:
        if get_ident() != self._actor._loop_thread:
            anyio.from_thread.run_sync(self.discard, channel)
            return
        cancel = self._cancels.pop(channel, None)
        if cancel is not None:
            cancel()

    def clear(self) -> None:
        cancels, self._cancels = self._cancels, {}
        for cancel in cancels.values():
            cancel()

    def _gone(self, channel: str, reason: str) -> None:
        if self._cancels.pop(channel, None) is None:
            return  # unwatched meanwhile
        self._actor._post_peer_gone({"type": PEER_GONE, "channel": channel, "reason": reason})


def _not_yet() -> None:
    """The cancel function while ``watch_peer`` runs."""


_NOT_YET: Final[Callable[[], None]] = _not_yet
