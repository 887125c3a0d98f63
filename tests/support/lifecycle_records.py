"""Reading what ``tests/actors/lifecycle_app.py`` wrote down, and checking the teardown guarantee.

The app appends one JSON line per hook call to ``<records>/<pid>.jsonl``.  Per connection
(its ``tag``) the lines of one process are in the order the hooks ran, so the guarantee
can be checked after the fact, whichever process served the connection:

* ``connect`` once if the app saw the handshake at all; then
* every ``enter`` of a state is matched by one ``exit``, exits innermost first
  (a stack), each exit hook finishing (``exit_done``);
* ``disconnect`` exactly once, after every exit hook, with the expected cause and code;
* nothing after ``disconnect``.

:func:`check` returns the problems of every connection; :func:`report` groups them by
kind, with counts and the tags, so an assertion message says which connections broke
which part of the guarantee.  :func:`log_problems` does the same for the server log.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
from interlock.layers import SQLiteChannelLayer

__all__ = [
    "Expect",
    "Records",
    "check",
    "deliberate_failures",
    "leftover_members",
    "log_problems",
    "read_records",
    "report",
]

Event = dict[str, Any]


@attrs.frozen
class Expect:
    """What one connection's ending should look like; None checks nothing."""

    causes: frozenset[str] | None = None
    codes: frozenset[int] | None = None
    must_reach_app: bool = True


@attrs.frozen
class Records:
    """Every recorded event, by connection tag, in the order each process wrote them."""

    by_tag: Mapping[str, list[Event]]

    def events(self, tag: str) -> list[Event]:
        """The events of one connection (empty if the app never saw it)."""
        return self.by_tag.get(tag, [])

    def channel_tags(self) -> dict[str, str]:
        """Map each connection's channel name to its tag."""
        return {
            event["channel"]: tag
            for tag, events in self.by_tag.items()
            for event in events
            if event["event"] == "connect" and event.get("channel")
        }

    def ended(self, tags: Iterable[str]) -> bool:
        """Whether each of *tags* the app saw has its ``disconnect`` recorded."""
        for tag in tags:
            events = self.events(tag)
            if events and not any(event["event"] == "disconnect" for event in events):
                return False
        return True


