"""What the inspector shows, computed from the registry: plain JSON-ready dicts.

Theory of operation
-------------------
Nothing here runs unless an inspector is asked: :func:`summary` walks
:data:`~._inspect_registry.LIVE` once (a list copy, then attribute reads per actor: no
await, so the picture is consistent), groups the actors by class and state, applies the
list's filters and caps the list at ``limit`` rows (the counts always cover everyone).
Message rates come from the tap's counts, sampled at each call into :class:`Rates`
(a few seconds' window). The layer's side — every process's groups and their members,
through :class:`~interlock.layers.ListableGroupLayer` — is :func:`layer_summary`, the
only part that awaits; a member's process is the ``PROCESS`` part of its channel name
(``PREFIX.PROCESS!TOKEN``, as the bundled layers name channels).

A diagram is the actor class's own (``actor.diagram("svg")``, the current state
highlighted by :mod:`interlock.dsl`), cached per class and state; without Graphviz it is
the Mermaid text instead.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from interlock.dsl import DiagramError
from interlock.layers import ListableGroupLayer

from ._inspect_registry import LIVE, TAP
from ._machine import _MachineActor

__all__ = [
    "AGENT_GROUP",
    "Filters",
    "Rates",
    "actor_detail",
    "diagram_of",
    "layer_summary",
    "observe_state_actors",
    "process_of",
    "summary",
]

logger = logging.getLogger("interlock.actors")

STARTED: Final = time.time()
_WINDOW: Final = 5.0  # seconds of counts the rates average over
_OWN: Final = frozenset({"_InspectorStream"})  # the inspector's own actors: not shown
AGENT_GROUP: Final = "interlock.inspector"  # the inspecting processes' directory: not shown among groups
_MAX_GROUPS: Final = 100  # groups whose members are listed by process, at most
_DIAGRAMS: dict[tuple[type, str | None], tuple[str, str]] = {}
_OBSERVED: dict[type[_MachineActor], bool] = {}  # state-actor classes made to record, and what they had


def observe_state_actors(on: bool) -> None:
    """Make every state-actor class report its transitions (*on*), or restore what each had.

    A state actor builds :class:`~interlock.actors.TransitionRecord`\\s only when its
    class observes (``_observed``: it overrides ``on_transition``); while watched, every
    class does, so that the records reach the tap.
    """
    if not on:
        for cls, had in _OBSERVED.items():
            cls._observed = had
        _OBSERVED.clear()
        return
    pending: list[type[_MachineActor]] = [_MachineActor]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls not in _OBSERVED:
            _OBSERVED[cls] = bool(cls.__dict__.get("_observed", cls._observed))
            cls._observed = True


def process_of(channel: str) -> str | None:
    """The ``PROCESS`` part of a ``PREFIX.PROCESS!TOKEN`` channel name (None for other names)."""
    head, bang, _token = channel.partition("!")
    if not bang:
        return None
    return head.rpartition(".")[2] or None


class Filters:
    """The actor list's filters (every one optional): class, state, group and a search text."""

    __slots__ = ("cls", "group", "limit", "state", "text")

    def __init__(
        self,
        cls: str | None = None,
        state: str | None = None,
        group: str | None = None,
        text: str | None = None,
        limit: int = 200,
    ) -> None:
        self.cls = cls or None
        self.state = state or None
        self.group = group or None
        self.text = (text or "").lower() or None
        self.limit = limit

    @classmethod
    def from_query(cls, query: Mapping[str, list[str]]) -> Filters:
        """Filters from a parsed query string (``class``, ``state``, ``group``, ``q``, ``limit``).

        Raises :class:`ValueError` naming a bad ``limit``.
        """

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        raw_limit = one("limit")
        limit = 200
        if raw_limit is not None:
            if not raw_limit.isdigit() or not 0 <= int(raw_limit) <= 10_000:
                msg = f"limit={raw_limit!r}: expected a whole number from 0 to 10000"
                raise ValueError(msg)
            limit = int(raw_limit)
        return cls(one("class"), one("state"), one("group"), one("q"), limit)

    def match(self, row: Mapping[str, Any]) -> bool:
        """Whether the actor's row passes every filter."""
        if self.cls is not None and row["class"] != self.cls:
            return False
        if self.state is not None and row["state"] != self.state and not str(row["state"]).startswith(self.state + "."):
            return False
        if self.group is not None and self.group not in row["groups"]:
            return False
        if self.text is not None:
            haystack = " ".join(str(row[key]) for key in ("id", "class", "state", "channel", "path", "client"))
            return self.text in haystack.lower()
        return True


