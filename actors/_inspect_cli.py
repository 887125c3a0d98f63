"""``interlock inspect URL``: the inspector's summary in the terminal.

It reads ``URL/api/summary`` (or, with ``--watch``, the ``URL/events`` stream, so it
counts as a watcher and the message rates fill in), sending the token as
``Authorization: Bearer`` (from ``--token`` or ``INTERLOCK_INSPECTOR_TOKEN``), and
prints the inspecting processes on the layer, the counts by class and state, the actor
list, the groups of the process and, with ``--layer``, every process's groups through
the channel layer; ``--process ID`` shows another process (the one serving the URL asks it
through the layer). Only the standard
library: no HTTP client to install.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

__all__ = ["add_inspect_command", "format_summary", "inspect_command"]

_TIMEOUT = 10.0


def _columns(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_summary(content: dict[str, Any]) -> str:
    """The summary as plain text, in the page's order."""
    if "unreachable" in content:  # a stream of another process, which is gone or not answering
        lines = [f"interlock inspector: process {content.get('viewing')}: {content['unreachable']}", ""]
        return "\n".join([*lines, *_processes(content.get("processes") or [], None)]) + "\n"
    process = content["process"]
    out = [
        f"interlock inspector: pid {process['pid']} on {process['host']}, up {process['uptime']:g} s; "
        f"{content['total']} actors, {content['mailbox_total']} waiting in mailboxes, "
        f"{content['watchers']} watching",
        "",
    ]
    processes = content.get("processes")
    if processes:
        out += [*_processes(processes, content.get("viewing")), ""]
    rows = [["CLASS", "LIVE", "STATES", "WAITING", "CLIENT/S", "LAYER/S"]]
    for entry in content["classes"]:
        rates = entry.get("rates", {})
        states = ", ".join(f"{state} {count}" for state, count in sorted(entry["states"].items()))
        rows.append(
            [
                entry["name"],
                str(entry["count"]),
                states or "-",
                str(entry["mailbox"]),
                f"{rates.get('client', 0):.1f}",
                f"{rates.get('layer', 0):.1f}",
            ]
        )
    out.extend(_columns(rows, {1, 3, 4, 5}) if len(rows) > 1 else ["no live actors"])
    shown, matching = len(content["actors"]), content["matching"]
    title = f"ACTORS ({matching} of {content['total']} match" + (f", first {shown} shown)" if shown < matching else ")")
    out += ["", title]
    rows = [["ID", "CLASS", "STATE", "PATH", "CLIENT", "GROUPS", "MAILBOX"]]
    for actor in content["actors"]:
        rows.append(
            [
                actor["id"],
                actor["class"],
                actor["state"],
                actor["path"] or "-",
                actor["client"] or "-",
                ",".join(actor["groups"]) or "-",
                str(actor["mailbox"]),
            ]
        )
    if len(rows) > 1:
        out.extend(_columns(rows, {6}))
    out += ["", "GROUPS IN THIS PROCESS"]
    out.extend(f"{name}  {count}" for name, count in content["groups"].items()) if content["groups"] else out.append(
        "none"
    )
    layer = content.get("layer")
    if "layer" in content:
        out.append("")
        if layer is None:
            out.append("LAYER: none")
        elif not layer["listable"]:
            out.append(f"LAYER {layer['class']}: cannot list its groups")
        else:
            out.append(f"GROUPS ON THE LAYER ({layer['class']}, every process)")
            here = set(layer["this_process"])
            for name, count in layer["groups"].items():
                parts = ", ".join(
                    f"{'this process' if p in here else p} {n}"
                    for p, n in sorted(layer["members_by_process"].get(name, {}).items())
                )
                out.append(f"{name}  {count}" + (f"  ({parts})" if parts else ""))
    return "\n".join(out) + "\n"


def _processes(processes: list[dict[str, Any]], viewing: object) -> list[str]:
    """The inspecting processes on the layer, one line each (``*`` marks the one shown)."""
    rows = [["", "PROCESS", "PID", "HOST", "ACTORS", "WAITING", "CLASSES"]]
    for row in processes:
        mark = "*" if row.get("id") == viewing else ""
        if not row.get("answering"):
            rows.append([mark, str(row["id"]), "-", "-", "-", "-", f"not answering: {row.get('error', '')}"])
            continue
        classes = ", ".join(f"{name} {count}" for name, count in sorted(row["classes"].items()))
        where = f"{row['host']}" + (" (serving this)" if row["this"] else "")
        rows.append(
            [mark, str(row["id"]), str(row["pid"]), where, str(row["total"]), str(row["mailbox_total"]), classes or "-"]
        )
    return [
        f"PROCESSES ({len(processes)} inspecting on the layer; --process ID shows another)",
        *_columns(rows, {4, 5}),
    ]


