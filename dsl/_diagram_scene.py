"""The format-neutral scene every diagram is drawn from: what the boxes and arrows say.

:func:`build_scene` turns a compiled :class:`MachineSpec` into a tree of :class:`Node`
(one per state, with a *kind*, its name, the detail lines inside its box, its children
and initial child) and a list of :class:`SceneEdge` (a *kind* each, the self-loops of one
state and kind merged into one edge with a line per transition). The formats
(``_diagram_mermaid``, ``_diagram_dot``) walk it with a table of functions per node kind.

To draw something new: a kind of event is one entry in ``_EVENT_TEXT``; a line inside a
state's box one function in ``_DETAILS``; a kind of state a case in :func:`_node_kind`
plus one function in each format's node table, as the history pseudo-states and the
parallel regions are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Final, Literal

import attrs

from ._compile import MachineSpec, StateInfo, Transition
from ._lifecycle import CLOSED, CLOSING, CONNECTING, EDGES, OPEN, SEPARATOR

__all__ = [
    "FORMATS",
    "WEBSOCKET_VIEW",
    "DiagramError",
    "DiagramFormat",
    "EdgeKind",
    "Highlight",
    "LifecycleView",
    "Node",
    "NodeKind",
    "Scene",
    "SceneEdge",
    "build_scene",
    "edge_label",
    "state_details",
]

DiagramFormat = Literal["mermaid", "dot", "svg"]
FORMATS: Final = ("mermaid", "dot", "svg")
_SHOWN_LIFECYCLE: Final = ("accept", "close", "deny", "disconnect")


class DiagramError(RuntimeError):
    """A diagram cannot be produced (unknown format, or Graphviz missing for SVG)."""


# -- what the boxes and arrows say ----------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _delay(spec: MachineSpec, path: str, name: str, declared: float | None) -> float:
    """A delay's seconds after the class's ``delays`` overrides (*declared* if none)."""
    return spec.delays.get((path, name), declared or 0)


def _after(t: Transition, spec: MachineSpec) -> str:
    path, _, name = t.event.rpartition(":")
    return f"after {name} ({_seconds(_delay(spec, path, name, None))})"


_EVENT_TEXT: Final[Mapping[str, Callable[[Transition, MachineSpec], str]]] = {
    "client": lambda t, spec: t.event,
    "message": lambda t, spec: f"message {t.event}",
    "timeout": lambda t, spec: f"after {_seconds(_delay(spec, t.event, '', spec.states[t.event].timeout))}",
    "after": _after,
    "idle": lambda t, spec: f"idle {_seconds(spec.idle_timeout or 0)}",
    "always": lambda t, spec: "always",
}
"""How an edge names its event, by transition kind; other kinds read ``kind event``."""


def edge_label(t: Transition, spec: MachineSpec) -> str:
    """The text on *t*'s edge: the event, then ``[guard]``, then ``(internal)``."""
    event_text = _EVENT_TEXT.get(t.kind)
    text = f"{t.kind} {t.event}" if event_text is None else event_text(t, spec)
    if t.guard_label:
        text += f" [{t.guard_label}]"
    if t.target is None:
        text += " (internal)"
    return text


def _timeout_detail(spec: MachineSpec, info: StateInfo) -> str | None:
    if info.timeout is None:
        return None
    return f"timeout after {_seconds(_delay(spec, info.path, '', info.timeout))}"


def _delays_detail(spec: MachineSpec, info: StateInfo) -> str | None:
    if not info.after:
        return None
    return "delays " + ", ".join(f"{name} {_seconds(_delay(spec, info.path, name, s))}" for name, s in info.after)


_DETAILS: Final[Sequence[Callable[[MachineSpec, StateInfo], str | None]]] = (
    _timeout_detail,
    _delays_detail,
    lambda spec, info: "defers " + ", ".join(sorted(info.defer)) if info.defer else None,
    lambda spec, info: "invokes " + ", ".join(info.invoke) if info.invoke else None,
    lambda spec, info: "tags " + ", ".join(sorted(info.tags)) if info.tags else None,
    lambda spec, info: "terminal" if info.terminal else None,
)
"""The lines shown inside a state's box under its name, in this order."""


