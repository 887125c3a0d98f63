"""The Redis half of :class:`~interlock.layers.RedisChannelLayer`: every command it sends.

Each call is bounded by the layer's ``timeout``: a Redis that does not answer in time,
refuses the connection or drops it raises :class:`~interlock.layers.LayerUnavailable`
naming the address, never hangs.  Keys are laid out as :mod:`._redis_keys` says; nothing
here holds state but the client, the keys and the scripts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple, TypeVar

import anyio

from . import _redis_history as history
from ._core import owner_of
from ._errors import LayerUnavailable
from ._history import new_epoch
from ._redis_hot import CoredisHot, Hot
from ._redis_keys import CLAIM_NAMED, SEND_GROUP, SEND_NAMED, SEND_ONE, SETTLE, Keys
from ._redis_resp import RespError, Script

__all__ = ["Owner", "PruneReport", "Store"]

_SEND_ONE = Script(SEND_ONE)
_SEND_GROUP = Script(SEND_GROUP)
_SEND_NAMED = Script(SEND_NAMED)
_CLAIM_NAMED = Script(CLAIM_NAMED)
_SETTLE = Script(SETTLE)

T = TypeVar("T")

Client = Any  # coredis.Redis[bytes] or coredis.RedisCluster[bytes]: one interface, no shared base


class Owner(NamedTuple):
    """A registered layer process, as the index holds it."""

    id: str
    pid: int
    host: str
    lease_until: float
    grace: float

    def encode(self) -> str:
        """The index's value for this process."""
        return json.dumps([self.pid, self.host, self.lease_until, self.grace])

    @classmethod
    def decode(cls, process: str, value: bytes) -> Owner:
        """Read an index value back (a malformed one reads as a process long dead)."""
        try:
            pid, host, lease_until, grace = json.loads(value)
            return cls(process, int(pid), str(host), float(lease_until), float(grace))
        except (ValueError, TypeError):
            return cls(process, 0, "", 0.0, 0.0)


