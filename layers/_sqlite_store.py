"""The SQLite side of :class:`~interlock.layers.SQLiteChannelLayer`: the queries on an open
connection (processes, groups, messages), and running them.

Everything here is synchronous.  It runs in worker threads, except the short writes and
reads that :func:`try_once` runs on the event loop's own connection (see rule 4).  The
file itself (its schema, opening it, checkpoints) is :mod:`._sqlite_file`.

Rules:

1. A process-local channel lives as long as its owner: pruning a process whose lease
   ended more than ``grace`` seconds ago deletes its row, its channels' memberships and
   their queued messages in one transaction.  Named channels are never pruned.  An owner
   that has no row yet (a ``!`` name nobody registered) gets a placeholder row whose lease
   has already ended, so every owned membership is pruned by the same rule.
2. Writes are single statements or ``BEGIN IMMEDIATE`` transactions on a WAL file.
   When another connection holds the write lock, :func:`call` retries the whole
   transaction after a short, growing, jittered sleep (from 50 µs: SQLite's own busy
   handler would sleep at least 1 ms), so "database is locked" never reaches a caller
   (after :data:`PATIENCE` seconds of it, :class:`LayerBusy` says so plainly).
3. Times in the file are wall-clock seconds (``time.time()``): several processes read them.
4. A connection that an event loop uses itself (:func:`~._sqlite_file.for_event_loop`)
   never waits: :func:`try_once` runs a call once and, if another connection holds the
   write lock, rolls it back and returns :data:`BUSY` so that the caller retries in a
   worker thread with :func:`call`.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Concatenate, Final, NamedTuple, ParamSpec, TypeVar

from ._errors import ChannelFull, LayerBusy
from ._sqlite_file import primary_code, table_names, writing
from ._wire import decode

__all__ = [
    "BUSY",
    "PATIENCE",
    "Busy",
    "Census",
    "LayerBusy",
    "Owner",
    "PruneReport",
    "call",
    "try_once",
]

P = ParamSpec("P")
T = TypeVar("T")

PATIENCE: Final = 30.0
CLAIM_BATCH: Final = 500
CLOSED_KEPT: Final = 600.0
"""Seconds a closed process channel is remembered for watches that begin after its close."""
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class Owner(NamedTuple):
    """A process row: who owns the ``!`` channels named after ``id``."""

    id: str
    incarnation: str
    pid: int
    host: str
    started: float
    lease_until: float
    grace: float


class PruneReport(NamedTuple):
    """What one pruning pass removed."""

    processes: tuple[str, ...]
    memberships: int
    messages: int


# -- running ---------------------------------------------------------------------------------


def call(
    conn: sqlite3.Connection, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``fn(conn, ...)``, retrying the whole of it while the file is locked by others."""
    delay = 0.00005
    deadline: float | None = None
    while True:
        try:
            return fn(conn, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if primary_code(exc) not in _BUSY:
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + PATIENCE
            elif now > deadline:
                msg = f"the layer file stayed locked by other processes for {PATIENCE:.0f} s ({exc})"
                raise LayerBusy(msg) from exc
            time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not cryptography
            delay = min(delay * 1.5, 0.002)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class Busy:
    """The type of :data:`BUSY`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BUSY"


BUSY: Final = Busy()
"""What :func:`try_once` returns when the file was locked: nothing was done, retry with :func:`call`."""


def try_once(
    conn: sqlite3.Connection, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
) -> T | Busy:
    """Run ``fn(conn, ...)`` once, without waiting: :data:`BUSY` if the file was locked.

    For a connection set up by :func:`~._sqlite_file.for_event_loop`.  A failed call is rolled back, so
    *fn* must be safe to run again (every write here is one statement or one transaction).
    """
    try:
        return fn(conn, *args, **kwargs)
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if primary_code(exc) in _BUSY:
            return BUSY
        raise
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# -- processes -------------------------------------------------------------------------------


def register(conn: sqlite3.Connection, me: Owner, memberships: Iterable[tuple[str, str]] = ()) -> None:
    """Insert (or take over) *me*'s row, and restore its channels' *memberships*."""
    with writing(conn):
        conn.execute("INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?, ?, ?, ?)", me)
        conn.executemany(
            "INSERT OR IGNORE INTO memberships VALUES (?, ?, ?, ?)",
            [(group, channel, me.id, time.time()) for group, channel in memberships],
        )


def renew(conn: sqlite3.Connection, me: Owner, lease_until: float) -> bool:
    """Extend *me*'s lease; False if its row is gone or was replaced (it had been pruned)."""
    cursor = conn.execute(
        "UPDATE processes SET lease_until = ? WHERE id = ? AND incarnation = ?",
        (lease_until, me.id, me.incarnation),
    )
    return cursor.rowcount == 1


def unregister(conn: sqlite3.Connection, process: str) -> None:
    """Remove *process*, its channels' memberships and their queued messages; the watchers
    of its channels in other processes find them closed."""
    with writing(conn):
        conn.execute("UPDATE watches SET gone = 'closed' WHERE owner = ? AND gone IS NULL", (process,))
        _drop_process(conn, process)


def _drop_process(conn: sqlite3.Connection, process: str) -> tuple[int, int]:
    memberships = conn.execute("DELETE FROM memberships WHERE owner = ?", (process,)).rowcount
    messages = conn.execute("DELETE FROM messages WHERE owner = ?", (process,)).rowcount
    conn.execute("DELETE FROM drops WHERE owner = ?", (process,))
    conn.execute("DELETE FROM watches WHERE watcher = ?", (process,))  # its own watches end with it
    conn.execute("DELETE FROM processes WHERE id = ?", (process,))
    return memberships, messages


def prune(conn: sqlite3.Connection, now: float) -> PruneReport:
    """Drop processes whose lease ended more than their grace ago, and expired messages."""
    with writing(conn):
        dead = tuple(
            process for (process,) in conn.execute("SELECT id FROM processes WHERE lease_until + grace < ?", (now,))
        )
        memberships = messages = 0
        for process in dead:
            dropped_memberships, dropped_messages = _drop_process(conn, process)
            memberships += dropped_memberships
            messages += dropped_messages
        messages += conn.execute("DELETE FROM messages WHERE expires <= ?", (now,)).rowcount
        conn.execute("DELETE FROM closed WHERE at < ?", (now - CLOSED_KEPT,))
    return PruneReport(dead, memberships, messages)


def processes(conn: sqlite3.Connection) -> list[Owner]:
    """Every process row, oldest first."""
    rows = conn.execute("SELECT * FROM processes ORDER BY started, id").fetchall()
    return [Owner(*row) for row in rows]


class Census(NamedTuple):
    """Who holds what in a layer file, read in one snapshot (``interlock layer processes``)."""

    processes: list[tuple[Owner, int, int]]
    """Each process (oldest first) with its channels' memberships and unexpired queued messages."""
    named_memberships: int
    """Memberships of named channels (owned by no process)."""
    named_queued: int
    """Unexpired messages queued for named channels."""
    dropped: dict[str | None, int]
    """Messages ``group_send`` dropped for full channels, by owner (None: named channels)."""


def census(conn: sqlite3.Connection, now: float) -> Census:
    """Every process with what its channels hold, and what the named channels hold."""
    conn.execute("BEGIN")  # one read snapshot for all five queries
    try:
        owners = processes(conn)
        memberships = dict(conn.execute("SELECT owner, COUNT(*) FROM memberships GROUP BY owner").fetchall())
        queued = dict(
            conn.execute("SELECT owner, COUNT(*) FROM messages WHERE expires > ? GROUP BY owner", (now,)).fetchall()
        )
        dropped: dict[str | None, int] = {}
        if "drops" in table_names(conn):  # a file no process has opened since drops were counted
            dropped = dict(conn.execute("SELECT owner, SUM(dropped) FROM drops GROUP BY owner").fetchall())
    finally:
        conn.execute("COMMIT")
    rows = [(owner, memberships.get(owner.id, 0), queued.get(owner.id, 0)) for owner in owners]
    return Census(rows, memberships.get(None, 0), queued.get(None, 0), dropped)


# -- groups ----------------------------------------------------------------------------------


def group_add(conn: sqlite3.Connection, group: str, channel: str, owner: Owner | None, now: float) -> None:
    """Add or renew a membership; *owner* (a ``!`` channel's) gets a row if it has none."""
    with writing(conn):
        if owner is not None:
            conn.execute("INSERT OR IGNORE INTO processes VALUES (?, ?, ?, ?, ?, ?, ?)", owner)
        conn.execute(
            "INSERT INTO memberships VALUES (?, ?, ?, ?) ON CONFLICT (grp, channel) "
            "DO UPDATE SET joined = excluded.joined, owner = excluded.owner",
            (group, channel, None if owner is None else owner.id, now),
        )


def group_discard(conn: sqlite3.Connection, group: str, channel: str) -> None:
    """Remove a membership, if there is one."""
    conn.execute("DELETE FROM memberships WHERE grp = ? AND channel = ?", (group, channel))


def close_channel(conn: sqlite3.Connection, channel: str) -> None:
    """Remove *channel* from every group and drop its queued messages; mark its watches gone."""
    with writing(conn):
        conn.execute("DELETE FROM memberships WHERE channel = ?", (channel,))
        conn.execute("DELETE FROM messages WHERE channel = ?", (channel,))
        conn.execute("DELETE FROM drops WHERE channel = ?", (channel,))
        conn.execute("UPDATE watches SET gone = 'closed' WHERE channel = ? AND gone IS NULL", (channel,))
        if "!" in channel:  # a process's channel is never used again: remember it for later watches
            conn.execute("INSERT OR REPLACE INTO closed VALUES (?, ?)", (channel, time.time()))


def sync_watches(
    conn: sqlite3.Connection, watcher: str, add: list[tuple[str, str | None]], remove: list[str]
) -> list[tuple[str, str]]:
    """Record *watcher*'s new watches (channel, owner), forget *remove*, and return (and
    forget) its watches that are gone: ``(channel, reason)``, reason ``closed`` or ``lease``."""
    with writing(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO watches (channel, watcher, owner) VALUES (?, ?, ?)",
            [(channel, watcher, owner) for channel, owner in add],
        )
        conn.executemany("DELETE FROM watches WHERE channel = ? AND watcher = ?", [(c, watcher) for c in remove])
        if add:  # a watch that began after its channel's close
            conn.execute(
                """UPDATE watches SET gone = 'closed' WHERE watcher = ? AND gone IS NULL
                   AND channel IN (SELECT channel FROM closed)""",
                (watcher,),
            )
        gone = conn.execute(
            """SELECT channel, COALESCE(gone, 'lease') FROM watches
               WHERE watcher = ? AND (gone IS NOT NULL
                   OR (owner IS NOT NULL AND owner NOT IN (SELECT id FROM processes)))""",
            (watcher,),
        ).fetchall()
        conn.executemany("DELETE FROM watches WHERE channel = ? AND watcher = ?", [(c, watcher) for c, _ in gone])
    return [(str(channel), str(reason)) for channel, reason in gone]


_MEMBERS: Final = "SELECT channel, owner FROM memberships WHERE grp = ? AND joined > ? ORDER BY joined"


def group_members(conn: sqlite3.Connection, group: str, joined_after: float) -> list[tuple[str, str | None]]:
    """``(channel, owner)`` of each member of *group* that joined after *joined_after*, in the order they joined."""
    return conn.execute(_MEMBERS, (group, joined_after)).fetchall()


def group_counts(conn: sqlite3.Connection, joined_after: float) -> dict[str, int]:
    """Every group with members that joined after *joined_after*, with their count."""
    rows = conn.execute(
        "SELECT grp, COUNT(*) FROM memberships WHERE joined > ? GROUP BY grp", (joined_after,)
    ).fetchall()
    return dict(rows)


def expire_memberships(conn: sqlite3.Connection, joined_before: float) -> int:
    """Delete memberships not renewed since *joined_before* (only with a group expiry)."""
    return conn.execute("DELETE FROM memberships WHERE joined <= ?", (joined_before,)).rowcount


def flush(conn: sqlite3.Connection) -> None:
    """Delete every membership and message (live processes keep their rows)."""
    with writing(conn):
        conn.execute("DELETE FROM memberships")
        conn.execute("DELETE FROM messages")
        conn.execute("DELETE FROM drops")
        conn.execute("DELETE FROM history")
        conn.execute("DELETE FROM history_streams")


# -- messages --------------------------------------------------------------------------------


_ENQUEUE: Final = (
    "INSERT INTO messages (channel, owner, expires, body) SELECT ?1, ?2, ?3, ?4 WHERE ("
    "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE channel = ?1 AND expires > ?5 LIMIT ?6)) < ?6"
)


def enqueue(
    conn: sqlite3.Connection,
    targets: Sequence[tuple[str, str | None, int]],
    body: str,
    *,
    now: float,
    expires: float,
    strict: bool,
) -> list[str]:
    """Queue *body* for each ``(channel, owner, capacity)``; return the channels that were full.

    Each insert counts the channel's unexpired messages (at most *capacity* of them) in
    the same statement.  With *strict* (a single ``send``), a full channel raises
    :class:`ChannelFull` instead; otherwise its drop is counted in ``drops``.
    """
    if len(targets) == 1:  # one statement is its own transaction
        channel, owner, capacity = targets[0]
        if conn.execute(_ENQUEUE, (channel, owner, expires, body, now, capacity)).rowcount == 1:
            return []
        if strict:
            msg = f"channel {channel!r} is full ({capacity} undelivered messages)"
            raise ChannelFull(msg)
        conn.execute(_COUNT_DROP, (channel, owner, 1, 0))
        return [channel]
    full: list[str] = []
    with writing(conn):
        for channel, owner, capacity in targets:
            if conn.execute(_ENQUEUE, (channel, owner, expires, body, now, capacity)).rowcount != 1:
                conn.execute(_COUNT_DROP, (channel, owner, 1, 0))
                full.append(channel)
    return full


_COUNT_DROP: Final = (
    "INSERT INTO drops VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel) "
    "DO UPDATE SET dropped = dropped + excluded.dropped, reported = reported + excluded.reported"
)


def add_drops(conn: sqlite3.Connection, owner: str, counts: dict[str, int]) -> None:
    """Count drops *owner* saw for its own channels (and so has heard of already)."""
    with writing(conn):
        conn.executemany(_COUNT_DROP, [(channel, owner, count, count) for channel, count in counts.items()])


def take_drops(conn: sqlite3.Connection, owner: str) -> list[tuple[str, int]]:
    """The drops for *owner*'s channels it has not heard of yet, marked as heard of now."""
    rows: list[tuple[str, int]] = conn.execute(
        "SELECT channel, dropped - reported FROM drops WHERE owner = ? AND dropped > reported", (owner,)
    ).fetchall()
    if rows:
        with writing(conn):
            conn.executemany(
                "UPDATE drops SET reported = reported + ?2 WHERE channel = ?1 AND owner = ?3",
                [(channel, count, owner) for channel, count in rows],
            )
    return rows


def drop_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Every channel with drops, with how many (``interlock layer processes`` sums them)."""
    return dict(conn.execute("SELECT channel, dropped FROM drops WHERE dropped > 0").fetchall())


def group_send(
    conn: sqlite3.Connection,
    group: str,
    body: str,
    *,
    joined_after: float,
    local_owner: str | None,
    now: float,
    expires: float,
    capacity_for: Callable[[str], int],
) -> tuple[list[str], list[str], list[str]]:
    """Queue *body* for the members of *group* not owned by *local_owner*.

    Returns the members *local_owner* delivers itself, the members queued in the file,
    and those of them that were full.
    """
    local, stored = split_members(conn, group, joined_after, local_owner, capacity_for)
    full = enqueue(conn, stored, body, now=now, expires=expires, strict=False) if stored else []
    return local, [channel for channel, _, _ in stored], full


def split_members(
    conn: sqlite3.Connection,
    group: str,
    joined_after: float,
    local_owner: str | None,
    capacity_for: Callable[[str], int],
) -> tuple[list[str], list[tuple[str, str | None, int]]]:
    """The members of *group* that joined after *joined_after*, split: *local_owner*'s
    channels, and :func:`enqueue` targets; each in the order they joined.

    That order is the one a process's connections were made in, roughly, so the order
    their objects lie in memory: a group send wakes its local members in it. In key order
    (the channels' random names) the same broadcast to 15,000 actors in one process took
    1.6 to 2 times as long (cache misses on every member's objects); the sort costs about
    4 ms per 15,000 members. And the rows are read one at a time, never all held at once:
    15,000 row tuples alive together set the collector going 20 times a send and promoted
    them all, which brought its full collections (seconds, at that scale) twice as often.
    """
    local: list[str] = []
    stored: list[tuple[str, str | None, int]] = []
    for channel, owner in conn.execute(_MEMBERS, (group, joined_after)):
        if owner is not None and owner == local_owner:
            local.append(channel)
        else:
            stored.append((channel, owner, capacity_for(channel)))
    return local, stored


def claim_owned(
    conn: sqlite3.Connection,
    owner: str,
    room: Callable[[str], int],
    full: Sequence[str] = (),
    bytes_left: Callable[[str], float] | None = None,
    *,
    batch: int = CLAIM_BATCH,
) -> tuple[list[tuple[str, float, dict[str, Any]]], bool]:
    """Take the oldest of *owner*'s messages (at most *batch*), at most ``room(channel)`` per channel.

    With *bytes_left*, a channel also takes rows only while the bytes of its queue and of
    the bodies taken stay under its byte bound (the row that reaches it is taken); the
    rest wait in the file.

    Channels in *full* (no room at all) are left out of the query, so their waiting rows
    never hide other channels' messages.  Returns ``(channel, expires, message)`` in queue
    order, and whether a whole batch was read (there may be more to claim at once).
    """
    now = time.time()
    skip = f" AND channel NOT IN ({','.join('?' * len(full))})" if full else ""
    rows = conn.execute(
        f"SELECT id, channel, expires, body FROM messages WHERE owner = ? AND expires > ?{skip} "  # noqa: S608
        "ORDER BY id LIMIT ?",  # ... and *skip* holds only '?'s
        (owner, now, *full, batch),
    ).fetchall()
    if not rows:
        return [], False
    more = len(rows) == batch
    budget: dict[str, int] = {}
    byte_budget: dict[str, float] = {}
    chosen: list[tuple[int, str, float, str]] = []
    for row in rows:
        channel = row[1]
        space = budget.get(channel)
        if space is None:
            space = room(channel)
        if space > 0 and bytes_left is not None:
            left = byte_budget.get(channel)
            if left is None:
                left = bytes_left(channel)
            if left <= 0:
                space = 0  # at the byte bound: this and later rows of the channel wait
            else:
                byte_budget[channel] = left - len(row[3])
        if space > 0:
            chosen.append(row)
            space -= 1
        budget[channel] = space
    if not chosen:
        return [], more
    placeholders = ",".join("?" * len(chosen))
    with writing(conn):
        taken = {
            row_id
            for (row_id,) in conn.execute(
                f"DELETE FROM messages WHERE id IN ({placeholders}) RETURNING id",  # noqa: S608 - only '?'s
                [row[0] for row in chosen],
            )
        }
    return [(channel, expires, decode(body)) for row_id, channel, expires, body in chosen if row_id in taken], more


def has_mail(conn: sqlite3.Connection, owner: str) -> bool:
    """Whether the file holds an unexpired message for one of *owner*'s channels."""
    row = conn.execute(
        "SELECT 1 FROM messages WHERE owner = ? AND expires > ? LIMIT 1", (owner, time.time())
    ).fetchone()
    return row is not None


def claim_one(conn: sqlite3.Connection, channel: str) -> dict[str, Any] | None:
    """Take the oldest unexpired message on *channel*, or return None."""
    now = time.time()
    while True:
        row = conn.execute(
            "SELECT id, expires, body FROM messages WHERE channel = ? AND expires > ? ORDER BY id LIMIT 1",
            (channel, now),
        ).fetchone()
        if row is None:
            return None
        if conn.execute("DELETE FROM messages WHERE id = ?", (row[0],)).rowcount == 1:
            return decode(row[2])


def data_version(conn: sqlite3.Connection) -> int:
    """A number that changes whenever another connection commits to the file."""
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)