def state_details(spec: MachineSpec, path: str) -> list[str]:
    """The detail lines of the user state *path* (empty for built-in states)."""
    info = spec.states.get(path)
    if info is None:
        return []
    return [line for line in (detail(spec, info) for detail in _DETAILS) if line is not None]


# -- the lifecycle around the user's states -------------------------------------------------------


@attrs.frozen
class LifecycleView:
    """How a diagram draws a lifecycle around the user's states (which nest in ``open``).

    *states* are the built-in states in drawing order (``open`` among them), *names* the
    name each is drawn with where it differs from its key, *start* the first state,
    *finals* those that end the machine, and *edges* ``(source, target, label)`` arrows.
    """

    states: tuple[str, ...]
    start: str
    finals: tuple[str, ...]
    edges: tuple[tuple[str, str, str], ...]
    names: Mapping[str, str] = attrs.field(factory=dict)


def _lifecycle_edges() -> Iterator[tuple[str, str, str]]:
    merged: dict[tuple[str, str], list[str]] = {}
    for edge in EDGES:
        if edge.trigger in _SHOWN_LIFECYCLE and edge.target is not None:
            merged.setdefault((edge.source, edge.target), []).append(edge.trigger)
    for (source, target), triggers in merged.items():
        yield source, target, " / ".join(triggers)


WEBSOCKET_VIEW: Final = LifecycleView(
    states=(CONNECTING, OPEN, CLOSING, CLOSED),
    start=CONNECTING,
    finals=(CLOSED,),
    edges=tuple(_lifecycle_edges()),
)
"""The WebSocket lifecycle, as every state actor's diagram shows it."""


# -- the scene: a format-neutral tree of nodes and a list of edges --------------------------------

NodeKind = Literal["simple", "composite", "history", "region"]
EdgeKind = Literal["lifecycle", "external", "internal"]


@attrs.frozen
class Node:
    """A state (or pseudo-state) as drawn: its name, the lines inside its box, its children."""

    key: str  # the state's path (or a built-in state's name): DOT's node name
    name: str
    kind: NodeKind
    details: tuple[str, ...]
    children: tuple[str, ...] = ()
    initial: str | None = None


@attrs.frozen
class SceneEdge:
    """An arrow: one line of text per transition it stands for."""

    source: str
    target: str
    lines: tuple[str, ...]
    kind: EdgeKind


@attrs.frozen
class Scene:
    """A whole diagram: the nodes in drawing order, where each sits, the edges, the highlight."""

    title: str
    view: LifecycleView
    user: tuple[str, ...]  # the user's states in declaration order (Mermaid numbers them)
    nodes: Mapping[str, Node]
    parents: Mapping[str, str | None]  # None: drawn at the top level
    edges: tuple[SceneEdge, ...]
    current: frozenset[str]  # the highlighted states: a live actor's, one per region too
    enclosing: frozenset[str]

    def ancestors(self, key: str) -> list[str]:
        """The composite nodes enclosing *key*, outermost first."""
        out: list[str] = []
        parent = self.parents.get(key)
        while parent is not None:
            out.append(parent)
            parent = self.parents[parent]
        return out[::-1]

    def within(self, key: str, outer: str) -> bool:
        """Whether *key* is drawn inside the composite *outer* (at any depth)."""
        return outer in self.ancestors(key)


def _regions(spec: MachineSpec) -> dict[str, str]:
    """The parallel regions of ``open`` by node key (the path their states sit under): their names."""
    return {f"{OPEN}{SEPARATOR}{name}": name for name in spec.regions}


def _node_kind(spec: MachineSpec, key: str) -> NodeKind:
    """The kind of node *key* is drawn as (each format has a function per kind)."""
    if key == OPEN:
        return "composite" if spec.states else "simple"
    if key in _regions(spec):
        return "region"
    info = spec.states.get(key)
    return "composite" if info is not None and info.children else "simple"


