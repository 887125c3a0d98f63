"""A channel layer on Redis: durable, listable groups shared by processes on many machines.

Rules:

1. **Groups live in Redis.**  ``group_add`` writes a membership (a hash per group, see
   :mod:`._redis_keys`), so every process on every machine can list it (``group_members``,
   ``groups``).
2. **Channels belong to processes.**  ``new_channel()`` names (``PREFIX.PROCESS!TOKEN``)
   belong to the layer instance that made them, which holds a lease in Redis while it
   runs: a task renews it every ``lease / 3`` seconds.  When the layer closes, its
   channels' memberships go at once; when its process dies (SIGKILL, a machine lost) they
   go ``grace`` seconds after its lease ends, pruned by whichever live process looks
   first (every one does, on each beat).  *Named* channels (no ``!``) belong to nobody:
   their memberships last until discarded, and any process may receive from them.
3. **Local fast path.**  A message from this process to one of its own channels never
   touches Redis: it goes to an in-memory queue (:mod:`._redis_local`), as in
   :class:`~interlock.layers.InMemoryChannelLayer`.
4. **Capacity and expiry** hold for each queue.  A sender to another process's channel
   gets :class:`~interlock.layers.ChannelFull` when ``capacity`` messages sent to it
   through Redis have not reached its queue yet; a named channel's queue is a Redis list
   checked the same way.  ``group_send`` skips (counts and logs) full members.
5. **Redis down is an error, never a hang.**  Every command is bounded by ``timeout``
   and raises :class:`~interlock.layers.LayerUnavailable` naming the address; a layer
   that cannot reach Redis when it starts says so at once.  After Redis comes back (even
   empty: restarted without persistence), the next beat of the lease task finds its
   registration gone and writes it again with every membership of this process's
   channels, and those of named channels it added and did not discard: within
   ``lease / 3`` seconds of Redis answering again.  Messages that were in Redis then are
   lost.

Theory of operation (delivery): each process has one *inbox*, a Redis list.  A send to
another process's channel is one script call (``SEND_ONE``: check the channel's
in-flight count, bump it, push the message on the owner's inbox), one round trip.  A
``group_send`` reads the group (``HKEYS``) and pushes *one entry per process that has
members*, carrying the body once and that process's member list (``SEND_GROUP``: an
``RPUSH``, whatever the number of members), the owners' entries pushed concurrently.
In each process one *pump* task blocks on ``BLMPOP`` on its inbox and takes up to
:data:`~._redis_run.BATCH` entries per round trip, straight into the in-memory queues:
a send's message is held back, in order, while its queue is full; a group entry is
decoded once and copied into each member's queue, and a member found full there misses
it (a drop, counted here and written to Redis by the settler), as a local
``group_send`` does.  Watched channels notify their actors at once.  A second task, the
*settler*, subtracts what reached the queues from the in-flight counts: one script call
for what arrived within :data:`~._redis_run.SETTLE_AFTER`, off the pump's path (both
tasks, and the lease's, are in :mod:`._redis_run`).  So a message between processes
costs the sender one round trip and the receiver a share of one, against
channels_redis's eight.  Redis Streams were not needed: nothing is re-read, and a
consumer group's bookkeeping (XACK per message) would add round trips the inbox does not
need.

The hot path (the send scripts, the group lookup, ``BLMPOP``, settling) goes through a
lean pipelined connection of ours (:mod:`._redis_resp`) when the layer has a plain
``redis://`` or ``unix://`` URL: commands issued while another is being written go out
in the same write (*auto-pipelining*), and each caller still awaits its own reply, so a
send never returns before Redis has queued it.  coredis does everything else, and the
hot path too on a Cluster, over TLS or with a client given (see :mod:`._redis_hot`).

Measured (``bench/redis_layer.py`` and ``--concurrency``, this 2-core machine shared
with the senders, the receivers, Redis and other work; runs at load average 3 or less):
p99 2.0-5.4 ms from process to process; 1,000 members in 4 processes reached in 12-18 ms
(p50, asyncio; 14-27 ms with every process on trio) against 25-34 ms when the script
queued a copy per member (at load 5: 28-34 ms).  What remains is the receivers' CPU, ~6 ms
a round in each process when 250 tasks wait in ``receive()``.  One sender awaiting each send:
2,600-7,300 messages/s on asyncio, 3,000-6,000 on trio, against channels_redis PubSub's
3,700-8,000 (which awaits no delivery and loses messages while a consumer is away):
0.4-1.0x, not the 3x asked.  The bound, measured in the same runs: one awaited ``PING``
on a bare anyio socket makes 15,000-27,000 round trips a second (``redis-benchmark -c 1
-t ping``, in C: 17,700), so a sender that awaits each reply cannot pass ~17,000/s here
whatever the client; our connection reaches 8,700-28,000 ``PING``/s (coredis
3,300-5,300), and a send adds ~50 us of Python to it (checking and encoding the message,
the script's arguments, the timeout scope: ``layer.send`` 6,800/s against 10,900/s for
the bare script call).  3x PubSub from one sender would take 24,000 awaited sends a
second, a 41 us loop: faster than a C client's round trip on this machine.  Concurrent
senders in one process share writes: 4 tasks 4,900-12,500/s, 16 tasks 9,600-20,300/s.

Where the code is: this module is the store adapter over :class:`~._store_layer.StoreLayer`
(which holds the facade and the routing); :mod:`._redis_run` is one start of the layer and
its tasks, :mod:`._redis_local` the home queues, :mod:`._redis_store` the commands and
scripts (keys: :mod:`._redis_keys`), :mod:`._redis_hot` and :mod:`._redis_resp` the hot
path's connection, :mod:`._redis_peers` the peer watches, :mod:`._redis_history` the
group histories.

The layer belongs to the event loop that started it (its *home*): the client, the pump,
the lease task (one :class:`~._redis_run.Run` per start) and the queues all live there.
When that loop ends, the next loop that uses the layer starts it again.  A forked child
starts as a new process on first use.  Calls from another thread while the home loop
runs raise an error saying so (sync code reaches the layer through the actor's thread
bridge).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Final, final

import anyio
import anyio.lowlevel

from . import _redis_history as history
from ._background import spawn_system_task
from ._core import owner_of
from ._errors import ChannelFull, InvalidChannelName, LayerClosed, LayerUnavailable
from ._history import GroupHistory, HistoryPage, positioned
from ._queues import DEFAULT_CAPACITY_BYTES
from ._redis_client import SCHEMES, describe_client, make_client, redacted
from ._redis_keys import Keys
from ._redis_local import InboxQueues
from ._redis_peers import mark_closed, sync_watches
from ._redis_run import Run
from ._redis_store import Client, Store
from ._store_layer import StoreLayer, check_history
from ._types import Message
from ._validation import require_positive
from ._wire import decode, encode

__all__ = ["RedisChannelLayer"]

logger = logging.getLogger("interlock.layers.redis")

_KEY_PREFIX: Final = re.compile(r"[A-Za-z0-9_.\-:]{1,64}")
_NAMED_POLL: Final = (0.002, 0.1)  # a named channel's receiver looks this often (first, at most)


@final
class RedisChannelLayer(StoreLayer):
    """A channel layer on Redis (or a Redis Cluster), shared by processes on any number of machines.

    :param url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ``coredis.Redis`` / ``coredis.RedisCluster`` client not yet entered (the layer
        enters it when it starts and leaves it when it closes).
    :param prefix: what every key starts with: layers with different prefixes share
        nothing.
    :param cluster: the URL names a node of a Redis Cluster (``coredis.RedisCluster``).
    :param capacity: undelivered messages a channel may hold before ``send`` raises
        :class:`~interlock.layers.ChannelFull`.
    :param expiry: seconds an undelivered message is kept.
    :param group_expiry: seconds a membership lasts unless renewed by ``group_add``; None
        (the default) keeps memberships until discarded or until their channel's process
        is pruned.
    :param channel_capacity: per-channel capacities, keyed by glob patterns.
    :param capacity_bytes: bytes the messages waiting in one of this process's channels
        may hold before more are refused (8 MiB by default; None for no bound).
    :param lease: seconds this process's lease lasts; it is renewed every ``lease / 3``.
    :param grace: seconds after its lease ends before a silent process's channels are pruned.
    :param timeout: seconds any one Redis command may take before it raises
        :class:`~interlock.layers.LayerUnavailable`.
    :param on_availability: called on the layer's event loop with the reason when its
        background tasks lose Redis, and with None when Redis answers them again (also
        readable as :attr:`unavailable`).
    :param history: the groups whose messages are kept, numbered, in Redis, for members
        that come back (see :class:`~interlock.layers.GroupHistory`); None keeps none.

    The layer starts on first use; ``await layer.start()`` or ``async with layer:``
    start it explicitly (and surface a wrong address at once), ``await layer.close()``
    ends its lease and drops its own channels.
    """

    _kind = "redis"
    _logger = logger
    _keeps_named = True  # Redis may lose them all (restarted empty): this process writes them again
    _local: InboxQueues

    def __init__(
        self,
        url_or_client: str | Client = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "interlock",
        cluster: bool = False,
        capacity: int = 100,
        expiry: float = 60.0,
        group_expiry: float | None = None,
        channel_capacity: Mapping[str, int] | None = None,
        capacity_bytes: int | None = DEFAULT_CAPACITY_BYTES,
        lease: float = 10.0,
        grace: float = 20.0,
        timeout: float = 2.0,
        on_availability: Callable[[str | None], None] | None = None,
        history: GroupHistory | None = None,
    ) -> None:
        self.history = check_history(history)
        if isinstance(url_or_client, str):
            if not url_or_client.startswith(SCHEMES):
                msg = f"not a Redis URL: {url_or_client!r}; expected one starting with {', '.join(SCHEMES)}"
                raise ValueError(msg)
            self._url = url_or_client
            self.address = redacted(url_or_client)
            self._client: Client | None = None
        else:
            self._url = ""
            self.address = describe_client(url_or_client)
            self._client = url_or_client
        if not (isinstance(prefix, str) and _KEY_PREFIX.fullmatch(prefix)):
            msg = f"prefix must be 1 to 64 ASCII letters, digits, '-', '_', '.' or ':', got {prefix!r}"
            raise ValueError(msg)
        self.prefix = prefix
        self.cluster = cluster
        self._configure(
            capacity=capacity,
            expiry=expiry,
            group_expiry=group_expiry,
            channel_capacity=channel_capacity,
            capacity_bytes=capacity_bytes,
            lease=lease,
            grace=grace,
        )
        self.timeout = require_positive("timeout", timeout)
        self._keys = Keys(prefix)
        self._on_availability = on_availability
        self._begin()

    def _reset_store(self) -> None:
        """Redis's part of a layer that has not started: its queues, run and what to do again."""
        self._undone: set[tuple[str | None, str]] = set()  # discards (group, channel) and closes (None, channel)
        self._local = InboxQueues(self._capacity_for, self.expiry, self.capacity_bytes, self._wake_settler)
        self._run: Run | None = None
        self._registered = False  # since the last close(): a lease to end, even from another loop
        self._unavailable: str | None = None  # why the pump or the lease task last lost Redis

    def __repr__(self) -> str:
        state = "started" if self._run is not None else "not started"
        return f"<RedisChannelLayer {self.address!r} prefix={self.prefix!r} process={self._process} {state}>"

    @property
    def unavailable(self) -> str | None:
        """Why the layer's background tasks cannot reach Redis now, or None while it answers them."""
        return self._unavailable

    @property
    def process(self) -> str:
        """This layer's process id: what its channel names hold before the ``!``."""
        return self._process

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, register this process and start its lease (done lazily otherwise)."""
        await self._ready()

    def _at_home(self) -> bool:
        run = self._run
        return run is not None and run.store is not None and run.home == threading.get_ident()

    def _store(self) -> Store:
        """The store of the run :meth:`_ready` just found ready (called before any await after it)."""
        run = self._run
        if run is None or run.store is None:
            msg = f"the layer on {self.address} was closed"
            raise LayerClosed(msg)
        return run.store

    async def _ready(self) -> bool:
        """Start if needed (on this thread's loop, which becomes the home); True: this thread is home."""
        ident = threading.get_ident()
        run = self._run
        if run is not None and run.home != ident:
            msg = (
                f"{self!r} runs on the event loop of another thread; call it from that loop "
                "(sync code: through async_to_sync from the actor's thread)"
            )
            raise RuntimeError(msg)
        if run is None:
            run = self._run = Run(self, ident)
            self._local.forget_waiters()  # events of a loop that has ended
            self._drops.unhook_all()
            spawn_system_task(run.main, f"interlock-redis-{self._process}")
        if not run.ready.is_set():
            with anyio.move_on_after(self.timeout * 2):
                await run.ready.wait()
            if not run.ready.is_set():
                run.scope.cancel()
                msg = f"Redis at {self.address} did not answer within {self.timeout * 2:g} s of connecting"
                raise LayerUnavailable(msg)
        if run.error is not None:
            raise run.error
        return True

    def _make_client(self) -> Client:
        if self._client is not None:
            return self._client
        return make_client(self._url, self.timeout, cluster=self.cluster)

    async def close(self) -> None:
        """End this process's lease, drop its channels and their memberships.

        Receives still waiting on this process's channels raise
        :class:`~interlock.layers.LayerClosed`; the next call starts the layer again.
        """
        with anyio.CancelScope(shield=True):
            if self._run is None and self._registered:  # started on a loop that has ended since
                try:
                    await self._ready()
                except LayerUnavailable as exc:
                    logger.warning(
                        "%r closed without reaching Redis (%s): its channels are pruned after its grace", self, exc
                    )
            self._generation += 1
            self._registered = False
            run = self._run
            if run is not None:
                run.closing = True
                run.stop.set()
                if run.home == threading.get_ident():
                    await run.done.wait()
            self._forget_all(True)

    async def flush(self) -> None:
        """Delete every membership and queued message under this prefix, and this process's queues."""
        await self._ready()
        await self._store().flush()
        live = set(self._local.live)
        self._undone.clear()
        self._forget_all(True)
        self._local.live |= live  # the channels live on: only their messages went

    def _wake_settler(self) -> None:
        run = self._run
        if run is not None:
            run.settle.set()

    # -- channels --------------------------------------------------------------------------

    async def _send_stored(self, channel: str, checked: Message, home: bool) -> None:
        store = self._store()
        owner = owner_of(channel)
        capacity = self._capacity_for(channel)
        now = time.time()
        if owner is None:
            queued = await store.send_named(
                channel, encode(checked), now=now, expires=now + self.expiry, capacity=capacity, ttl=self.expiry + 1
            )
            if not queued:
                msg = f"channel {channel!r} is full ({capacity} undelivered messages)"
                raise ChannelFull(msg)
            self._local.wake_named([channel])
            return
        queued = await store.send_one(
            owner, channel, capacity, encode(checked), expires=now + self.expiry, ttl=self._ttl()
        )
        if not queued:
            msg = f"channel {channel!r} is full ({capacity} messages sent to it have not reached its receiver)"
            raise ChannelFull(msg)

    def _ttl(self) -> float:
        """Seconds an inbox outlives its last message: long enough for any owner still alive."""
        return self.expiry + self.lease + self.grace

    async def _wait_local(self, event: anyio.Event, generation: int, channel: str) -> bool:
        await event.wait()
        if self._generation != generation or self._run is None:
            msg = f"the layer on {self.address} was closed while receiving on {channel!r}"
            raise LayerClosed(msg)
        return True

    async def _receive_stored(self, channel: str, home: bool) -> Message:
        store = self._store()
        owner = owner_of(channel)
        if owner is not None:
            msg = (
                f"cannot receive from {channel!r}: it belongs to layer process {owner}, not to this one "
                f"({self._process}); only the process whose new_channel() made a channel receives from it"
            )
            raise InvalidChannelName(msg)
        generation = self._generation
        poll = _NAMED_POLL[0]
        while True:
            event = self._local.named_waiter(channel)
            body = await store.claim_named(channel, time.time())  # shielded: a popped message arrives
            if body is not None:
                return decode(body)
            with anyio.move_on_after(poll):
                await event.wait()
            poll = min(poll * 2, _NAMED_POLL[1])
            if self._generation != generation:
                msg = f"the layer on {self.address} was closed while receiving on {channel!r}"
                raise LayerClosed(msg)

    async def _close_stored(self, channel: str, home: bool) -> None:
        store = self._store()
        owner = owner_of(channel)
        self._forget_channel(channel, owner == self._process)
        try:
            await store.close_channel(channel, owner)
        except LayerUnavailable:
            self._undone.add((None, channel))  # done on a later beat, once Redis answers
            raise
        await mark_closed(store, channel, owner)  # the other processes' watchers

    async def _sync_watches(self, add: list[tuple[str, str | None]], remove: list[str]) -> list[tuple[str, str]]:
        await self._ready()
        return await sync_watches(self._store(), self._process, add, remove, self._peers.remote())

    # -- groups ----------------------------------------------------------------------------

    async def _add_stored(self, group: str, channel: str, owner: str | None, now: float) -> None:
        store = self._store()
        if owner is not None and owner != self._process:  # someone else's: pruned after grace unless it lives
            await store.call("registering a channel's owner", lambda: store.placeholder(owner, now, self.grace))
        await store.group_add(group, channel, owner, now)
        self._undone.discard((group, channel))  # a discard that failed earlier must not undo this
        self._undone.discard((None, channel))

    async def _discard_stored(self, group: str, channel: str) -> None:
        store = self._store()
        self._own.discard(group, channel)  # first: never written again, even if Redis cannot hear it now
        try:
            await store.group_discard(group, channel, owner_of(channel))
        except LayerUnavailable:
            self._undone.add((group, channel))  # done on a later beat, once Redis answers
            raise

    async def _drop_counts_stored(self) -> dict[str, int]:
        store = self._store()
        await self._write_drops(store.count_drops)
        processes = [owner.id for owner in await store.processes()]
        return await store.drop_counts(processes)

    async def _group_send_stored(self, group: str, checked: Message, home: bool) -> tuple[list[str], Message, bool]:
        store = self._store()
        if self.history is not None and self.history.keeps(group):
            args = history.record_args(group, checked, self.history, time.time())
            epoch, offset = await store.record(group, args)
            checked = positioned(checked, group, epoch, offset)
        members = await store.members(group, self._joined_after())
        local: list[str] = []
        owned: dict[str, list[str]] = {}
        named: list[str] = []
        is_mine = self._names.is_mine
        for channel in members:
            if is_mine(channel):
                local.append(channel)
                continue
            owner = owner_of(channel)
            if owner is None:
                named.append(channel)
            else:
                owned.setdefault(owner, []).append(channel)
        if owned or named:
            body = encode(checked)
            now = time.time()
            expires = now + self.expiry
            await self._send_to_owners(store, group, owned, body, expires)  # their pumps count drops
            for channel in named:
                capacity = self._capacity_for(channel)
                if await store.send_named(
                    channel, body, now=now, expires=expires, capacity=capacity, ttl=self.expiry + 1
                ):
                    self._local.wake_named([channel])
                else:
                    self._drops.seen(group, channel)
                    await store.count_drops(None, {channel: 1})
        return local, checked, False  # paced even when it awaited Redis, as it always was

    async def _history_stored(
        self, group: str, since: int, epoch: str | None, limit: int | None, policy: GroupHistory
    ) -> HistoryPage:
        reply = await self._store().history(group, since, limit)
        return history.page_from(group, reply, since=since, epoch=epoch, policy=policy, now=time.time())

    async def _send_to_owners(
        self, store: Store, group: str, owned: dict[str, list[str]], body: str, expires: float
    ) -> None:
        """Push one entry with *body* on each owner's inbox for its members, the owners at once."""
        ttl = self._ttl()
        if len(owned) == 1:
            [(owner, channels)] = owned.items()
            await store.send_group(owner, group, channels, body, expires=expires, ttl=ttl)
            return
        errors: list[Exception] = []

        async def one(owner: str, channels: list[str]) -> None:
            try:
                await store.send_group(owner, group, channels, body, expires=expires, ttl=ttl)
            except Exception as exc:  # noqa: BLE001 - raised below, alone rather than in a group
                errors.append(exc)

        async with anyio.create_task_group() as tasks:
            for owner, channels in owned.items():
                tasks.start_soon(one, owner, channels)
        if errors:
            raise errors[0]

    async def _members_stored(self, group: str) -> list[str]:
        return await self._store().members(group, self._joined_after())

    async def _counts_stored(self) -> dict[str, int]:
        return await self._store().group_counts(self._joined_after())
