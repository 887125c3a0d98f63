"""Graphviz DOT text (and SVG, laid out by Graphviz) from a diagram :class:`Scene`.

Composite states are clusters (``compound=true``), parallel regions dashed clusters.
Graphviz clips an edge at a cluster's border only when the other end lies outside that
cluster (``lhead``/``ltail``); otherwise it warns "head is inside tail cluster". So every
composite's cluster has an anchor point, and an edge between a composite state and a
state inside it ends at that anchor, unclipped. Graphviz places a plain ``label`` before
clipping, away from the line it draws, so clipped edges carry an ``xlabel`` (placed
after, padded with a space each side so it cannot run into a neighbouring label). Every
cluster has an initial marker; a state's internal loops sit above it and a re-entry
below, so their labels do not stack; the lifecycle's shortcut from its first state to a
last one has no weight (pulling the two together made it cross the other arrows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs

from ._compile import MachineSpec
from ._diagram_scene import (
    WEBSOCKET_VIEW,
    DiagramError,
    EdgeKind,
    Highlight,
    LifecycleView,
    Node,
    NodeKind,
    Scene,
    build_scene,
)

__all__ = ["to_dot", "to_svg"]


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_CURRENT: Final = 'style="rounded,filled", fillcolor="#ffd54f", color="#e65100", penwidth=3'
_ENCLOSING: Final = 'color="#e65100"; penwidth=2;'


@attrs.frozen
class _DotEdgeStyle:
    """How DOT draws an edge kind: extra attributes, and the side of a self-loop."""

    extra: str = ""
    loop_port: str = "s"


_DOT_EDGES: Final[Mapping[EdgeKind, _DotEdgeStyle]] = {
    "lifecycle": _DotEdgeStyle(),
    "external": _DotEdgeStyle(),
    "internal": _DotEdgeStyle(extra="style=dashed", loop_port="n"),  # a state's two loops on two sides
}
"""DOT's style by edge kind."""


def _anchor(key: str) -> str:
    return f"{key}.__anchor"


def _initial_marker(key: str) -> str:
    return f"{key}.__initial"


class _Dot:
    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.lines: list[str] = []

    def simple(self, node: Node, indent: str) -> None:
        attrs_ = [f"label={_q(chr(10).join((node.name, *node.details)))}"]
        if node.key in self.scene.current:
            attrs_.append(_CURRENT)
        self.lines.append(f"{indent}{_q(node.key)} [{', '.join(attrs_)}];")

    def composite(self, node: Node, indent: str, style: str = "rounded") -> None:
        inner = indent + "    "
        marked = node.key in self.scene.enclosing or node.key in self.scene.current
        self.lines.append(f"{indent}subgraph {_q('cluster_' + node.key)} {{")
        label = _q(chr(10).join((node.name, *node.details)))
        self.lines.append(f"{inner}label={label}; style={_q(style)};{' ' + _ENCLOSING if marked else ''}")
        if node.kind == "composite":  # what edges to and from the state end at (no edge has a region's)
            self.lines.append(f'{inner}{_q(_anchor(node.key))} [shape=point, width=0.05, label=""];')
        if node.initial is not None:
            self.lines.append(f'{inner}{_q(_initial_marker(node.key))} [shape=point, width=0.12, label=""];')
        for child in node.children:
            self.node(child, inner)
        self.lines.append(f"{indent}}}")

    def region(self, node: Node, indent: str) -> None:
        self.composite(node, indent, style="rounded,dashed")

    def history(self, node: Node, indent: str) -> None:
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
        if tail or head:  # a space each side: an xlabel may be placed right against another label
            attrs_ = [f"xlabel={_q(chr(10).join(f' {line} ' for line in lines))}"] if lines else []
        else:
            attrs_ = [f"label={_q(chr(10).join(lines))}"] if lines else []
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
        shortcuts = {(scene.view.start, final) for final in scene.view.finals}
        for edge in scene.edges:
            style = _DOT_EDGES[edge.kind]
            if edge.kind == "lifecycle" and (edge.source, edge.target) in shortcuts:
                # the first state straight to a last one: pulling them together crossed the other arrows
                style = attrs.evolve(style, extra="weight=0")
            self.edge(edge.source, edge.target, edge.lines, style)
        for final in scene.view.finals:
            self.edge(final, "__end", ())
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"


_DOT_NODES: Final[Mapping[NodeKind, Callable[[_Dot, Node, str], None]]] = {
    "simple": _Dot.simple,
    "composite": _Dot.composite,
    "history": _Dot.history,
    "region": _Dot.region,
}


def to_dot(spec: MachineSpec, highlight: Highlight = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
    """Graphviz DOT text for *spec*; composite states are clusters."""
    return _Dot(build_scene(spec, view, highlight)).render()


def to_svg(spec: MachineSpec, highlight: Highlight = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
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
