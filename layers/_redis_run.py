"""The background machinery of :class:`~interlock.layers.RedisChannelLayer`: one start of the
layer on its home event loop (:class:`Run`), and the three tasks that run while it lasts.

Rules:

1. **One run per start.**  :meth:`Run.main` is the home loop's background task: it enters
   the client (and the lean hot-path connection, :mod:`._redis_hot`), registers this
   process, says it is ready (or why not: :attr:`Run.error`, raised to the caller that
   started it), and runs the tasks below until :attr:`Run.stop` is set.  A closing run
   unregisters this process; one whose loop ends leaves its lease to run out.
2. **The pump** reads this process's inbox (:meth:`~._redis_store.Store.take_inbox`:
   ``BLMPOP``, up to :data:`BATCH` entries per round trip, blocking up to :data:`WAIT`
   seconds) straight into the in-memory queues (:mod:`._redis_local`): a send's entry
   (``m``) to its channel, a ``group_send``'s entry (``g``) decoded once and copied to
   each member named, a full member's copy dropped (counted here, written by the
   settler).  It ends on an entry of its own (:meth:`~._redis_store.Store.wake`), so no
   ``BLMPOP`` is cut off midway.
3. **The settler** subtracts what reached the queues from the senders' in-flight counts,
   one script call for what arrived within :data:`SETTLE_AFTER`, off the pump's path, and
   writes this process's drops.  Counts it could not write are kept for the next call.
4. **The lease task** renews the lease every ``lease / 3`` seconds; when Redis has lost
   the registration (restarted empty, flushed, or this process was pruned after a long
   pause) it registers again with every membership this process keeps
   (:class:`~._core.OwnMemberships`).  It then writes the drops, redoes the discards and
   closes that failed while Redis was away, and prunes dead processes.
5. **Losing Redis is told once.**  A task whose command raises
   :class:`~interlock.layers.LayerUnavailable` retries (the pump and the settler after
   :data:`RETRY`, growing); the layer's ``on_availability`` hears the first failure and
   the first answer after it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Final

import anyio
import anyio.lowlevel

from ._core import owner_of
from ._errors import LayerUnavailable
from ._redis_client import root_cause, start_error
from ._redis_hot import make_hot
from ._redis_peers import forget_process, mark_closed_all
from ._redis_store import Owner, Store
from ._validation import copy_message, message_size
from ._wire import decode

if TYPE_CHECKING:
    from ._redis import RedisChannelLayer

__all__ = ["BATCH", "RETRY", "SETTLE_AFTER", "WAIT", "Run"]

logger = logging.getLogger("interlock.layers.redis")

BATCH: Final = 512  # inbox entries the pump takes per round trip
WAIT: Final = 1.0  # seconds one BLMPOP blocks before the pump looks around
SETTLE_AFTER: Final = 0.005  # seconds the settler gathers counts before one call settles them
RETRY: Final = (0.05, 1.0)  # seconds between tries of a task that lost Redis (first, at most)


class Run:
    """One start of the layer: its client's lifetime on the home loop, and its tasks.

    :param layer: the layer it serves (its queues, memberships, drops and availability).
    :param home: the home thread's ident.
    """

    def __init__(self, layer: RedisChannelLayer, home: int) -> None:
        self.layer = layer
        self.home = home
        self.ready = anyio.Event()
        self.stop = anyio.Event()
        self.done = anyio.Event()
        self.settle = anyio.Event()
        self.scope = anyio.CancelScope()
        self.store: Store | None = None
        self.error: BaseException | None = None
        self.closing = False

    # -- the run -----------------------------------------------------------------------------

    async def main(self) -> None:
        """The home loop's background task: the client's lifetime, the pump, the settler, the lease."""
        layer = self.layer
        try:
            with self.scope:
                async with layer._make_client() as client:
                    hot = make_hot(client, layer._url, layer.timeout, cluster=layer.cluster)
                    try:
                        await self._serve(Store(client, layer._keys, layer.address, layer.timeout, hot))
                    finally:
                        with anyio.CancelScope(shield=True):
                            await hot.aclose()
        except Exception as exc:  # reported to the caller that started it, or logged
            cause = root_cause(exc)
            if not self.ready.is_set():
                self.error = start_error(layer.address, cause)
                if self.error is not cause:  # (a LayerUnavailable is raised as it is: not its own cause)
                    self.error.__cause__ = cause
            else:
                logger.error("%r stopped: %s", layer, cause, exc_info=cause)
        finally:
            self.ready.set()
            self.done.set()
            if layer._run is self:
                layer._run = None
                layer._local.wake_all()

    async def _serve(self, store: Store) -> None:
        """Register, run the pump, the settler and the lease until the layer stops."""
        layer = self.layer
        await store.call("PING", store.client.ping)
        await store.prune(time.time(), layer._process)
        await store.register(self._owner(), layer._own.snapshot())
        layer._registered = True
        self.store = store
        self.ready.set()
        async with anyio.create_task_group() as tasks:
            pumped = anyio.Event()
            tasks.start_soon(self._pump, store, pumped)
            tasks.start_soon(self._settler, store)
            tasks.start_soon(self._keeper, store)
            await self.stop.wait()
            await self._end_pump(store, pumped)
            tasks.cancel_scope.cancel()
        if self.closing:
            with anyio.CancelScope(shield=True):
                await self._unregister(store)

    async def _unregister(self, store: Store) -> None:
        try:
            await mark_closed_all(store, self.layer._process)
            await store.unregister(self.layer._process)
        except LayerUnavailable as exc:
            logger.warning(
                "%r closed without reaching Redis (%s): its channels are pruned after its grace", self.layer, exc
            )

    def _owner(self) -> Owner:
        layer = self.layer
        return Owner(layer._process, os.getpid(), socket.gethostname(), time.time() + layer.lease, layer.grace)

    # -- availability (rule 5) -----------------------------------------------------------------

    def _lost(self, what: str, exc: LayerUnavailable) -> None:
        layer = self.layer
        if layer._unavailable is not None:
            return
        logger.warning("%r: %s failed, retrying: %s", layer, what, exc)
        layer._unavailable = str(exc)
        self._tell(layer._unavailable)

    def _found(self) -> None:
        layer = self.layer
        if layer._unavailable is None:
            return
        logger.warning("%r: Redis at %s answers again", layer, layer.address)
        layer._unavailable = None
        self._tell(None)

    def _tell(self, reason: str | None) -> None:
        layer = self.layer
        if layer._on_availability is not None:
            try:
                layer._on_availability(reason)
            except Exception:
                logger.exception("%r: on_availability(%r) failed", layer, reason)

    # -- the pump (rule 2) ---------------------------------------------------------------------

    async def _end_pump(self, store: Store, pumped: anyio.Event) -> None:
        """Wake the pump's ``BLMPOP`` with an entry of its own, so no command is cut off midway."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.layer.timeout):
            try:
                await store.wake(self.layer._process)
            except LayerUnavailable:
                return
            await pumped.wait()

    async def _pump(self, store: Store, pumped: anyio.Event) -> None:
        try:
            await self._pump_until_stopped(store)
        finally:
            pumped.set()

    async def _pump_until_stopped(self, store: Store) -> None:
        layer = self.layer
        retry = RETRY[0]
        queues = layer._local
        while not self.stop.is_set():
            try:
                entries = await store.take_inbox(layer._process, WAIT, BATCH)
            except LayerUnavailable as exc:
                self._lost("waiting for messages", exc)
                await anyio.sleep(retry)
                retry = min(retry * 2, RETRY[1])
                continue
            retry = RETRY[0]
            if layer._unavailable is not None:
                self._found()
            for entry in entries:
                kind, rest = entry[:1], entry[1:]
                if kind == b"g":
                    self._deliver_group(rest)
                elif kind == b"m":
                    channel, expires, body = rest.split(b"\x00", 2)
                    queues.deliver(channel.decode(), int(expires) / 1000, decode(body.decode()))
            if entries:
                await anyio.lowlevel.checkpoint()

    def _deliver_group(self, entry: bytes) -> None:
        """One ``group_send``'s message for several of our channels: decoded once, a copy each."""
        expires, group, names, body = entry.decode().split("\x00", 3)
        now = time.time()
        left = int(expires) / 1000 - now
        if left <= 0:
            return  # expired on the way, for every member
        expires_at = time.monotonic() + left
        message = decode(body)
        size = message_size(message)
        *others, last = names.split(" ")
        deliver = self.layer._local.deliver_copy
        for name in others:
            if not deliver(name, expires_at, copy_message(message), size):
                self._dropped(group, name)
        if not deliver(last, expires_at, message, size):
            self._dropped(group, last)

    def _dropped(self, group: str, channel: str) -> None:
        """A copy for our full *channel* was dropped: count it here and (soon, by the settler) in Redis."""
        layer = self.layer
        layer._drops.seen(group, channel)
        layer._drops.count(channel)
        layer._pending_drops.add(channel)
        layer._wake_settler()

    # -- the settler (rule 3) ------------------------------------------------------------------

    async def _settler(self, store: Store) -> None:
        layer = self.layer
        queues = layer._local
        retry = RETRY[0]
        while True:
            await self.settle.wait()
            await anyio.sleep(SETTLE_AFTER)  # one call settles what arrives meanwhile
            self.settle = anyio.Event()
            counts, queues.settled = queues.settled, {}
            try:
                if counts:
                    await store.settle(layer._process, counts)
                    counts = {}
                await layer._write_drops(store.count_drops)
                retry = RETRY[0]
            except LayerUnavailable as exc:
                for channel, count in counts.items():
                    queues.settled[channel] = queues.settled.get(channel, 0) + count
                self._lost("settling counts", exc)
                await anyio.sleep(retry)
                retry = min(retry * 2, RETRY[1])
                self.settle.set()

    # -- the lease (rule 4) --------------------------------------------------------------------

    async def _keeper(self, store: Store) -> None:
        while True:
            await anyio.sleep(self.layer.lease / 3)
            try:
                await self._beat(store)
            except LayerUnavailable as exc:
                self._lost("renewing the lease", exc)
                continue
            self._found()

    async def _beat(self, store: Store) -> None:
        """Renew the lease (registering again if Redis lost it), write drops, then prune."""
        layer = self.layer
        me = self._owner()
        if not await store.renew(me):
            restored = layer._own.snapshot()
            await store.register(me, restored)
            logger.warning(
                "%r: Redis had lost this process's registration (restarted, flushed, or it was pruned "
                "after a pause longer than lease + grace); registered again and restored %d memberships",
                layer,
                len(restored),
            )
        await layer._write_drops(store.count_drops)
        for group, channel in sorted(layer._undone, key=str):  # what failed while Redis was away
            if group is None:
                await store.close_channel(channel, owner_of(channel))
            else:
                await store.group_discard(group, channel, owner_of(channel))
            layer._undone.discard((group, channel))
        report = await store.prune(time.time(), layer._process)
        if report.processes:
            await forget_process(store, report.processes)
            logger.info(
                "pruned dead layer processes %s: %d memberships", ", ".join(report.processes), report.memberships
            )
