"""The built-in actor lifecycle, kept as a table.

Rule 1. Every connection actor starts in ``connecting`` and ends in ``closed``;
        ``closed`` is final.
Rule 2. The application moves the machine with ``accept``, ``close`` and ``deny``; the
        peer moves it with ``disconnect``; the runtime moves it with ``fail`` when a
        handler raises.
Rule 3. ``send`` and ``receive`` are internal transitions of ``open``: they are legal
        there (and in any state nested under ``open``) and change nothing.
Rule 4. ``close`` in ``closing`` or ``closed`` is ignored: closing twice is harmless.
Rule 5. ``closing`` waits for the server's word that the connection is gone
        (``disconnect``); only then is the actor ``closed``, whoever closed first.
Rule 6. Anything else is illegal and raises :class:`IllegalTransition` naming the
        state, the operation and what the state allows.

Theory of operation: the table below is compiled once into a ``transitions``
``HierarchicalMachine`` (which validates it and can draw it) and then flattened into
a dict ``(state, trigger) -> target``.  Actors are *headless*: each keeps its current
state in one attribute and asks the shared :class:`Lifecycle` for the next one, a
dict lookup, so no per-instance machine or model binding exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from ._errors import IllegalTransition

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "LIFECYCLE",
    "OPEN",
    "Lifecycle",
    "build_machine",
]

CONNECTING: Final = "connecting"
OPEN: Final = "open"
CLOSING: Final = "closing"
CLOSED: Final = "closed"

SEPARATOR: Final = "."
"""Nested state names are joined with ``.`` (``open.in_room``); ``_`` would mangle ``in_room``."""


class _State(NestedState):
    separator = SEPARATOR


class _Machine(HierarchicalMachine):
    state_cls = _State


@attrs.frozen
class Edge:
    """One row of a lifecycle table: *trigger* moves *source* to *target* (None: stay)."""

    trigger: str
    source: str
    target: str | None


# -- the table ------------------------------------------------------------------------------

STATES: Final[Sequence[str]] = (CONNECTING, OPEN, CLOSING, CLOSED)

EDGES: Final[Sequence[Edge]] = (
    Edge("accept", CONNECTING, OPEN),
    Edge("deny", CONNECTING, CLOSING),
    Edge("close", CONNECTING, CLOSING),  # closing before accept denies the handshake
    Edge("close", OPEN, CLOSING),
    Edge("send", OPEN, None),
    Edge("receive", OPEN, None),
    Edge("disconnect", CONNECTING, CLOSED),
    Edge("disconnect", OPEN, CLOSED),
    Edge("disconnect", CLOSING, CLOSED),
    Edge("fail", CONNECTING, CLOSED),
    Edge("fail", OPEN, CLOSED),
    Edge("fail", CLOSING, CLOSED),
)

INTERNAL: Final[frozenset[str]] = frozenset({"receive", "disconnect", "fail"})
"""Triggers the runtime fires; error messages do not offer them to the application."""

IGNORED: Final[frozenset[tuple[str, str]]] = frozenset({(CLOSING, "close"), (CLOSED, "close")})
"""(state, trigger) pairs that are legal but do nothing."""

HINTS: Final[Mapping[tuple[str, str], str]] = {
    ("send", CONNECTING): "call accept() first",
    ("send", CLOSING): "close() was already called; the connection is closing",
    ("send", CLOSED): "the connection is closed",
    ("receive", CONNECTING): "the connection is not accepted yet",
    ("accept", OPEN): "accept() was already called",
    ("accept", CLOSING): "close() was already called",
    ("accept", CLOSED): "the connection is closed",
    ("deny", OPEN): "the connection was already accepted; use close()",
    ("deny", CLOSING): "the connection is closing",
    ("deny", CLOSED): "the connection is closed",
}


def build_machine(
    states: Sequence[str | Mapping[str, Any]] = STATES,
    edges: Iterable[Edge] = EDGES,
    initial: str = CONNECTING,
) -> Any:
    """Build the ``transitions`` machine for a table (validation and diagrams only)."""
    machine = _Machine(
        model=None,
        states=list(states),
        initial=initial,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )
    for edge in edges:
        machine.add_transition(edge.trigger, edge.source, edge.target)
    return machine


@attrs.frozen
class Lifecycle:
    """A compiled, shared lifecycle: ``next(state, trigger)`` for every headless actor."""

    initial: str
    states: tuple[str, ...]
    table: Mapping[tuple[str, str], str]
    ignored: frozenset[tuple[str, str]]
    hints: Mapping[tuple[str, str], str]
    internal: frozenset[str] = INTERNAL
    sources: Mapping[str, frozenset[str]] = attrs.field(init=False)
    """For each trigger, the states where it is legal (a fast path for hot operations)."""

    def __attrs_post_init__(self) -> None:
        sources: dict[str, set[str]] = {}
        for state, trigger in self.table:
            sources.setdefault(trigger, set()).add(state)
        object.__setattr__(self, "sources", {t: frozenset(s) for t, s in sources.items()})

    @classmethod
    def compile(
        cls,
        states: Sequence[str | Mapping[str, Any]] = STATES,
        edges: Sequence[Edge] = EDGES,
        *,
        initial: str = CONNECTING,
        ignored: frozenset[tuple[str, str]] = IGNORED,
        hints: Mapping[tuple[str, str], str] = HINTS,
    ) -> Lifecycle:
        """Validate a table with ``transitions`` and flatten it, parents' edges inherited."""
        machine = build_machine(states, edges, initial)
        names = tuple(machine.get_nested_state_names())
        table: dict[tuple[str, str], str] = {}
        for name in names:
            for trigger in machine.events:
                scope = name
                while True:
                    found = machine.get_transitions(trigger, scope)
                    if found:
                        dest = found[0].dest
                        table[name, trigger] = name if dest is None else dest
                        break
                    if SEPARATOR not in scope:
                        break
                    scope = scope.rsplit(SEPARATOR, 1)[0]
        return cls(initial, names, table, ignored, hints)

    def allowed(self, state: str) -> list[str]:
        """Operations the application may perform in *state*."""
        legal = [source_trigger for source_trigger in self.table if source_trigger[0] == state]
        legal += [pair for pair in self.ignored if pair[0] == state]
        return [trigger for _, trigger in legal if trigger not in self.internal]

    def next(self, state: str, trigger: str) -> str:
        """Return the state *trigger* leads to from *state*, or raise :class:`IllegalTransition`."""
        target = self.table.get((state, trigger))
        if target is not None:
            return target
        if (state, trigger) in self.ignored:
            return state
        raise IllegalTransition(trigger, state, self.allowed(state), self.hints.get((trigger, state)))

    def can(self, state: str, trigger: str) -> bool:
        """Whether *trigger* is legal (or harmlessly ignored) in *state*."""
        return (state, trigger) in self.table or (state, trigger) in self.ignored


LIFECYCLE: Final = Lifecycle.compile()
"""The lifecycle every connection actor shares."""
