"""Group histories in the SQLite layer's file: every process on the file numbers and reads them alike.

Rules (the contract is :mod:`interlock.layers._history`'s):

1. **Two tables**: ``history_streams`` (a group's epoch and latest offset) and ``history``
   (the kept messages: group, offset, wall-clock time, encoded body with its position).
   A file made before they existed gains them when it is opened (the schema only grows).
2. **A recorded ``group_send`` is one transaction**: the offset is taken, the message kept,
   the history trimmed (count and age), and the copies queued for the members of other
   processes, together; so offsets have no gaps and the history holds them in order.  A
   member hears each sender's messages in that sender's order (as for any group send):
   this process's own at once, other processes' through the file, so offsets from several
   senders may arrive interleaved — the history, and a recovery, give them in offset order.
   It runs in the layer's worker thread (one trip per send, where a send to a group
   without history may not need one).
3. **A read** creates the group's stream if it has none (its epoch is then fixed for the
   sends that follow) and returns the kept messages after *since*: complete when the first
   of them is ``since + 1`` (offsets are gap-free, and trimming takes the oldest first), or
   when nothing came after *since*.
4. ``flush()`` deletes both tables' rows: the next use of a group starts a new epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

from ._history import GroupHistory, HistoryPage, ahead, complete, new_epoch, positioned
from ._sqlite_file import writing
from ._sqlite_store import _COUNT_DROP, _ENQUEUE, split_members
from ._types import Message
from ._wire import decode, encode

__all__ = ["page", "send_recorded"]

_NEXT: Final = (
    "INSERT INTO history_streams (grp, epoch, latest) VALUES (?1, ?2, 1) "
    "ON CONFLICT (grp) DO UPDATE SET latest = latest + 1 RETURNING epoch, latest"
)
_TRIM: Final = "DELETE FROM history WHERE grp = ?1 AND (seq <= ?2 OR at <= ?3)"


def send_recorded(
    conn: sqlite3.Connection,
    group: str,
    message: Message,
    *,
    policy: GroupHistory,
    joined_after: float,
    local_owner: str | None,
    now: float,
    expires: float,
    capacity_for: Callable[[str], int],
) -> tuple[Message, list[str], list[str], list[str]]:
    """Number and keep *message*, queue it for other processes' members (rule 2).

    Returns the positioned copy, the members *local_owner* delivers itself, the members
    queued in the file, and those of them that were full.
    """
    with writing(conn):
        epoch, offset = conn.execute(_NEXT, (group, new_epoch())).fetchone()
        copy = positioned(message, group, epoch, offset)
        body = encode(copy)
        conn.execute("INSERT INTO history (grp, seq, at, body) VALUES (?, ?, ?, ?)", (group, offset, now, body))
        conn.execute(_TRIM, (group, offset - policy.count, now - policy.age))
        local, stored = split_members(conn, group, joined_after, local_owner, capacity_for)
        full: list[str] = []
        for channel, owner, capacity in stored:
            if conn.execute(_ENQUEUE, (channel, owner, expires, body, now, capacity)).rowcount != 1:
                conn.execute(_COUNT_DROP, (channel, owner, 1, 0))
                full.append(channel)
    return copy, local, [channel for channel, _, _ in stored], full


def page(
    conn: sqlite3.Connection,
    group: str,
    *,
    since: int,
    epoch: str | None,
    limit: int | None,
    policy: GroupHistory,
    now: float,
) -> HistoryPage:
    """The kept messages of *group* after *since* in *epoch* (rule 3)."""
    conn.execute("INSERT OR IGNORE INTO history_streams (grp, epoch, latest) VALUES (?, ?, 0)", (group, new_epoch()))
    current, latest = conn.execute("SELECT epoch, latest FROM history_streams WHERE grp = ?", (group,)).fetchone()
    if epoch is not None and epoch != current:
        return HistoryPage(group, current, latest, (), complete=False)
    if since > latest:
        raise ahead(group, since, latest, current)
    rows = conn.execute(
        "SELECT seq, body FROM history WHERE grp = ?1 AND seq > ?2 AND seq > ?3 AND at > ?4 ORDER BY seq LIMIT ?5",
        (group, since, latest - policy.count, now - policy.age, -1 if limit is None else limit),
    ).fetchall()
    whole = complete(rows[0][0] if rows else None, since, latest)
    return HistoryPage(group, current, latest, tuple(decode(body) for _, body in rows), whole)