class Rates:
    """Message rates per class and kind, over the last few seconds of the tap's counts."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque()

    def sample(self) -> dict[str, dict[str, float]]:
        """Take a sample now; return ``{class: {kind: per_second}}`` since the oldest kept."""
        now = time.monotonic()
        counts = dict(TAP.counts)
        samples = self._samples
        samples.append((now, counts))
        while len(samples) > 2 and now - samples[1][0] >= _WINDOW:
            samples.popleft()
        then, old = samples[0]
        elapsed = now - then
        rates: dict[str, dict[str, float]] = {}
        if elapsed <= 0:
            return rates
        for (cls, kind), count in counts.items():
            if cls in _OWN:
                continue
            delta = count - old.get((cls, kind), 0)
            if delta > 0:
                rates.setdefault(cls, {})[kind] = round(delta / elapsed, 2)
        return rates


def _row(actor: Any) -> dict[str, Any]:
    scope = getattr(actor, "scope", None) or {}
    client = scope.get("client")
    mailbox = getattr(actor, "_mailbox", None)
    ending = getattr(actor, "ending", None)
    return {
        "id": str(id(actor)),
        "class": type(actor).__qualname__,
        "module": type(actor).__module__,
        "state": str(getattr(actor, "state", "running")),
        "channel": getattr(actor, "_channel_name", None),
        "groups": list(getattr(actor, "_joined", ())),
        "mailbox": len(mailbox) if mailbox is not None else 0,
        "mailbox_size": getattr(actor, "mailbox_size", None),
        "type": scope.get("type"),
        "path": scope.get("path"),
        "client": f"{client[0]}:{client[1]}" if client else None,
        "ending": None if ending is None else ending.cause,
    }


def summary(
    filters: Filters | None = None,
    rates: Rates | None = None,
    memberships: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """This process's actors: counts by class and state, the filtered list, mailboxes, groups, rates.

    *memberships* maps channel names to the groups the layer lists them in (see
    :func:`layer_summary`): it adds the groups actors joined with ``group_add()`` to
    those of their class's ``groups``.
    """
    filters = filters or Filters()
    for key in [key for key in TAP.transitions if key not in LIVE]:  # the records of ended actors
        TAP.transitions.pop(key, None)
    actors = [actor for actor in list(LIVE.values()) if not getattr(type(actor), "_inspector_own", False)]
    rows = [_row(actor) for actor in actors]
    if memberships:
        for row in rows:
            extra = memberships.get(row["channel"] or "")
            if extra:
                row["groups"] = sorted({*row["groups"], *extra})
    classes: dict[str, dict[str, Any]] = {}
    groups: dict[str, int] = {}
    for row in rows:
        entry = classes.setdefault(row["class"], {"name": row["class"], "count": 0, "states": {}, "mailbox": 0})
        entry["count"] += 1
        entry["states"][row["state"]] = entry["states"].get(row["state"], 0) + 1
        entry["mailbox"] += row["mailbox"]
        for group in row["groups"]:
            groups[group] = groups.get(group, 0) + 1
    rate = rates.sample() if rates is not None else {}
    for name, per_kind in rate.items():
        classes.setdefault(name, {"name": name, "count": 0, "states": {}, "mailbox": 0})["rates"] = per_kind
    matching = [row for row in rows if filters.match(row)]
    matching.sort(key=lambda row: (row["class"], row["state"], row["id"]))
    return {
        "process": {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "python": sys.version.split()[0],
            "started": STARTED,
            "uptime": round(time.time() - STARTED, 1),
        },
        "time": time.time(),
        "watchers": TAP.watchers,
        "total": len(rows),
        "classes": sorted(classes.values(), key=lambda entry: entry["name"]),
        "groups": dict(sorted(groups.items())),
        "matching": len(matching),
        "actors": matching[: filters.limit],
        "mailbox_total": sum(row["mailbox"] for row in rows),
    }


def diagram_of(actor: Any) -> tuple[str, str] | None:
    """``(format, text)``: the actor's diagram with its state highlighted, SVG if Graphviz is there."""
    if not any("diagram" in vars(klass) for klass in type(actor).__mro__):
        return None
    key = (type(actor), str(getattr(actor, "state", "")))
    cached = _DIAGRAMS.get(key)
    if cached is not None:
        return cached
    try:
        draw = actor.diagram  # a descriptor: it compiles the class's machine
        try:
            result = ("svg", draw("svg"))
        except DiagramError:  # no Graphviz (the svg extra): the Mermaid text is still useful
            result = ("mermaid", draw("mermaid"))
    except Exception as exc:  # noqa: BLE001 - a class that cannot be drawn must not break the page
        logger.warning("the inspector cannot draw %s: %s: %s", type(actor).__qualname__, type(exc).__name__, exc)
        result = ("error", f"{type(exc).__name__}: {exc}")
    if result[0] == "svg":
        text = result[1]
        result = ("svg", text[text.find("<svg") :] if "<svg" in text else text)
    if len(_DIAGRAMS) > 256:
        _DIAGRAMS.clear()
    _DIAGRAMS[key] = result
    return result


