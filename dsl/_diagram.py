"""Diagrams of an actor's machine, drawn from its compiled :class:`MachineSpec`.

Mermaid (``stateDiagram-v2``) and Graphviz DOT are plain text and need nothing
installed; SVG is DOT laid out by Graphviz through ``pygraphviz`` (the ``svg`` extra).
Every diagram shows the built-in lifecycle around the user's states, each composite
state's initial child, guards as ``[guard]``, timeouts as ``after N s``, named delays as
``after name (N s)``, eventless choices as ``always``, a transition to a state's history
as an arrow to an ``H`` (``H*``: deep) pseudo-state inside it, internal transitions as
dashed self-loops marked ``(internal)`` (all the loops of one state on one edge, a line
each), and each state's timeout, delays, deferred events, tags and invoked tasks inside
its box. Delays are drawn with the class's ``delays`` overrides applied. Pass
``highlight=`` a state path to mark a live actor's current state and the states
enclosing it.

Theory of operation: drawing takes two steps. :func:`_scene` turns the spec into a
format-neutral tree: a :class:`_Node` per state, with a *kind*, its label, details and
children, and a list of :class:`_Edge` with a *kind* each, the self-loops of one state
merged. Each format then walks that tree with tables: one function per node kind
(``_MERMAID_NODES``, ``_DOT_NODES``) and one style per edge kind (``_DOT_EDGES``). A new
kind of state (a parallel region) is a case in :func:`_node_kind` and one function in
each table, as the history pseudo-states are; a new kind of event is one entry in
``_EVENT_TEXT``; a new line inside a state's box is one function in ``_DETAILS``.

Two layout rules come from the renderers, checked by ``tests/dsl/test_diagram_structure.py``:

- Mermaid puts a state in the last composite block that mentions it, so every state is
  declared inside its parent's block, an edge between two children of one block is written
  in that block, and every other edge at the top level (which moves nothing). Notes on
  nested states float away in Mermaid's layout, so a leaf's details are description lines
  (``s0 : timeout after 10 s``) and a composite's go under its name in its label.
- Graphviz clips an edge at a cluster's border only when the other end lies outside that
  cluster (``lhead``/``ltail``); otherwise it warns "head is inside tail cluster". So every
  cluster has an anchor point, and an edge between a composite state and a state inside it
  ends at that anchor, unclipped. A clipped edge's label is an ``xlabel``: Graphviz places
  a plain ``label`` before clipping, away from the line it draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Final, Literal

import attrs

from ._compile import MachineSpec, StateInfo, Transition
from ._lifecycle import CLOSED, CLOSING, CONNECTING, EDGES, OPEN

__all__ = ["FORMATS", "DiagramError", "DiagramFormat", "LifecycleView", "render"]

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


def _label(t: Transition, spec: MachineSpec) -> str:
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


def _notes(spec: MachineSpec, path: str) -> list[str]:
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

NodeKind = Literal["simple", "composite", "history"]
EdgeKind = Literal["lifecycle", "external", "internal"]


@attrs.frozen
class _Node:
    key: str  # the state's path (or a built-in state's name): DOT's node name
    name: str
    kind: NodeKind
    details: tuple[str, ...]
    children: tuple[str, ...] = ()
    initial: str | None = None


@attrs.frozen
class _Edge:
    source: str
    target: str
    lines: tuple[str, ...]
    kind: EdgeKind


@attrs.frozen
class _Scene:
    title: str
    view: LifecycleView
    user: tuple[str, ...]  # the user's states in declaration order (Mermaid numbers them)
    nodes: Mapping[str, _Node]
    parents: Mapping[str, str | None]  # None: drawn at the top level
    edges: tuple[_Edge, ...]
    current: str | None
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


def _node_kind(spec: MachineSpec, key: str) -> NodeKind:
    """The kind of node *key* is drawn as (the tables below have a function per kind)."""
    if key == OPEN:
        return "composite" if spec.states else "simple"
    info = spec.states.get(key)
    return "composite" if info is not None and info.children else "simple"


def _initial_child(spec: MachineSpec, key: str) -> str | None:
    if key == OPEN:
        return spec.chain(spec.initial_leaf)[0] if spec.states else None
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


def _merged(edges: Sequence[_Edge]) -> tuple[_Edge, ...]:
    """*edges* with the self-loops of one state and kind merged into one edge, a line each."""
    out: list[_Edge] = []
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


def _scene(spec: MachineSpec, view: LifecycleView, highlight: str | None) -> _Scene:
    nodes: dict[str, _Node] = {}
    parents: dict[str, str | None] = {}

    histories = {(t.target, t.history) for t in spec.transitions if t.target is not None and t.history is not None}

    def add(key: str, parent: str | None) -> None:
        kind = _node_kind(spec, key)
        info = spec.states.get(key)
        children = tuple(p for p, i in spec.states.items() if i.parent == key) if kind == "composite" else ()
        name = info.name if info is not None else view.names.get(key, key)
        pseudo = tuple(_history_key(key, h) for h in sorted(_HISTORY) if (key, h) in histories)
        nodes[key] = _Node(key, name, kind, tuple(_notes(spec, key)), children + pseudo, _initial_child(spec, key))
        parents[key] = parent
        for child in children:
            add(child, key)
        for h in sorted(_HISTORY):
            if (key, h) in histories:
                nodes[_history_key(key, h)] = _Node(_history_key(key, h), _HISTORY[h][1], "history", ())
                parents[_history_key(key, h)] = key

    for key in view.states:
        add(key, None)
    edges = [_Edge(source, target, (label,), "lifecycle") for source, target, label in view.edges]
    edges += [_Edge(t.source, _target_key(t), (_label(t, spec),), _edge_kind(t)) for t in spec.transitions]
    scene = _Scene(spec.owner, view, tuple(spec.states), nodes, parents, _merged(edges), None, frozenset())
    if highlight is None:
        return scene
    if highlight not in nodes:
        msg = f"highlight={highlight!r} is not a state of {spec.owner}; its states are: {', '.join(nodes)}"
        raise ValueError(msg)
    return attrs.evolve(scene, current=highlight, enclosing=frozenset(scene.ancestors(highlight)))


# -- Mermaid ----------------------------------------------------------------------------------------


_MERMAID_ESCAPES: Final = str.maketrans(
    {"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "{": "#123;", "}": "#125;"}
)


def _mermaid_text(text: str) -> str:
    """*text* with the characters Mermaid would read as syntax replaced by entity codes."""
    return text.translate(_MERMAID_ESCAPES)


_BR: Final = "<br/>"
"""Mermaid's line break inside a label."""