def _initial_child(spec: MachineSpec, key: str) -> str | None:
    if key == OPEN:
        return spec.chain(spec.initial_leaf)[0] if spec.initial_leaf in spec.states else None
    region = _regions(spec).get(key)
    if region is not None:
        return spec.chain(spec.regions[region])[0]
    info = spec.states.get(key)
    return info.initial if info is not None else None


_HISTORY: Final[Mapping[str, tuple[str, str]]] = {"shallow": ("__history", "H"), "deep": ("__deep_history", "H*")}
"""A history pseudo-state's key suffix and name, by kind."""


def _history_key(path: str, kind: str) -> str:
    return f"{path}.{_HISTORY[kind][0]}"


def _target_key(t: Transition) -> str:
    """The node an edge of *t* points at: its target, or the target's history pseudo-state."""
    if t.target is None:
        return t.source
    return t.target if t.history is None else _history_key(t.target, t.history)


def _edge_kind(t: Transition) -> EdgeKind:
    return "internal" if t.target is None else "external"


def _merged(edges: Sequence[SceneEdge]) -> tuple[SceneEdge, ...]:
    """*edges* with the self-loops of one state and kind merged into one edge, a line each."""
    out: list[SceneEdge] = []
    loops: dict[tuple[str, EdgeKind], int] = {}
    for edge in edges:
        if edge.source != edge.target:
            out.append(edge)
            continue
        index = loops.get((edge.source, edge.kind))
        if index is None:
            loops[edge.source, edge.kind] = len(out)
            out.append(edge)
        else:
            out[index] = attrs.evolve(out[index], lines=out[index].lines + edge.lines)
    return tuple(out)


Highlight = str | Iterable[str] | None
"""A state path to mark (a live actor's), several (its state and its regions'), or none."""


def build_scene(spec: MachineSpec, view: LifecycleView, highlight: Highlight) -> Scene:
    nodes: dict[str, Node] = {}
    parents: dict[str, str | None] = {}

    histories = {(t.target, t.history) for t in spec.transitions if t.target is not None and t.history is not None}

    regions = _regions(spec)

    def add(key: str, parent: str | None) -> None:
        kind = _node_kind(spec, key)
        info = spec.states.get(key)
        children = tuple(p for p, i in spec.states.items() if i.parent == key) if kind != "simple" else ()
        if key == OPEN:
            children += tuple(regions)  # drawn after open's own states, one section each
        name = info.name if info is not None else regions.get(key, view.names.get(key, key))
        details = ("parallel region",) if kind == "region" else tuple(state_details(spec, key))
        pseudo = tuple(_history_key(key, h) for h in sorted(_HISTORY) if (key, h) in histories)
        nodes[key] = Node(key, name, kind, details, children + pseudo, _initial_child(spec, key))
        parents[key] = parent
        for child in children:
            add(child, key)
        for h in sorted(_HISTORY):
            if (key, h) in histories:
                nodes[_history_key(key, h)] = Node(_history_key(key, h), _HISTORY[h][1], "history", ())
                parents[_history_key(key, h)] = key

    for key in view.states:
        add(key, None)
    edges = [SceneEdge(source, target, (label,), "lifecycle") for source, target, label in view.edges]
    edges += [SceneEdge(t.source, _target_key(t), (edge_label(t, spec),), _edge_kind(t)) for t in spec.transitions]
    scene = Scene(spec.owner, view, tuple(spec.states), nodes, parents, _merged(edges), frozenset(), frozenset())
    marked = [] if highlight is None else [highlight] if isinstance(highlight, str) else list(highlight)
    for path in marked:
        if path not in nodes:
            msg = f"highlight={path!r} is not a state of {spec.owner}; its states are: {', '.join(nodes)}"
            raise ValueError(msg)
    enclosing = frozenset(outer for path in marked for outer in scene.ancestors(path))
    return attrs.evolve(scene, current=frozenset(marked), enclosing=enclosing - set(marked))