def read_records(directory: Path) -> Records:
    """Read every ``*.jsonl`` file of *directory* (a half-written last line is skipped)."""
    by_tag: dict[str, list[Event]] = defaultdict(list)
    for file in sorted(directory.glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["pid"] = file.stem
            by_tag[event["tag"]].append(event)
    return Records(dict(by_tag))


def check(events: list[Event], expect: Expect) -> list[str]:
    """The ways one connection's record breaks the guarantee (empty: none)."""
    if not events:
        return ["the app never saw the connection"] if expect.must_reach_app else []
    problems: list[str] = []
    kinds = Counter(event["event"] for event in events)
    if kinds["connect"] != 1:
        problems.append(f"connect() recorded {kinds['connect']} times")
    if len({event["pid"] for event in events}) > 1:
        problems.append("recorded by more than one process")
    stack: list[str] = []
    pending_done: list[str] = []
    disconnected = False
    for event in events:
        kind = event["event"]
        if disconnected and kind not in ("exit_done",):
            problems.append(f"{kind} {event.get('state') or event.get('what') or ''} after disconnect()".strip())
        if kind == "enter":
            stack.append(event["state"])
        elif kind == "exit":
            state = event["state"]
            if not stack or state not in stack:
                problems.append(f"exit hook of {state} ran without a matching entry (ran twice?)")
            else:
                if stack[-1] != state:
                    problems.append(f"exit hook of {state} ran before the inner {stack[-1]}'s (not innermost first)")
                stack.remove(state)
            pending_done.append(state)
        elif kind == "exit_done":
            if event["state"] in pending_done:
                pending_done.remove(event["state"])
        elif kind == "disconnect":
            if stack:
                problems.append(f"disconnect() ran while still in {stack[::-1]}: exit hooks owed")
            disconnected = True
            if expect.causes is not None and event.get("cause") not in expect.causes:
                problems.append(f"disconnect cause {event.get('cause')!r}, expected one of {sorted(expect.causes)}")
            if expect.codes is not None and event.get("code") not in expect.codes:
                problems.append(f"disconnect code {event.get('code')!r}, expected one of {sorted(expect.codes)}")
    if stack:
        problems.append(f"exit hook never ran for {stack[::-1]}")
    if pending_done:
        problems.append(f"exit hook of {pending_done} started but never finished (cut short)")
    if kinds["disconnect"] != 1:
        problems.append(f"disconnect() ran {kinds['disconnect']} times")
    return problems


def report(problems: Mapping[str, list[str]], labels: Mapping[str, str] | None = None, limit: int = 6) -> str:
    """Group per-connection problems by kind: ``Nx <problem> [label]: tag, tag, ...``."""
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tag, found in problems.items():
        label = (labels or {}).get(tag, "")
        for problem in found:
            grouped[(re.sub(r"\d+\.\d+", "#", problem), label)].append(tag)
    lines = []
    for (problem, label), tags in sorted(grouped.items(), key=lambda item: -len(item[1])):
        shown = ", ".join(sorted(tags)[:limit]) + (", ..." if len(tags) > limit else "")
        where = f" [{label}]" if label else ""
        lines.append(f"  {len(tags)}x {problem}{where}: {shown}")
    return "\n".join(lines)


_CONTEXT = 12  # log lines shown after an unexpected ERROR or Traceback line
_DELIBERATE = re.compile(r"^ERROR interlock\.actors .*failed: RuntimeError: deliberate failure in (\S+)")


def _blocks(log: str) -> list[str]:
    """Split the server log into records: a line, and the ``| `` lines continuing it."""
    blocks: list[str] = []
    for line in log.splitlines():
        if line.startswith("| ") and blocks:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    return blocks


def deliberate_failures(log: str) -> Counter[str]:
    """How many ERROR records of a deliberate handler failure each tag has (with a traceback)."""
    found: Counter[str] = Counter()
    for block in _blocks(log):
        match = _DELIBERATE.match(block)
        if match and "Traceback" in block:
            found[match.group(1)] += 1
    return found


def log_problems(log: str, deliberate: Collection[str], limit: int = 40) -> list[str]:
    """What the log says beyond one ERROR record per tag in *deliberate*.

    Every other line holding ``ERROR`` or ``Traceback`` is a problem, and so is a
    deliberate failure logged not exactly once.
    """
    problems: list[str] = []
    counts = deliberate_failures(log)
    for tag in sorted(deliberate):
        if counts[tag] != 1:
            problems.append(f"deliberate failure of {tag} logged {counts[tag]} times at ERROR with a traceback")
    blocks = _blocks(log)
    unexpected = 0
    shown: list[str] = []
    taken: set[int] = set()
    for index, block in enumerate(blocks):
        match = _DELIBERATE.match(block)
        if match and match.group(1) in deliberate and "Traceback" in block:
            continue
        if "ERROR" in block or "Traceback" in block:
            unexpected += 1
            # a server's own traceback is plain lines: show what follows the first one too
            context = 1 if "\n" in block else _CONTEXT
            for follower in range(index, min(index + context, len(blocks))):
                if follower not in taken:
                    taken.add(follower)
                    shown.append(blocks[follower])
    if unexpected:
        lines = "\n".join(shown).splitlines()
        excerpt = "\n".join(lines[:limit]) + (f"\n  ... {len(lines) - limit} more lines" if len(lines) > limit else "")
        problems.append(f"{unexpected} unexpected log lines with ERROR or Traceback; excerpt:\n{excerpt}")
    return problems


async def leftover_members(
    db: Path, groups: Iterable[str], *, within: float, only: Collection[str] | None = None
) -> dict[str, frozenset[str]]:
    """The members still in *groups*, read from the layer file by this process.

    Polls until none is left or *within* seconds have passed (0: look once).  With
    *only*, channels not in it are ignored (other tests' connections).
    """
    wanted = list(groups)
    layer = SQLiteChannelLayer(db)

    async def look() -> dict[str, frozenset[str]]:
        found = {}
        for group in wanted:
            members = await layer.group_members(group)
            if only is not None:
                members = frozenset(members & frozenset(only))
            if members:
                found[group] = members
        return found

    try:
        left = await look()
        deadline = anyio.current_time() + within
        while left and anyio.current_time() < deadline:
            await anyio.sleep(0.05)
            left = await look()
        return left
    finally:
        await layer.close()