class PruneReport(NamedTuple):
    """What one prune removed."""

    processes: list[str]
    memberships: int


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Store:
    """The commands of one layer on one client (see the module's documentation).

    *hot* carries the commands every message pays (:mod:`._redis_hot`): coredis's by
    default, the lean connection when the layer was given a plain URL.
    """

    def __init__(self, client: Client, keys: Keys, address: str, timeout: float, hot: Hot | None = None) -> None:
        self.client = client
        self.keys = keys
        self.address = address
        self.timeout = timeout
        self.hot: Hot = CoredisHot(client) if hot is None else hot
        import coredis.exceptions  # noqa: PLC0415 - the redis extra, imported once a layer starts

        self._lost: tuple[type[BaseException], ...] = (coredis.exceptions.ConnectionError, OSError)

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], *, extra: float = 0.0) -> T:
        """Await ``fn()`` within the timeout; a failure to reach Redis is :class:`LayerUnavailable`.

        The call is shielded from cancellation (but for a blocking wait, *extra* > 0): it is
        a round trip, bounded by the timeout, and a command cancelled between its request
        and its reply would leave unknown whether it took effect (and coredis's connection
        half-used).  A caller's cancellation takes effect at its next checkpoint.
        """
        limit = self.timeout + extra
        try:
            # One scope does both (a shielded scope's own deadline still applies): cheaper than two.
            with anyio.CancelScope(deadline=anyio.current_time() + limit, shield=extra == 0) as scope:
                result = await fn()
        except self._lost as exc:
            msg = f"Redis at {self.address} cannot be reached ({what}): {exc}"
            raise LayerUnavailable(msg) from exc
        except RespError as exc:  # an error reply on the lean connection (NOAUTH, OOM, LOADING, ...)
            msg = f"Redis at {self.address} refused {what}: {exc}"
            raise LayerUnavailable(msg) from exc
        if scope.cancelled_caught:
            msg = f"Redis at {self.address} did not answer {what} within {limit:g} s"
            raise LayerUnavailable(msg)
        return result

    # -- processes and leases ------------------------------------------------------------------

    async def register(self, me: Owner, memberships: Iterable[tuple[str, str]]) -> None:
        """Enter *me* in the index, set its ``alive`` key, and (re)assert its memberships."""
        keys = self.keys

        async def run() -> None:
            await self.client.hset(keys.processes, {me.id: me.encode()})
            await self.client.set(keys.alive(me.id), b"1")
            now = time.time()
            for group, channel in memberships:
                await self._add(group, channel, owner_of(channel), now)

        await self.call("registering this process", run)

    async def renew(self, me: Owner) -> bool:
        """Push *me*'s lease forward; False if Redis lost its registration (restarted, flushed, pruned)."""

        async def run() -> bool:
            await self.client.hset(self.keys.processes, {me.id: me.encode()})
            return bool(await self.client.exists([self.keys.alive(me.id)]))

        return await self.call("renewing this process's lease", run)

    async def processes(self) -> list[Owner]:
        """Every registered process."""
        found = await self.call("listing processes", lambda: self.client.hgetall(self.keys.processes))
        return [Owner.decode(_text(process), value) for process, value in found.items()]

    async def unregister(self, process: str) -> int:
        """Remove *process*: its memberships, queued messages and registration; return the memberships."""
        return await self.call(f"removing process {process}", lambda: self._remove(process))

    async def _remove(self, process: str) -> int:
        keys, client = self.keys, self.client
        removed = 0
        for raw in await client.smembers(keys.with_groups(process)):
            channel = _text(raw)
            removed += await self._leave_all(channel, process)
        await client.delete(keys.process_keys(process))
        await client.hdel(keys.processes, [process])
        return removed

    async def prune(self, now: float, me: str) -> PruneReport:
        """Remove every process whose lease ended more than its grace ago."""
        owners = await self.processes()
        dead = [owner.id for owner in owners if owner.id != me and owner.lease_until + owner.grace < now]
        memberships = 0
        for process in dead:
            memberships += await self.unregister(process)
        return PruneReport(dead, memberships)

    async def placeholder(self, process: str, now: float, grace: float) -> None:
        """Register *process* as already expired, unless it is: pruned after *grace* unless it lives."""
        await self.client.hsetnx(self.keys.processes, process, Owner(process, 0, "", now, grace).encode())

    # -- messages ------------------------------------------------------------------------------

    async def send_one(
        self, process: str, channel: str, capacity: int, body: str, *, expires: float, ttl: float
    ) -> bool:
        """Push *body* for *channel* onto *process*'s inbox; False if the channel is full."""
        keys = self.keys
        args: list[str | int] = [channel, capacity, int(expires * 1000), int(ttl * 1000), body]
        queued = await self.call(
            f"sending to {channel!r}",
            lambda: self.hot.script(_SEND_ONE, [keys.inbox(process), keys.counts(process)], args),
        )
        return bool(queued)

    async def send_group(
        self, process: str, group: str, channels: list[str], body: str, *, expires: float, ttl: float
    ) -> None:
        """Push one entry with *body* for *channels* (*process*'s members of *group*) onto its inbox."""
        entry = f"g{int(expires * 1000)}\x00{group}\x00{' '.join(channels)}\x00{body}"
        await self.call(
            f"sending to {len(channels)} channels of process {process}",
            lambda: self.hot.script(_SEND_GROUP, [self.keys.inbox(process)], [entry, int(ttl * 1000)]),
        )

    async def record(self, group: str, args: list[str | int]) -> tuple[str, int]:
        """Number and keep a message of *group* (``_redis_history.RECORD``): its epoch and offset."""
        reply = await self.call(
            f"recording a message of group {group!r}",
            lambda: self.hot.script(history.RECORD, history.keys_of(self.keys.prefix, group), args),
        )
        return _text(reply[0]), int(reply[1])

    async def history(self, group: str, since: int, limit: int | None) -> list[object]:
        """``_redis_history.PAGE``'s reply for *group* after *since*."""
        args: list[str | int] = [new_epoch(), since, -1 if limit is None else limit]
        reply: list[object] = await self.call(
            f"reading the history of group {group!r}",
            lambda: self.hot.script(history.PAGE, history.keys_of(self.keys.prefix, group), args),
        )
        return reply

    async def send_named(
        self, channel: str, body: str, *, now: float, expires: float, capacity: int, ttl: float
    ) -> bool:
        """Queue *body* on the named *channel*; False if it is full."""
        args = [int(now * 1000), int(expires * 1000), body, capacity, int(ttl * 1000)]
        queued = await self.call(
            f"sending to {channel!r}", lambda: self.hot.script(_SEND_NAMED, [self.keys.named(channel)], args)
        )
        return bool(queued)

    async def claim_named(self, channel: str, now: float) -> str | None:
        """Pop the next unexpired message body of the named *channel*, if any."""
        found = await self.call(
            f"receiving from {channel!r}",
            lambda: self.hot.script(_CLAIM_NAMED, [self.keys.named(channel)], [int(now * 1000)]),
        )
        return None if found is None else _text(found)

    async def take_inbox(self, process: str, wait: float, count: int) -> list[bytes]:
        """Wait up to *wait* seconds for entries on *process*'s inbox; pop up to *count*."""
        return await self.call(
            "waiting for messages", lambda: self.hot.blmpop(self.keys.inbox(process), wait, count), extra=wait
        )

    async def wake(self, process: str) -> None:
        """Push a wake-up entry (``w``) on *process*'s inbox: its pump's wait returns."""
        await self.call("waking the pump", lambda: self.hot.lpush(self.keys.inbox(process), b"w"))

    async def settle(self, process: str, counts: dict[str, int]) -> None:
        """*counts* messages of each of *process*'s channels reached its queues: they no longer count."""
        args: list[str | int] = []
        for channel, count in counts.items():
            args += [channel, count]
        await self.call("settling counts", lambda: self.hot.script(_SETTLE, [self.keys.counts(process)], args))

    async def count_drops(self, process: str | None, counts: dict[str, int]) -> None:
        """Add drops of channels (*process*'s, or named ones when None) that this process saw."""
        key = self.keys.named_drops if process is None else self.keys.drops(process)

        async def run() -> None:
            for channel, count in counts.items():
                await self.client.hincrby(key, channel, count)

        await self.call("counting drops", run)

    async def drop_counts(self, processes: Iterable[str]) -> dict[str, int]:
        """The drops of every channel of *processes*, and of named channels."""

        async def run() -> dict[str, int]:
            counts: dict[str, int] = {}
            for key in [self.keys.named_drops, *(self.keys.drops(process) for process in processes)]:
                for channel, count in (await self.client.hgetall(key)).items():
                    counts[_text(channel)] = int(count)
            return counts

        return await self.call("reading drop counts", run)

    # -- groups --------------------------------------------------------------------------------

    async def _add(self, group: str, channel: str, owner: str | None, now: float) -> None:
        keys, client = self.keys, self.client
        await client.hset(keys.group(group), {channel: repr(now)})
        await client.sadd(keys.groups, [group])
        await client.sadd(keys.channel_groups(channel, owner), [group])
        if owner is not None:
            await client.sadd(keys.with_groups(owner), [channel])

    async def group_add(self, group: str, channel: str, owner: str | None, now: float) -> None:
        """Add *channel* (of *owner*, or named) to *group*, or renew its membership."""
        await self.call(f"adding {channel!r} to group {group!r}", lambda: self._add(group, channel, owner, now))

    async def group_discard(self, group: str, channel: str, owner: str | None) -> None:
        """Remove *channel* from *group*."""

        async def run() -> None:
            await self.client.hdel(self.keys.group(group), [channel])
            await self.client.srem(self.keys.channel_groups(channel, owner), [group])

        await self.call(f"removing {channel!r} from group {group!r}", run)

    async def members(self, group: str, joined_after: float) -> list[str]:
        """*group*'s members that joined after *joined_after* (older ones are removed)."""
        if joined_after == -math.inf:  # no group_expiry: the names alone, half the reply
            names = await self.call(f"reading group {group!r}", lambda: self.hot.hkeys(self.keys.group(group)))
            return [raw.decode() for raw in names]
        found = await self.call(f"reading group {group!r}", lambda: self.hot.hgetall(self.keys.group(group)))
        members: list[str] = []
        expired: list[str] = []
        for raw, joined in found.items():
            (members if float(joined) > joined_after else expired).append(_text(raw))
        for channel in expired:
            await self.group_discard(group, channel, owner_of(channel))
        return members

    async def group_counts(self, joined_after: float) -> dict[str, int]:
        """Every non-empty group with its member count (emptied groups leave the index)."""
        names = await self.call("listing groups", lambda: self.client.smembers(self.keys.groups))
        counts: dict[str, int] = {}
        for raw in names:
            group = _text(raw)
            count = len(await self.members(group, joined_after))
            if count:
                counts[group] = count
            else:
                await self.call("listing groups", lambda group=group: self._forget_if_empty(group))  # type: ignore[misc]
        return counts

    async def _forget_if_empty(self, group: str) -> None:
        if not await self.client.exists([self.keys.group(group)]):
            await self.client.srem(self.keys.groups, [group])

    async def _leave_all(self, channel: str, owner: str | None) -> int:
        key = self.keys.channel_groups(channel, owner)
        groups = [_text(raw) for raw in await self.client.smembers(key)]
        for group in groups:
            await self.client.hdel(self.keys.group(group), [channel])
        await self.client.delete([key])
        return len(groups)

    async def close_channel(self, channel: str, owner: str | None) -> None:
        """Remove *channel* from its groups, and drop its queue (named) or its counts and drops (owned)."""
        keys, client = self.keys, self.client

        async def run() -> None:
            await self._leave_all(channel, owner)
            if owner is None:
                await client.delete([keys.named(channel)])
                await client.hdel(keys.named_drops, [channel])
            else:
                await client.srem(keys.with_groups(owner), [channel])
                await client.hdel(keys.drops(owner), [channel])
                await client.hdel(keys.counts(owner), [channel])

        await self.call(f"closing {channel!r}", run)

    async def flush(self) -> None:
        """Delete every key of this prefix but the registrations of processes."""
        keep = {self.keys.processes}

        async def run() -> None:
            doomed = [
                key
                async for raw in self.client.scan_iter(match=f"{self.keys.prefix}:*", count=1000)
                if (key := _text(raw)) not in keep and not key.endswith(":alive")
            ]
            for key in doomed:
                await self.client.delete([key])

        await self.call("flushing the layer", run, extra=self.timeout * 4)
