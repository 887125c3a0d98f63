"""The game's vocabulary: what clients send, and what players' actors tell each other.

Client messages are JSON objects ``{"type": ..., ...}`` structured into these attrs
classes (a field of the wrong type closes the socket with 1007). Layer messages go from
one player's actor to the other's channel, or to a group: ``game.lobby`` while looking
for an opponent, ``game.<id>`` while in a game, for a rejoining connection to find it.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

__all__ = [
    "Accept",
    "Away",
    "Cancel",
    "Decline",
    "Forfeit",
    "Move",
    "Moved",
    "PeerGone",
    "Play",
    "Propose",
    "Refused",
    "Rejoin",
    "RejoinRequest",
    "Resume",
]

# -- client → server -----------------------------------------------------------------------


@attrs.frozen
class Play:
    """Client: find me an opponent."""

    type: ClassVar[str] = "play"
    name: str


@attrs.frozen
class RejoinRequest:
    """Client: my connection dropped; let me back into *game* (token from ``matched``)."""

    type: ClassVar[str] = "rejoin"
    game: str
    token: str


@attrs.frozen
class Move:
    """Client: my mark on *square* (0 to 8, row by row)."""

    type: ClassVar[str] = "move"
    square: int


# -- player → player (layer messages) ----------------------------------------------------


@attrs.frozen
class Propose:
    """Shall we play? To a member of the lobby group."""

    type: ClassVar[str] = "game.propose"
    channel: str
    name: str
    game: str
    token_hash: str


@attrs.frozen
class Accept:
    """Yes: the proposer plays X and moves first."""

    type: ClassVar[str] = "game.accept"
    channel: str
    name: str
    token_hash: str


@attrs.frozen
class Decline:
    """No: busy with another proposal, or not looking any more."""

    type: ClassVar[str] = "game.decline"
    channel: str


@attrs.frozen
class Cancel:
    """Your accept came after I stopped waiting for it: look again."""

    type: ClassVar[str] = "game.cancel"
    channel: str


@attrs.frozen
class Moved:
    """My mark is on *square*."""

    type: ClassVar[str] = "game.moved"
    channel: str
    square: int


@attrs.frozen
class Forfeit:
    """I lose: *reason*."""

    type: ClassVar[str] = "game.forfeit"
    channel: str
    reason: str


@attrs.frozen
class Away:
    """My client's connection is gone; it may rejoin within the grace period."""

    type: ClassVar[str] = "game.away"
    channel: str


@attrs.frozen
class Rejoin:
    """To the game's group: a new connection for the player who left, with its token."""

    type: ClassVar[str] = "game.rejoin"
    channel: str
    token: str


@attrs.frozen
class Resume:
    """To the rejoining connection: the game as it stands."""

    type: ClassVar[str] = "game.resume"
    channel: str
    name: str
    token_hash: str
    board: str
    turn: str
    mark: str
    """The rejoining player's mark."""


@attrs.frozen
class Refused:
    """To the rejoining connection: no; close with *code* and *reason*."""

    type: ClassVar[str] = "game.refused"
    code: int
    reason: str


@attrs.frozen
class PeerGone:
    """From the layer, to a watcher (``self.watch(channel)``): *channel* is gone."""

    type: ClassVar[str] = "peer.gone"
    channel: str
    reason: str
    """``closed``, ``unknown`` or ``lease`` (its server process stopped renewing its lease)."""
