"""Leases: how a layer instance says it is alive, and how the dead are pruned.

Theory of operation: a started :class:`~interlock.layers.SQLiteChannelLayer` owns a row in
the ``processes`` table whose ``lease_until`` a daemon thread (:class:`LeaseKeeper`, with
its own connection) pushes forward every ``lease / 3`` seconds.  The thread lives exactly
as long as the layer is started in a live process, and it does not depend on any event
loop: a busy or blocked loop does not make the process look dead, a SIGKILL does.

On each beat the keeper also prunes: every process whose lease ended more than its grace
ago loses its row, its ``!`` channels' memberships and their queued messages (see
:mod:`._sqlite_store`), and expired messages are deleted.  Every live process does this,
so whichever notices first cleans up after the dead; the ``layer prune`` command does the
same once.

The keeper also checkpoints the WAL: on each beat, and soon after the layer asks
(:meth:`LeaseKeeper.request_checkpoint`, every 1,000 calls), since no connection
checkpoints on commit (:mod:`._sqlite_file`, rule 3: a checkpoint ends with fsyncs, and
one run inside a claim held its messages for them).

Before anything else, each beat checks that the path still names the file this process
opened (:func:`~._sqlite_file.replaced`: the inode numbers of the file and its ``-shm``).
If someone deleted or replaced them, processes started since use another file, and this
one and they would lose each other's messages both ways without a word: the keeper logs
an ERROR naming the path, stops beating, and hands the layer a
:class:`~interlock.layers.LayerFileReplaced` that every later call raises.

If this process's own row is found missing or replaced (it stalled longer than its lease
and grace, and another process pruned it), the keeper registers it again and restores the
memberships of its own channels from :class:`OwnMemberships`, the in-memory copy the
layer keeps of them, so a long pause costs the messages queued meanwhile, not the groups.
The warning says how long it really was since the last renewal, and whether that was long
enough to be pruned at all.

The keeper also writes the drops the layer counted for its own channels in memory
(:class:`~._core.PendingDrops`) to the file, so other processes and the CLI see them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import _sqlite_file as dbfile
from . import _sqlite_store as store
from ._core import OwnMemberships, PendingDrops
from ._errors import LayerFileReplaced

__all__ = ["LeaseKeeper"]

logger = logging.getLogger("interlock.layers.sqlite")


def flush_drops(conn: sqlite3.Connection, owner: str, pending: PendingDrops) -> None:
    """Write *pending* drops of *owner*'s channels to the file (they are kept if that fails)."""
    counts = pending.take()
    if not counts:
        return
    try:
        store.call(conn, store.add_drops, owner, counts)
    except BaseException:
        pending.put_back(counts)
        raise


class LeaseKeeper:
    """Renews one process's lease and prunes dead processes, in a daemon thread."""

    def __init__(
        self,
        path: Path,
        me: store.Owner,
        *,
        lease: float,
        group_expiry: float | None,
        memberships: OwnMemberships,
        identity: dbfile.FileIdentity,
        drops: PendingDrops,
        on_replaced: Callable[[LayerFileReplaced], None],
    ) -> None:
        self.path = path
        self.me = me
        self.lease = lease
        self.group_expiry = group_expiry
        self.memberships = memberships
        self.identity = identity
        self.drops = drops
        self.on_replaced = on_replaced
        self.renewed = me.lease_until - lease  # wall-clock time of the last renewal
        self._wake = threading.Event()
        self._stopping = False
        self._checkpoint_wanted = False
        self._thread = threading.Thread(target=self._run, name=f"interlock-lease-{me.id}", daemon=True)

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it ends within one SQLite call); safe from any thread."""
        self._stopping = True
        self._wake.set()

    def request_checkpoint(self) -> None:
        """Ask the thread to checkpoint the WAL now rather than at the next beat; safe from any thread."""
        self._checkpoint_wanted = True
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        conn = None
        period = self.lease / 3
        next_beat = time.monotonic() + period
        try:
            while True:
                self._wake.wait(max(0.0, next_beat - time.monotonic()))
                self._wake.clear()
                if self._stopping:
                    break
                now = time.monotonic()
                beat = now >= next_beat
                if beat:
                    next_beat = now + period
                try:
                    if beat and self.check_file():
                        break
                    if conn is None:
                        conn = dbfile.connect(self.path, create=False)
                    if beat:
                        self.beat(conn)
                    if beat or self._checkpoint_wanted:
                        self._checkpoint_wanted = False
                        store.call(conn, dbfile.checkpoint)
                except Exception:
                    logger.exception("lease of layer process %s on %s: beat failed", self.me.id, self.path)
        finally:
            if conn is not None:
                conn.close()

    def check_file(self) -> bool:
        """Whether the path no longer names the file this process opened (then say so, loudly)."""
        how = dbfile.replaced(self.path, self.identity)
        if how is None:
            return False
        msg = (
            f"the layer file was replaced or deleted while this process used it: {str(self.path)!r} "
            f"({how}); processes started since use another file, and messages between them and this "
            f"process (layer process {self.me.id}) would be lost both ways. Every call of this layer "
            "now raises LayerFileReplaced: restart this process (or close the layer and use it again)"
        )
        logger.error("%s", msg)
        self.on_replaced(LayerFileReplaced(msg))
        return True

    def beat(self, conn: sqlite3.Connection) -> None:
        """Renew the lease (re-registering if it was lost), write drops, then prune."""
        now = time.time()
        if not store.call(conn, store.renew, self.me, now + self.lease):
            if self.check_file():  # not pruned: on a file that is not ours any more
                return
            restored = self.memberships.snapshot()
            store.call(conn, store.register, self.me._replace(lease_until=now + self.lease), restored)
            silent = now - self.renewed
            limit = self.lease + self.me.grace
            why = (
                f"it had not renewed its lease for {silent:.1f} s, longer than lease + grace ({limit:.1f} s)"
                if silent > limit
                else f"although it renewed its lease {silent:.1f} s ago, within lease + grace ({limit:.1f} s): "
                "something else deleted it (a reset of the file, or another process's clock ahead)"
            )
            logger.warning(
                "layer process %s on %s found its lease gone (%s); registered again and restored %d memberships",
                self.me.id,
                self.path,
                why,
                len(restored),
            )
        self.renewed = now
        flush_drops(conn, self.me.id, self.drops)
        report = store.call(conn, store.prune, now)
        if report.processes:
            logger.info(
                "pruned dead layer processes %s on %s: %d memberships, %d messages",
                ", ".join(report.processes),
                self.path,
                report.memberships,
                report.messages,
            )
        if self.group_expiry is not None:
            store.call(conn, store.expire_memberships, now - self.group_expiry)
