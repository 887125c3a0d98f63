"""The SQLite side of :class:`~interlock.layers.SQLiteChannelLayer`: schema, opening, queries.

Everything here is synchronous.  It runs in worker threads, except the short writes and
reads that :func:`try_once` runs on the event loop's own connection (see rule 6).

Rules:

1. A layer file holds four tables.  ``processes`` has a row per live layer instance
   (its *lease*: ``lease_until``, renewed while it lives, and ``grace``, how long after
   that it may still come back).  ``memberships`` has a row per (group, channel), with
   the channel's ``owner`` process for process-local (``!``) channels and NULL for named
   ones.  ``messages`` has a row per undelivered message, with the same ``owner`` so a
   process can claim everything addressed to its channels with one indexed query.
   Message ids only grow (``AUTOINCREMENT``: never reused), so they order each queue,
   and an id read by a claim still names the same row when it is deleted.  ``drops``
   counts, per channel, the messages ``group_send`` dropped because it was full
   (``dropped``), and how many of them its owner has heard of (``reported``); files made
   before it existed get it when a process opens them for writing.
2. A process-local channel lives as long as its owner: pruning a process whose lease
   ended more than ``grace`` seconds ago deletes its row, its channels' memberships and
   their queued messages in one transaction.  Named channels are never pruned.  An owner
   that has no row yet (a ``!`` name nobody registered) gets a placeholder row whose lease
   has already ended, so every owned membership is pruned by the same rule.
3. Writes are single statements or ``BEGIN IMMEDIATE`` transactions on a WAL file.
   When another connection holds the write lock, :func:`call` retries the whole
   transaction after a short, growing, jittered sleep (from 50 µs: SQLite's own busy
   handler would sleep at least 1 ms), so "database is locked" never reaches a caller
   (after :data:`PATIENCE` seconds of it, :class:`LayerBusy` says so plainly).
4. Times in the file are wall-clock seconds (``time.time()``): several processes read them.
5. The file says what it is: ``PRAGMA application_id`` marks a layer file and
   ``PRAGMA user_version`` its schema version.  Opening refuses, with an error naming the
   path and the cause, a missing directory, an unwritable file or directory, a file that
   is not SQLite, a SQLite file of another application, and a schema newer than this code.
6. A connection that an event loop uses itself (:func:`for_event_loop`) never waits:
   :func:`try_once` runs a call once and, if another connection holds the write lock,
   rolls it back and returns :data:`BUSY` so that the caller retries in a worker thread
   with :func:`call`.
7. No commit checkpoints (``wal_autocheckpoint = 0`` on every connection that writes):
   SQLite's own checkpoint on commit runs inside the commit, so a claim that happened to
   push the WAL past 1,000 pages held its messages for the checkpoint's two fsyncs
   (13 to 16 ms, every ~145 messages in ``bench/xproc.py``).  The lease thread copies the WAL
   back with :func:`checkpoint`, which waits for nobody and makes nobody wait unless the
   WAL has outgrown :data:`WAL_SIZE_LIMIT`.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, Final, NamedTuple, ParamSpec, TypeVar

from ._errors import ChannelFull, LayerBusy, LayerFileError
from ._wire import decode

__all__ = [
    "APPLICATION_ID",
    "BUSY",
    "Busy",
    "Census",
    "FileIdentity",
    "PATIENCE",
    "SCHEMA_VERSION",
    "LayerBusy",
    "LayerFileError",
    "Owner",
    "PruneReport",
    "call",
    "checkpoint",
    "connect",
    "file_identity",
    "for_event_loop",
    "replaced",
    "try_once",
]

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_VERSION: Final = 1
APPLICATION_ID: Final = 0x494C_434B  # "ILCK"
BUSY_TIMEOUT_MS: Final = 5000
PATIENCE: Final = 30.0
CLAIM_BATCH: Final = 500
CHECKPOINT_WAIT_MS: Final = 100
WAL_SIZE_LIMIT: Final = 32 << 20  # bytes the WAL file is cut back to when it starts afresh
FILE_MODE: Final = 0o600  # a new layer file: its owner's only

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS processes (
        id TEXT PRIMARY KEY,
        incarnation TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started REAL NOT NULL,
        lease_until REAL NOT NULL,
        grace REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS memberships (
        grp TEXT NOT NULL,
        channel TEXT NOT NULL,
        owner TEXT,
        joined REAL NOT NULL,
        PRIMARY KEY (grp, channel)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS memberships_by_channel ON memberships (channel)",
    "CREATE INDEX IF NOT EXISTS memberships_by_owner ON memberships (owner) WHERE owner IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        owner TEXT,
        expires REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_channel ON messages (channel, id, expires)",
    "CREATE INDEX IF NOT EXISTS messages_by_owner ON messages (owner, id) WHERE owner IS NOT NULL",
)
_DROPS_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS drops (
        channel TEXT PRIMARY KEY,
        owner TEXT,
        dropped INTEGER NOT NULL,
        reported INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS drops_by_owner ON drops (owner) WHERE dropped > reported",
)
_WATCHES_SCHEMA: Final = (
    # Watches of channels owned by another process (or named), so the owner's close and
    # the owner's death reach the watcher: a close marks the rows ``gone``; a watched
    # channel whose owner has no row any more (pruned) is gone with reason ``lease``.
    """CREATE TABLE IF NOT EXISTS watches (
        channel TEXT NOT NULL,
        watcher TEXT NOT NULL,
        owner TEXT,
        gone TEXT,
        PRIMARY KEY (channel, watcher)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS watches_by_watcher ON watches (watcher)",
    # Channels of processes closed lately, so a watch that begins after the close is told too.
    """CREATE TABLE IF NOT EXISTS closed (
        channel TEXT PRIMARY KEY,
        at REAL NOT NULL
    ) WITHOUT ROWID""",
)
_HISTORY_SCHEMA: Final = (
    # Group histories (layers/_sqlite_history.py): a group's epoch and latest offset, and
    # the messages it keeps.
    """CREATE TABLE IF NOT EXISTS history_streams (
        grp TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        latest INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS history (
        grp TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (grp, seq)
    ) WITHOUT ROWID""",
)
CLOSED_KEPT: Final = 600.0
"""Seconds a closed process channel is remembered for watches that begin after its close."""
_TABLES: Final = frozenset({"processes", "memberships", "messages"})
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of *exc* (0 for one raised by Python code, with no code)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


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


