"""The layer file of :class:`~interlock.layers.SQLiteChannelLayer`: its schema, opening it,
whether it is still the file a process opened, and checkpointing its WAL.

Everything here is synchronous and runs in worker threads.  What runs on an open
connection (the queries, and :func:`~._sqlite_store.call` that retries them while the
file is locked) is :mod:`._sqlite_store`.

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
   before it existed get it (and the ``watches``, ``closed`` and history tables) when a
   process opens them for writing.
2. The file says what it is: ``PRAGMA application_id`` marks a layer file and
   ``PRAGMA user_version`` its schema version.  Opening refuses, with an error naming the
   path and the cause, a missing directory, an unwritable file or directory, a file that
   is not SQLite, a SQLite file of another application, and a schema newer than this code.
3. No commit checkpoints (``wal_autocheckpoint = 0`` on every connection that writes):
   SQLite's own checkpoint on commit runs inside the commit, so a claim that happened to
   push the WAL past 1,000 pages held its messages for the checkpoint's two fsyncs
   (13 to 16 ms, every ~145 messages in ``bench/xproc.py``).  The lease thread copies the WAL
   back with :func:`checkpoint`, which waits for nobody and makes nobody wait unless the
   WAL has outgrown :data:`WAL_SIZE_LIMIT`.
4. A path may come to name another file (deleted, replaced): :func:`file_identity` notes
   which file a process opened, :func:`replaced` says what happened to it since.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, NamedTuple

from ._errors import LayerFileError

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "WAL_SIZE_LIMIT",
    "FileIdentity",
    "LayerFileError",
    "checkpoint",
    "connect",
    "file_identity",
    "for_event_loop",
    "primary_code",
    "replaced",
    "table_names",
    "writing",
]

SCHEMA_VERSION: Final = 1
APPLICATION_ID: Final = 0x494C_434B  # "ILCK"
BUSY_TIMEOUT_MS: Final = 5000
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
_TABLES: Final = frozenset({"processes", "memberships", "messages"})


def primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of *exc* (0 for one raised by Python code, with no code)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


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
    used from any thread as long as one thread uses it at a time (:func:`~._sqlite_store.call`
    sees to it).
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
            tables = table_names(conn)
            if not {"drops", "watches", "closed", "history", "history_streams"} <= set(tables):  # an older file
                with writing(conn):
                    for statement in (*_DROPS_SCHEMA, *_WATCHES_SCHEMA, *_HISTORY_SCHEMA):
                        conn.execute(statement)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # rule 3
            conn.execute("BEGIN IMMEDIATE")  # a write, rolled back: proves the file is writable
            try:
                conn.execute(f"PRAGMA user_version = {version}")
            finally:
                conn.execute("ROLLBACK")
        # From now on a busy file raises at once and call() retries with short sleeps:
        # SQLite's own busy handler sleeps at least 1 ms, an eternity next to a commit.
        conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.DatabaseError as exc:
        code = primary_code(exc)
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


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The names of the tables in the file, sorted."""
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
            if primary_code(exc) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if str(mode).lower() != "wal":
        msg = f"SQLite refused WAL mode (journal_mode is {mode!r})"
        raise sqlite3.OperationalError(msg)


def _initialise(conn: sqlite3.Connection, path: Path) -> None:
    others = table_names(conn)
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
            others = table_names(conn)
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
    missing = sorted(_TABLES.difference(table_names(conn)))
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


def for_event_loop(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Set *conn* up for :func:`~._sqlite_store.try_once` on an event loop: it never runs a checkpoint itself."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # every writing connection has it (rule 3), this one above all
    return conn


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL back into the file, so that the next write starts it afresh (rule 3).

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
def writing(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block as one ``BEGIN IMMEDIATE`` transaction: committed, or rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
