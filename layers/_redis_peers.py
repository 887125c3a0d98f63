"""Peer watching on the Redis layer: the store side of :class:`~._peers.StorePeers`.

Keys (each command touches one key, so a Redis Cluster serves them unchanged; the hash
tags follow :mod:`._redis_keys`):

``PREFIX:{p.OWNER}:watchers:CHANNEL`` (``PREFIX:{n.CHANNEL}:watchers`` for a named one)
    the set of processes watching *CHANNEL*;
``PREFIX:{p.OWNER}:watched``
    the set of *OWNER*'s channels that somebody watches (what its ``close()`` must tell);
``PREFIX:{p.WATCHER}:gone``
    a hash: the channels *WATCHER* watches that are gone, and why (``closed``);
``PREFIX:{p.OWNER}:closed:CHANNEL``
    set for :data:`CLOSED_KEPT` seconds once *OWNER* closed *CHANNEL*, so a watch that
    begins after the close is told too.

A watched channel whose owner the index no longer lists (pruned after its lease and
grace) is gone with reason ``lease``: the watcher finds that out itself, on each sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ._core import owner_of
from ._redis_store import Store, _text

__all__ = ["CLOSED_KEPT", "forget_process", "mark_closed", "mark_closed_all", "sync_watches"]

CLOSED_KEPT: Final = 600
"""Seconds a closed process channel is remembered for watches that begin after its close."""


def _watchers(prefix: str, channel: str, owner: str | None) -> str:
    if owner is None:
        return f"{prefix}:{{n.{channel}}}:watchers"
    return f"{prefix}:{{p.{owner}}}:watchers:{channel}"


def _watched(prefix: str, owner: str) -> str:
    return f"{prefix}:{{p.{owner}}}:watched"


def _gone(prefix: str, watcher: str) -> str:
    return f"{prefix}:{{p.{watcher}}}:gone"


def _closed(prefix: str, channel: str, owner: str) -> str:
    return f"{prefix}:{{p.{owner}}}:closed:{channel}"


async def sync_watches(
    store: Store, me: str, add: list[tuple[str, str | None]], remove: list[str], watched: dict[str, str | None]
) -> list[tuple[str, str]]:
    """Write *me*'s new watches, forget *remove*, and return (and forget) the gone ones."""
    client, prefix = store.client, store.keys.prefix

    async def run() -> list[tuple[str, str]]:
        for channel, owner in add:
            await client.sadd(_watchers(prefix, channel, owner), [me])
            if owner is not None:
                await client.sadd(_watched(prefix, owner), [channel])
                if await client.exists([_closed(prefix, channel, owner)]):
                    await client.hset(_gone(prefix, me), {channel: "closed"})
        for channel in remove:
            await client.srem(_watchers(prefix, channel, owner_of(channel)), [me])
        found = await client.hgetall(_gone(prefix, me))
        gone = [(_text(channel), _text(reason)) for channel, reason in found.items()]
        if found:
            await client.hdel(_gone(prefix, me), list(found))
        owners = sorted({owner for owner in watched.values() if owner is not None})
        if owners:
            registered = await client.hmget(store.keys.processes, owners)
            dead = {owner for owner, value in zip(owners, registered, strict=True) if value is None}
            told = {channel for channel, _ in gone}
            gone += [(c, "lease") for c, owner in watched.items() if owner in dead and c not in told]
        return gone

    return await store.call("syncing watched channels", run)


async def mark_closed(store: Store, channel: str, owner: str | None) -> None:
    """*owner* closed *channel*: tell its watchers, and remember it for later watches."""
    client, prefix = store.client, store.keys.prefix

    async def run() -> None:
        if owner is not None:
            await client.set(_closed(prefix, channel, owner), b"1", ex=CLOSED_KEPT)
            if not await client.srem(_watched(prefix, owner), [channel]):
                return  # nobody watches it
        key = _watchers(prefix, channel, owner)
        for watcher in await client.smembers(key):
            await client.hset(_gone(prefix, _text(watcher)), {channel: "closed"})
        await client.delete([key])

    await store.call(f"telling the watchers of {channel!r}", run)


async def mark_closed_all(store: Store, owner: str) -> None:
    """*owner*'s layer closes: the watchers of each of its watched channels are told."""
    client, prefix = store.client, store.keys.prefix

    async def run() -> None:
        for raw in await client.smembers(_watched(prefix, owner)):
            channel = _text(raw)
            key = _watchers(prefix, channel, owner)
            for watcher in await client.smembers(key):
                await client.hset(_gone(prefix, _text(watcher)), {channel: "closed"})
            await client.delete([key])
        await client.delete([_watched(prefix, owner), _gone(prefix, owner)])

    await store.call("telling the watchers of this process's channels", run)


async def forget_process(store: Store, processes: Iterable[str]) -> None:
    """Pruned *processes*: their own watch bookkeeping goes (their watchers find them gone)."""
    client, prefix = store.client, store.keys.prefix

    async def run() -> None:
        for process in processes:
            for raw in await client.smembers(_watched(prefix, process)):
                await client.delete([_watchers(prefix, _text(raw), process)])
            await client.delete([_watched(prefix, process), _gone(prefix, process)])

    await store.call("forgetting pruned processes' watches", run)