class _Mermaid:
    def __init__(self, scene: _Scene) -> None:
        self.scene = scene
        self.ids = {key: scene.view.names.get(key, key) for key in scene.view.states}
        self.ids.update((key, f"s{index}") for index, key in enumerate(scene.user))
        self.ids.update((key, f"p{index}") for index, key in enumerate(k for k in scene.nodes if k not in self.ids))
        self.lines: list[str] = []

    def scope(self, edge: _Edge) -> str | None:
        """The block an edge is written in: its ends' common parent, or the top level."""
        parent = self.scene.parents[edge.source]
        return parent if parent == self.scene.parents[edge.target] else None

    def edge(self, edge: _Edge, indent: str) -> None:
        label = _BR.join(_mermaid_text(line) for line in edge.lines)
        self.lines.append(f"{indent}{self.ids[edge.source]} --> {self.ids[edge.target]}: {label}")

    def block(self, parent: str | None, keys: Sequence[str], indent: str) -> None:
        for key in keys:
            node = self.scene.nodes[key]
            _MERMAID_NODES[node.kind](self, node, indent)
        initial = self.scene.nodes[parent].initial if parent is not None else None
        if initial is not None:
            self.lines.append(f"{indent}[*] --> {self.ids[initial]}")
        for edge in self.scene.edges:
            if parent is not None and self.scope(edge) == parent:
                self.edge(edge, indent)

    def simple(self, node: _Node, indent: str) -> None:
        ident = self.ids[node.key]
        if ident != node.name:
            self.lines.append(f'{indent}state "{_mermaid_text(node.name)}" as {ident}')
        self.lines.extend(f"{indent}{ident} : {_mermaid_text(detail)}" for detail in node.details)

    def composite(self, node: _Node, indent: str) -> None:
        ident = self.ids[node.key]
        label = _BR.join(_mermaid_text(line) for line in (node.name, *node.details))
        if label != ident:  # a composite takes no description: its details go under its name
            self.lines.append(f'{indent}state "{label}" as {ident}')
        self.lines.append(f"{indent}state {ident} {{")
        self.block(node.key, node.children, indent + "    ")
        self.lines.append(f"{indent}}}")

    def render(self) -> str:
        scene = self.scene
        self.lines = ["stateDiagram-v2", f"    %% {scene.title}", f"    [*] --> {self.ids[scene.view.start]}"]
        self.block(None, scene.view.states, "    ")
        for edge in scene.edges:
            if self.scope(edge) is None:
                self.edge(edge, "    ")
        self.lines.extend(f"    {self.ids[final]} --> [*]" for final in scene.view.finals)
        if scene.current is not None:
            self.lines.append("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
            self.lines.append("    classDef enclosing stroke:#e65100,stroke-width:2px")
            self.lines.append(f"    class {self.ids[scene.current]} current")
            if scene.enclosing:
                self.lines.append(f"    class {','.join(sorted(self.ids[k] for k in scene.enclosing))} enclosing")
        return "\n".join(self.lines) + "\n"


_MERMAID_NODES: Final[Mapping[NodeKind, Callable[[_Mermaid, _Node, str], None]]] = {
    "simple": _Mermaid.simple,
    "composite": _Mermaid.composite,
    "history": _Mermaid.simple,  # Mermaid has no history pseudo-state: a state named H or H*
}


def to_mermaid(spec: MachineSpec, highlight: str | None = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
    """Mermaid ``stateDiagram-v2`` text for *spec*."""
    return _Mermaid(_scene(spec, view, highlight)).render()


# -- DOT --------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CURRENT: Final = 'style="rounded,filled", fillcolor="#ffd54f", color="#e65100", penwidth=3'
_ENCLOSING: Final = 'color="#e65100"; penwidth=2;'


@attrs.frozen
class _DotEdgeStyle:
    """How DOT draws an edge kind: its text attribute, extra attributes, and a self-loop's side."""

    text: str = "label"
    extra: str = ""
    loop_port: str = "s"


_DOT_EDGES: Final[Mapping[EdgeKind, _DotEdgeStyle]] = {
    # the lifecycle's edges run around the clusters; their labels are placed after layout
    "lifecycle": _DotEdgeStyle(text="xlabel"),
    "external": _DotEdgeStyle(),
    "internal": _DotEdgeStyle(extra="style=dashed", loop_port="n"),  # a state's two loops on two sides
}
"""DOT's style by edge kind."""


def _anchor(key: str) -> str:
    return f"{key}.__anchor"


def _initial_marker(key: str) -> str:
    return f"{key}.__initial"


class _Dot:
    def __init__(self, scene: _Scene) -> None:
        self.scene = scene
        self.lines: list[str] = []

    def simple(self, node: _Node, indent: str) -> None:
        attrs_ = [f"label={_q(chr(10).join((node.name, *node.details)))}"]
        if node.key == self.scene.current:
            attrs_.append(_CURRENT)
        self.lines.append(f"{indent}{_q(node.key)} [{', '.join(attrs_)}];")

    def composite(self, node: _Node, indent: str) -> None:
        inner = indent + "    "
        marked = node.key in self.scene.enclosing or node.key == self.scene.current
        self.lines.append(f"{indent}subgraph {_q('cluster_' + node.key)} {{")
        label = _q(chr(10).join((node.name, *node.details)))
        self.lines.append(f"{inner}label={label}; style=rounded;{' ' + _ENCLOSING if marked else ''}")
        self.lines.append(f'{inner}{_q(_anchor(node.key))} [shape=point, width=0.05, label=""];')
        if node.initial is not None:
            self.lines.append(f'{inner}{_q(_initial_marker(node.key))} [shape=point, width=0.12, label=""];')
        for child in node.children:
            self.node(child, inner)
        self.lines.append(f"{indent}}}")

    def history(self, node: _Node, indent: str) -> None:
        self.lines.append(f"{indent}{_q(node.key)} [shape=circle, label={_q(node.name)}, width=0.3, fixedsize=true];")

    def node(self, key: str, indent: str) -> None:
        node = self.scene.nodes[key]
        _DOT_NODES[node.kind](self, node, indent)

    def end(self, key: str, other: str, side: str) -> tuple[str, str]:
        """The DOT node an edge from or to *key* uses, and its clipping attribute."""
        node = self.scene.nodes.get(key)
        if node is None or node.kind != "composite":
            return _q(key), ""
        if key == other or self.scene.within(other, key):
            return _q(_anchor(key)), ""  # the other end is inside: Graphviz cannot clip
        return _q(_anchor(key)), f"{side}={_q('cluster_' + key)}"

    def edge(self, source: str, target: str, lines: Sequence[str], style: _DotEdgeStyle = _DotEdgeStyle()) -> None:
        src, tail = self.end(source, target, "ltail")
        dst, head = self.end(target, source, "lhead")
        # Graphviz places a label before clipping the edge at a cluster: far from the drawn
        # line. An external label (xlabel) is placed after, beside it.
        text = "xlabel" if tail or head else style.text
        attrs_ = [f"{text}={_q(chr(10).join(lines))}"] if lines else []
        attrs_ += [a for a in (tail, head, style.extra) if a]
        if source == target:
            attrs_.append(f"tailport={style.loop_port}, headport={style.loop_port}")
        self.lines.append(f"    {src} -> {dst}" + (f" [{', '.join(attrs_)}];" if attrs_ else ";"))

    def render(self) -> str:
        scene = self.scene
        self.lines = [
            f"digraph {_q(scene.title)} {{",
            "    compound=true; rankdir=LR; fontname=Helvetica;",
            '    node [shape=box, style="rounded", fontname=Helvetica];',
            "    edge [fontname=Helvetica, fontsize=10];",
            '    "__start" [shape=point, width=0.15];',
            '    "__end" [shape=doublecircle, label="", width=0.15];',
        ]
        for key in scene.view.states:
            self.node(key, "    ")
        start, head = self.end(scene.view.start, "__start", "lhead")
        self.lines.append(f'    "__start" -> {start}' + (f" [{head}];" if head else ";"))
        for node in scene.nodes.values():
            if node.initial is not None:
                dst, head = self.end(node.initial, node.key, "lhead")
                self.lines.append(f"    {_q(_initial_marker(node.key))} -> {dst}" + (f" [{head}];" if head else ";"))
        for edge in scene.edges:
            self.edge(edge.source, edge.target, edge.lines, _DOT_EDGES[edge.kind])
        for final in scene.view.finals:
            self.edge(final, "__end", ())
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"


_DOT_NODES: Final[Mapping[NodeKind, Callable[[_Dot, _Node, str], None]]] = {
    "simple": _Dot.simple,
    "composite": _Dot.composite,
    "history": _Dot.history,
}


def to_dot(spec: MachineSpec, highlight: str | None = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
    """Graphviz DOT text for *spec*; composite states are clusters."""
    return _Dot(_scene(spec, view, highlight)).render()


def to_svg(spec: MachineSpec, highlight: str | None = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
    """SVG text: the DOT diagram laid out by Graphviz (needs the ``svg`` extra)."""
    try:
        import pygraphviz  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as exc:
        msg = (
            "SVG diagrams need Graphviz through pygraphviz: pip install 'interlock[svg]' "
            "(pygraphviz>=2); Mermaid and DOT need nothing"
        )
        raise DiagramError(msg) from exc
    graph = pygraphviz.AGraph(string=to_dot(spec, highlight, view))
    data: bytes = graph.draw(format="svg", prog="dot")
    return data.decode("utf-8")


_RENDERERS: Final[Mapping[str, Callable[[MachineSpec, str | None, LifecycleView], str]]] = {
    "mermaid": to_mermaid,
    "dot": to_dot,
    "svg": to_svg,
}


def render(
    spec: MachineSpec, fmt: str = "mermaid", highlight: str | None = None, view: LifecycleView = WEBSOCKET_VIEW
) -> str:
    """Render *spec* as ``mermaid``, ``dot`` or ``svg`` text.

    *highlight* marks a state (a live actor's) and the states enclosing it; *view* is the
    lifecycle drawn around the user's states (the WebSocket one unless an HTTP actor's).
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        msg = f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise DiagramError(msg)
    return renderer(spec, highlight, view)