def _url(base: str, route: str, query: dict[str, str]) -> str:
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        msg = f"{base!r} is not an http:// or https:// URL of a mounted inspector (e.g. http://127.0.0.1:8000/_interlock/)"
        raise ValueError(msg)
    root = base if base.endswith("/") else base + "/"
    return urllib.parse.urljoin(root, route) + ("?" + urllib.parse.urlencode(query) if query else "")


def _open(url: str, token: str | None, timeout: float | None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json, text/event-stream"})  # noqa: S310
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - the scheme is checked in _url
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode("utf-8", "replace").strip()
        hint = " (pass --token or set INTERLOCK_INSPECTOR_TOKEN)" if exc.code == 401 else ""
        msg = f"{url.split('?', maxsplit=1)[0]} answered {exc.code}: {reason or exc.reason}{hint}"
        raise ConnectionError(msg) from exc
    except (urllib.error.URLError, OSError) as exc:
        why: object = getattr(exc, "reason", None) or exc
        msg = f"cannot reach the inspector at {url.split('?', maxsplit=1)[0]}: {why}"
        raise ConnectionError(msg) from exc


def _query(args: argparse.Namespace) -> dict[str, str]:
    query = {"class": args.cls, "state": args.state, "group": args.group, "q": args.search}
    found = {key: value for key, value in query.items() if value}
    found["limit"] = str(args.limit)
    if args.process:
        found["process"] = args.process
    return found


def _watch(args: argparse.Namespace, token: str | None, out: TextIO) -> int:
    url = _url(args.url, "events", _query(args))
    deadline = None if args.watch_for is None else time.monotonic() + args.watch_for
    # The stream sends only changes, and a heartbeat every 15 s: a read may wait that long.
    wait = _TIMEOUT + 20 if args.watch_for is None else min(args.watch_for, _TIMEOUT + 20)
    with _open(url, token, wait) as stream:
        try:
            _follow(stream, args, out, deadline)
        except TimeoutError:  # nothing changed before the deadline (or in a heartbeat's time)
            if deadline is None or time.monotonic() < deadline:
                msg = f"the inspector's stream at {url.split('?', maxsplit=1)[0]} went silent"
                raise ConnectionError(msg) from None
    return 0


def _follow(stream: Any, args: argparse.Namespace, out: TextIO, deadline: float | None) -> None:
    event, data = None, []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))
        elif not line and data:
            if event == "summary":
                content = json.loads("\n".join(data))
                if not args.layer:
                    content.pop("layer", None)
                if out.isatty():
                    out.write("\x1b[H\x1b[2J")
                out.write(format_summary(content) + ("" if out.isatty() else "\n"))
                out.flush()
            event, data = None, []
        if deadline is not None and time.monotonic() >= deadline:
            return


def inspect_command(args: argparse.Namespace) -> int:
    """Run ``interlock inspect``; print an error and return 2 when the inspector cannot be read."""
    token = args.token or os.environ.get("INTERLOCK_INSPECTOR_TOKEN") or None
    try:
        if args.watch:
            return _watch(args, token, sys.stdout)
        with _open(_url(args.url, "api/summary", _query(args)), token, _TIMEOUT) as response:
            content = json.loads(response.read())
        if not args.layer:
            content.pop("layer", None)
    except (ValueError, ConnectionError) as exc:
        print(f"interlock: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl+C, or the output piped to head
        return 0
    sys.stdout.write(json.dumps(content, indent=2) + "\n" if args.json else format_summary(content))
    return 0


def add_inspect_command(commands: Any) -> None:
    """Add ``inspect`` to the ``interlock`` command's subcommands."""
    parser = commands.add_parser(
        "inspect",
        help="show a running app's actors, from its mounted inspector",
        description="Show a running process's live actors by class and state, their mailboxes and groups, "
        "read from the inspector mounted at URL. Exits 2 when the inspector cannot be read.",
    )
    parser.add_argument(
        "url", metavar="URL", help="where the inspector is mounted, e.g. http://127.0.0.1:8000/_interlock/"
    )
    parser.add_argument("--token", help="the inspector's token (default: $INTERLOCK_INSPECTOR_TOKEN)")
    parser.add_argument("--class", dest="cls", metavar="CLASS", help="list only actors of this class")
    parser.add_argument("--state", help="list only actors in this state (or below it: open matches open.lobby)")
    parser.add_argument("--group", help="list only members of this group")
    parser.add_argument(
        "-q", "--search", metavar="TEXT", help="list only actors whose path, channel or client has TEXT"
    )
    parser.add_argument("--limit", type=int, default=50, help="actors listed at most (default 50)")
    parser.add_argument(
        "--process", metavar="ID", help="show another process on the layer (its ID from the PROCESSES list)"
    )
    parser.add_argument("--layer", action="store_true", help="also list every process's groups through the layer")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--watch", action="store_true", help="follow the live stream (a watcher: message rates fill in) until Ctrl+C"
    )
    parser.add_argument("--watch-for", type=float, metavar="SECONDS", help="with --watch: stop after SECONDS")
    parser.set_defaults(handler=inspect_command)