def actor_detail(actor_id: str, memberships: Mapping[str, list[str]] | None = None) -> dict[str, Any] | None:
    """One actor's row, its diagram and its recent transitions (None if it is gone)."""
    actor = LIVE.get(int(actor_id)) if actor_id.isdigit() else None
    if actor is None or getattr(type(actor), "_inspector_own", False):
        return None
    row = _row(actor)
    extra = (memberships or {}).get(row["channel"] or "")
    if extra:
        row["groups"] = sorted({*row["groups"], *extra})
    drawn = diagram_of(actor)
    identity = f"{type(actor).__qualname__}:{row['channel'] or id(actor)}"
    records = [r for r in TAP.transitions.get(id(actor), ()) if r.actor == identity]
    row["diagram"] = None if drawn is None else {"format": drawn[0], "text": drawn[1]}
    row["transitions"] = [
        {
            "time": r.time,
            "kind": r.kind,
            "event": r.event,
            "source": r.source,
            "target": r.target,
            "accepted": r.accepted,
            "handler": r.handler,
        }
        for r in records
    ]
    row["records_transitions"] = hasattr(type(actor), "_observed")
    return row


async def layer_summary(layer: object) -> dict[str, Any] | None:
    """Every process's groups and members through the layer's listing (None: it cannot list)."""
    if layer is None:
        return None
    info: dict[str, Any] = {"class": type(layer).__qualname__, "listable": isinstance(layer, ListableGroupLayer)}
    if not isinstance(layer, ListableGroupLayer):
        return info
    groups = await layer.groups()
    groups.pop(AGENT_GROUP, None)
    processes: dict[str, int] = {}
    by_group: dict[str, dict[str, int]] = {}
    memberships: dict[str, list[str]] = {}
    for group in sorted(groups)[:_MAX_GROUPS]:
        members = await layer.group_members(group)
        counts: dict[str, int] = {}
        for member in members:
            memberships.setdefault(member, []).append(group)
            process = process_of(member) or "?"
            counts[process] = counts.get(process, 0) + 1
            processes[process] = processes.get(process, 0) + 1
        by_group[group] = counts
    info["groups"] = dict(sorted(groups.items()))
    info["members_by_process"] = by_group
    info["memberships_by_process"] = dict(sorted(processes.items()))
    info["groups_truncated"] = len(groups) > _MAX_GROUPS
    info["this_process"] = own_processes()
    info["memberships"] = memberships
    return info


def own_processes() -> list[str]:
    """The layer process names of this process's live actors' channels, sorted."""
    own = {process_of(str(getattr(actor, "_channel_name", "") or "")) for actor in list(LIVE.values())}
    return sorted(p for p in own if p)


def layer_overview(listing: dict[str, Any] | None) -> dict[str, Any] | None:
    """*listing* without its per-channel memberships: what a summary shows of the layer."""
    return None if listing is None else {k: v for k, v in listing.items() if k != "memberships"}