# -- opening ---------------------------------------------------------------------------------


def _unwritable(path: Path, exc: BaseException) -> PermissionError:
    return PermissionError(
        errno.EACCES,
        f"cannot write the layer file {str(path)!r}: the file or its directory is read-only "
        f"(SQLite also creates {path.name}-wal and {path.name}-shm beside it) ({exc})",
        str(path),
    )


def _not_a_layer(path: Path, why: str) -> LayerFileError:
    return LayerFileError(f"{str(path)!r} is not a usable interlock layer file: {why}")


def connect(path: str | os.PathLike[str], *, create: bool = True, read_only: bool = False) -> sqlite3.Connection:
    """Open (and with *create*, initialise) the layer file at *path*; raise clearly if unusable.

    The connection is in autocommit mode (transactions are explicit), WAL, and may be
    used from any thread as long as one thread uses it at a time (:func:`call` sees to it).
    """
    path = Path(path).absolute()
    if not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        msg = f"cannot open the layer file {str(path)!r}: its directory {str(path.parent)!r} {what}"
        raise FileNotFoundError(errno.ENOENT, msg, str(path.parent))
    if path.is_dir():
        msg = f"the layer file {str(path)!r} is a directory"
        raise IsADirectoryError(errno.EISDIR, msg, str(path))
    if not create and not path.exists():
        msg = f"there is no layer file at {str(path)!r}"
        raise FileNotFoundError(errno.ENOENT, msg, str(path))
    if create and not read_only:
        _create_private(path)
    mode = "ro" if read_only else ("rwc" if create else "rw")
    try:
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode={mode}",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
    except sqlite3.OperationalError as exc:
        raise _unwritable(path, exc) from exc
    try:
        _prepare(conn, path, create=create and not read_only, read_only=read_only)
    except BaseException:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """Create *path*, if missing, readable and writable by its owner only.

    Messages wait in the file: other users of the machine have no business reading them.
    SQLite gives the ``-wal`` and ``-shm`` files the mode of the file; to share the layer
    with another user, change the file's group and mode (SQLite keeps them).
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        pass  # an existing file (or one another process just created) keeps its mode
    except PermissionError as exc:
        raise _unwritable(path, exc) from exc


def _prepare(conn: sqlite3.Connection, path: Path, *, create: bool, read_only: bool) -> None:
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        app_id, version = _header(conn)
        if app_id == 0 and version == 0 and create:
            _initialise(conn, path)
            app_id, version = _header(conn)
        elif not read_only:
            _set_wal(conn)
        _check_header(conn, path, app_id, version)
        if not read_only:
            tables = _table_names(conn)
            if not {"drops", "watches", "closed", "history", "history_streams"} <= set(tables):  # an older file
                with _writing(conn):
                    for statement in (*_DROPS_SCHEMA, *_WATCHES_SCHEMA, *_HISTORY_SCHEMA):
                        conn.execute(statement)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # rule 7
            conn.execute("BEGIN IMMEDIATE")  # a write, rolled back: proves the file is writable
            try:
                conn.execute(f"PRAGMA user_version = {version}")
            finally:
                conn.execute("ROLLBACK")
        # From now on a busy file raises at once and call() retries with short sleeps:
        # SQLite's own busy handler sleeps at least 1 ms, an eternity next to a commit.
        conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.DatabaseError as exc:
        code = _primary_code(exc)
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            raise _not_a_layer(path, f"it is not a SQLite database, or it is corrupt ({exc})") from exc
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH):
            raise _unwritable(path, exc) from exc
        raise


def _header(conn: sqlite3.Connection) -> tuple[int, int]:
    """``(application_id, user_version)``, read in one statement: one consistent snapshot."""
    app_id, version = conn.execute(
        "SELECT application_id, user_version FROM pragma_application_id(), pragma_user_version()"
    ).fetchone()
    return int(app_id), int(version)


def _table_names(conn: sqlite3.Connection) -> list[str]:
    return sorted(name for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"))


def _set_wal(conn: sqlite3.Connection) -> None:
    # Changing the journal mode needs the file to itself, and SQLite answers "database is
    # locked" at once, without its busy handler, while another process initialises the file.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            break
        except sqlite3.OperationalError as exc:
            if _primary_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if str(mode).lower() != "wal":
        msg = f"SQLite refused WAL mode (journal_mode is {mode!r})"
        raise sqlite3.OperationalError(msg)


def _initialise(conn: sqlite3.Connection, path: Path) -> None:
    others = _table_names(conn)
    if others:
        # Tables and header are committed together: if the header is still blank, the
        # tables are another application's; if not, another process has just initialised
        # the file, between this connection's look at the header and at the tables.
        if _header(conn) != (0, 0):
            return
        raise _not_a_layer(path, f"it is a SQLite database of another application (tables {others})")
    _set_wal(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _header(conn) == (0, 0):  # another process may have initialised it meanwhile
            for statement in (*_SCHEMA, *_DROPS_SCHEMA, *_WATCHES_SCHEMA, *_HISTORY_SCHEMA):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_header(conn: sqlite3.Connection, path: Path, app_id: int, version: int) -> None:
    if app_id != APPLICATION_ID:
        if app_id == 0 and version == 0:
            others = _table_names(conn)
            if others:
                raise _not_a_layer(path, f"it is a SQLite database of another application (tables {others})")
            raise _not_a_layer(path, "it is an empty SQLite database, not initialised by a layer")
        raise _not_a_layer(path, f"it belongs to another application (application_id {app_id:#x})")
    if version > SCHEMA_VERSION:
        raise _not_a_layer(
            path,
            f"its schema version is {version}, written by a newer interlock; this one reads "
            f"versions up to {SCHEMA_VERSION} (upgrade interlock, or use a new file)",
        )
    missing = sorted(_TABLES.difference(_table_names(conn)))
    if missing:
        raise _not_a_layer(path, f"its tables {missing} are missing")


class FileIdentity(NamedTuple):
    """Which file a path named when a process opened it: ``(st_dev, st_ino)`` of it and its ``-shm``."""

    file: tuple[int, int]
    shm: tuple[int, int] | None


def _identity_of(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def file_identity(path: str | os.PathLike[str]) -> FileIdentity:
    """The identity of the layer file at *path*, open in this process (a connection keeps it)."""
    path = Path(path).absolute()
    found = _identity_of(path)
    if found is None:
        msg = f"there is no layer file at {str(path)!r}"
        raise FileNotFoundError(errno.ENOENT, msg, str(path))
    return FileIdentity(found, _identity_of(path.with_name(f"{path.name}-shm")))


def replaced(path: str | os.PathLike[str], identity: FileIdentity) -> str | None:
    """What happened to the file this process opened at *path*, or None if the path still names it.

    While a connection is open the file and its ``-shm`` stay on disk under their inode
    numbers (SQLite deletes the ``-shm`` only when the last connection closes), so a
    different number, or none, means someone deleted or replaced them.
    """
    path = Path(path).absolute()
    now = _identity_of(path)
    if now is None:
        return "the file was deleted"
    if now != identity.file:
        return "the file was deleted and another one now has its name"
    if identity.shm is not None:
        shm = _identity_of(path.with_name(f"{path.name}-shm"))
        if shm is None:
            return f"its shared-memory file {path.name}-shm was deleted"
        if shm != identity.shm:
            return f"its shared-memory file {path.name}-shm was deleted and another one now has its name"
    return None


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
            if _primary_code(exc) not in _BUSY:
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

    For a connection set up by :func:`for_event_loop`.  A failed call is rolled back, so
    *fn* must be safe to run again (every write here is one statement or one transaction).
    """
    try:
        return fn(conn, *args, **kwargs)
    except sqlite3.OperationalError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if _primary_code(exc) in _BUSY:
            return BUSY
        raise
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def for_event_loop(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Set *conn* up for :func:`try_once` on an event loop: it never runs a checkpoint itself."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # every writing connection has it (rule 7), this one above all
    return conn


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL back into the file, so that the next write starts it afresh (rule 7).

    A passive checkpoint: it holds no lock a reader or a writer waits for, so its fsyncs
    delay nobody's message.  When it gets to the end, the next commit starts the WAL
    again from its beginning, if no reader is using it at that moment.  Under a steady
    stream of writes and reads that may never happen, and the WAL file grows (by 16 KiB a
    message: 170 MB over ``bench/xproc.py``'s burst of 10,000); once the file is past
    :data:`WAL_SIZE_LIMIT` (it has not started afresh since it got there), a restarting
    checkpoint waits up to :data:`CHECKPOINT_WAIT_MS` for the writer of the moment and for
    readers of older snapshots, and writers that come meanwhile wait for it: a WAL of
    41 to 59 MB at most over that burst, at the price of a few milliseconds of a stream
    that fast.  Returns whether it got to the end (if not, what it copied stays copied).
    """
    (_, frames, copied) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    (_, _, file) = conn.execute("PRAGMA database_list").fetchone()
    try:
        size = os.path.getsize(f"{file}-wal")  # past the limit: not started afresh since it got there
    except OSError:
        size = 0
    if size <= WAL_SIZE_LIMIT:
        return bool(frames == copied)  # if not, the next checkpoint carries on from here
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
    try:
        (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        conn.execute("PRAGMA busy_timeout = 0")
    return bool(busy == 0)


@contextmanager
def _writing(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- processes -------------------------------------------------------------------------------


def register(conn: sqlite3.Connection, me: Owner, memberships: Iterable[tuple[str, str]] = ()) -> None:
    """Insert (or take over) *me*'s row, and restore its channels' *memberships*."""
    with _writing(conn):
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
    with _writing(conn):
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
    with _writing(conn):
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
        if "drops" in _table_names(conn):  # a file no process has opened since drops were counted
            dropped = dict(conn.execute("SELECT owner, SUM(dropped) FROM drops GROUP BY owner").fetchall())
    finally:
        conn.execute("COMMIT")
    rows = [(owner, memberships.get(owner.id, 0), queued.get(owner.id, 0)) for owner in owners]
    return Census(rows, memberships.get(None, 0), queued.get(None, 0), dropped)


# -- groups ----------------------------------------------------------------------------------


def group_add(conn: sqlite3.Connection, group: str, channel: str, owner: Owner | None, now: float) -> None:
    """Add or renew a membership; *owner* (a ``!`` channel's) gets a row if it has none."""
    with _writing(conn):
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
    with _writing(conn):
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
    with _writing(conn):
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


def group_members(conn: sqlite3.Connection, group: str, joined_after: float) -> list[tuple[str, str | None]]:
    """``(channel, owner)`` of each member of *group* that joined after *joined_after*."""
    return conn.execute(
        "SELECT channel, owner FROM memberships WHERE grp = ? AND joined > ?", (group, joined_after)
    ).fetchall()


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
    with _writing(conn):
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
    with _writing(conn):
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
    with _writing(conn):
        conn.executemany(_COUNT_DROP, [(channel, owner, count, count) for channel, count in counts.items()])


def take_drops(conn: sqlite3.Connection, owner: str) -> list[tuple[str, int]]:
    """The drops for *owner*'s channels it has not heard of yet, marked as heard of now."""
    rows: list[tuple[str, int]] = conn.execute(
        "SELECT channel, dropped - reported FROM drops WHERE owner = ? AND dropped > reported", (owner,)
    ).fetchall()
    if rows:
        with _writing(conn):
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
    local, stored = split_members(group_members(conn, group, joined_after), local_owner, capacity_for)
    full = enqueue(conn, stored, body, now=now, expires=expires, strict=False) if stored else []
    return local, [channel for channel, _, _ in stored], full


def split_members(
    members: Iterable[tuple[str, str | None]], local_owner: str | None, capacity_for: Callable[[str], int]
) -> tuple[list[str], list[tuple[str, str | None, int]]]:
    """Split ``(channel, owner)`` pairs into *local_owner*'s channels and :func:`enqueue` targets."""
    local: list[str] = []
    stored: list[tuple[str, str | None, int]] = []
    for channel, owner in members:
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
    with _writing(conn):
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
