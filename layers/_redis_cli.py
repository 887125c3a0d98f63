"""The ``interlock layer`` commands on a Redis layer: ``groups|members|processes|prune redis://...``.

They read the keys a :class:`~interlock.layers.RedisChannelLayer` writes (see
:mod:`._redis_keys`) under ``--prefix`` with a client of their own, without registering as a
layer process; ``prune`` does once what every live layer process does on each lease beat.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio

from ._errors import ChannelLayerError, LayerUnavailable
from ._redis import RedisChannelLayer
from ._redis_client import root_cause, start_error
from ._redis_keys import Keys
from ._redis_store import Owner, Store
from ._validation import require_group_name

__all__ = ["SCHEMES", "run"]

SCHEMES = ("redis://", "rediss://", "unix://")
TIMEOUT = 5.0  # seconds any one command may take


def run(command: str, args: argparse.Namespace) -> int:
    """Run *command* against the Redis URL in ``args.path``; return the exit status."""
    return anyio.run(_run, command, args)


async def _run(command: str, args: argparse.Namespace) -> int:
    layer = RedisChannelLayer(str(args.path), prefix=args.prefix, cluster=args.cluster, timeout=TIMEOUT)
    try:
        return await _commands(command, args, layer)
    except LayerUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the client's errors, in its task group's exception group
        cause = root_cause(exc)
        if isinstance(cause, ChannelLayerError):
            raise cause from None
        raise start_error(layer.address, cause) from cause


async def _commands(command: str, args: argparse.Namespace, layer: RedisChannelLayer) -> int:
    client: Any = layer._make_client()
    async with client:
        store = Store(client, Keys(args.prefix), layer.address, TIMEOUT)
        await store.call("PING", client.ping)
        if command == "groups":
            counts = await store.group_counts(float("-inf"))
            width = max((len(group) for group in counts), default=0)
            for group in sorted(counts):
                _say(f"{group:<{width}}  {counts[group]}")
        elif command == "members":
            group = require_group_name(args.group)
            for channel in sorted(await store.members(group, float("-inf"))):
                _say(channel)
        elif command == "processes":
            await _processes(store)
        else:
            report = await store.prune(time.time(), "")
            dead = ", ".join(report.processes) if report.processes else "none"
            _say(f"dead processes pruned: {len(report.processes)} ({dead})")
            _say(f"memberships removed: {report.memberships}")
    return 0


async def _processes(store: Store) -> None:
    now = time.time()
    keys, client = store.keys, store.client
    rows = [("PROCESS", "PID", "HOST", "LEASE", "CHANNELS IN GROUPS", "QUEUED", "DROPPED")]
    for owner in sorted(await store.processes(), key=lambda owner: owner.id):

        async def census(owner: Owner = owner) -> tuple[int, int, int]:
            channels = await client.scard(keys.with_groups(owner.id))
            queued = await client.llen(keys.inbox(owner.id))
            dropped = sum(int(count) for count in (await client.hgetall(keys.drops(owner.id))).values())
            return channels, queued, dropped

        channels, queued, dropped = await store.call(f"reading process {owner.id}", census)
        rows.append(
            (
                owner.id,
                str(owner.pid or "-"),
                owner.host or "-",
                _lease(owner, now),
                str(channels),
                str(queued),
                str(dropped),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _say(line: str) -> None:
    """Print one line of output."""
    sys.stdout.write(line + "\n")


def _lease(owner: Owner, now: float) -> str:
    """How a process's lease stands: alive, or how long until (or since) it may be pruned."""
    if not owner.pid:
        state = "never registered (a channel name nobody made)"
    elif owner.lease_until > now:
        return f"alive (lease ends in {owner.lease_until - now:.0f} s)"
    else:
        state = f"lease ended {now - owner.lease_until:.0f} s ago"
    prunable = owner.lease_until + owner.grace - now
    return f"{state}, pruned in {prunable:.0f} s" if prunable > 0 else f"{state}, prunable now"
