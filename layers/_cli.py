"""The ``interlock layer`` commands: look inside a SQLite layer file, or a Redis layer, from a shell.

::

    interlock layer groups PATH           every group with its member count
    interlock layer members PATH GROUP    the channels in GROUP, one a line
    interlock layer processes PATH        the processes using the file: alive or not, what they hold
                                          and how many messages their full channels dropped
    interlock layer prune PATH            drop dead processes' channels and expired messages

PATH may be a ``redis://`` (``rediss://``, ``unix://``) URL instead: the same commands read a
:class:`~interlock.layers.RedisChannelLayer`'s keys under ``--prefix`` (``interlock`` by
default; ``--cluster`` for a Redis Cluster), see :mod:`._redis_cli`.

``groups``, ``members`` and ``processes`` open the file read-only and never create it; ``prune`` does once
what every live layer process does on each lease beat (see :mod:`._sqlite_lease`).  Output
is plain lines for ``grep``/``wc``; errors go to stderr with exit status 1.

The ``interlock`` command mounts these with :func:`add_layer_commands`, imported from the
public :mod:`interlock.layers.cli`; each command sets ``handler`` on the parsed namespace, a
function of it returning the exit status. :func:`main` runs them alone
(``python -m interlock.layers._cli layer groups PATH``; ``python -m interlock layer ...`` is
the whole command).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import _redis_cli
from . import _sqlite_file as dbfile
from . import _sqlite_store as store
from ._errors import ChannelLayerError
from ._validation import require_group_name

__all__ = ["add_layer_commands", "main"]

Handler = Callable[[argparse.Namespace], int]


def add_layer_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``layer`` command (with ``groups``, ``members``, ``processes``, ``prune``) to *subparsers*."""
    layer = subparsers.add_parser(
        "layer",
        help="look inside a SQLite channel-layer file or a Redis layer",
        description="Look inside the file of a SQLiteChannelLayer, or the keys of a RedisChannelLayer "
        "(PATH a redis:// URL): its groups, their members, the processes using it, and the dead ones "
        "it still remembers.",
    )
    layer.add_argument("--prefix", default="interlock", help="a Redis layer's key prefix (default: interlock)")
    layer.add_argument("--cluster", action="store_true", help="the Redis URL names a node of a Redis Cluster")
    commands = layer.add_subparsers(dest="layer_command", required=True, metavar="COMMAND")

    groups = commands.add_parser("groups", help="list groups and their member counts")
    groups.add_argument("path", type=_path_or_url, metavar="PATH", help="the layer file, or a Redis URL")
    groups.set_defaults(handler=_guarded(_groups))

    members = commands.add_parser("members", help="list the channels in a group")
    members.add_argument("path", type=_path_or_url, metavar="PATH", help="the layer file, or a Redis URL")
    members.add_argument("group", metavar="GROUP", help="the group's name")
    members.set_defaults(handler=_guarded(_members))

    processes = commands.add_parser(
        "processes", help="list the processes using the file, whether they are alive, and what they hold"
    )
    processes.add_argument("path", type=_path_or_url, metavar="PATH", help="the layer file, or a Redis URL")
    processes.set_defaults(handler=_guarded(_processes))

    prune = commands.add_parser("prune", help="remove dead processes' channels and expired messages now")
    prune.add_argument("path", type=_path_or_url, metavar="PATH", help="the layer file, or a Redis URL")
    prune.set_defaults(handler=_guarded(_prune))
    return layer


def _path_or_url(text: str) -> Path | str:
    """A layer file's path, or a Redis URL as given (a Path would fold its ``//``)."""
    return text if text.startswith(_redis_cli.SCHEMES) else Path(text)


def main(argv: list[str] | None = None) -> int:
    """Run ``layer ...`` as the ``interlock`` command would; return the exit status."""
    parser = argparse.ArgumentParser(prog="interlock")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_layer_commands(commands)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            if str(args.path).startswith(_redis_cli.SCHEMES):
                return _redis_cli.run(args.layer_command, args)
            return handler(args)
        except (OSError, ChannelLayerError, sqlite3.Error, ValueError) as exc:
            print(f"interlock layer {args.layer_command}: {exc}", file=sys.stderr)
            return 1

    return run


def _groups(args: argparse.Namespace) -> int:
    conn = dbfile.connect(args.path, create=False, read_only=True)
    try:
        counts = store.call(conn, store.group_counts, float("-inf"))
    finally:
        conn.close()
    width = max((len(group) for group in counts), default=0)
    for group in sorted(counts):
        print(f"{group:<{width}}  {counts[group]}")
    return 0


def _members(args: argparse.Namespace) -> int:
    group = require_group_name(args.group)
    conn = dbfile.connect(args.path, create=False, read_only=True)
    try:
        members = store.call(conn, store.group_members, group, float("-inf"))
    finally:
        conn.close()
    for channel in sorted(channel for channel, _ in members):
        print(channel)
    return 0


def _processes(args: argparse.Namespace) -> int:
    conn = dbfile.connect(args.path, create=False, read_only=True)
    now = time.time()
    try:
        found = store.call(conn, store.census, now)
    finally:
        conn.close()
    rows = [("PROCESS", "PID", "HOST", "STARTED", "LEASE", "MEMBERSHIPS", "QUEUED", "DROPPED")]
    for owner, memberships, queued in found.processes:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.started)) if owner.pid else "-"
        rows.append(
            (
                owner.id,
                str(owner.pid or "-"),
                owner.host or "-",
                started,
                _lease(owner, now),
                str(memberships),
                str(queued),
                str(found.dropped.get(owner.id, 0)),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        f"named channels: {found.named_memberships} memberships, {found.named_queued} queued messages, "
        f"{found.dropped.get(None, 0)} dropped"
    )
    return 0


def _lease(owner: store.Owner, now: float) -> str:
    """How a process's lease stands: alive, or how long until (or since) it may be pruned."""
    if not owner.pid:
        state = "never registered (a channel name nobody made)"
    elif owner.lease_until > now:
        return f"alive (lease ends in {owner.lease_until - now:.0f} s)"
    else:
        state = f"lease ended {now - owner.lease_until:.0f} s ago"
    prunable = owner.lease_until + owner.grace - now
    return f"{state}, pruned in {prunable:.0f} s" if prunable > 0 else f"{state}, prunable now"


def _prune(args: argparse.Namespace) -> int:
    conn = dbfile.connect(args.path, create=False)
    try:
        report = store.call(conn, store.prune, time.time())
    finally:
        conn.close()
    dead = ", ".join(report.processes) if report.processes else "none"
    print(f"dead processes pruned: {len(report.processes)} ({dead})")
    print(f"memberships removed: {report.memberships}")
    print(f"messages removed: {report.messages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
