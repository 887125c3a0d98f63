"""Mermaid ``stateDiagram-v2`` text from a diagram :class:`Scene`.

Mermaid puts a state in the last composite block that mentions it (a mention at the top
level moves nothing). So every state is declared inside its parent's block, an edge
between two children of one block is written in that block, and every other edge at the
top level. Notes on nested states float away in Mermaid's layout (checked with Mermaid
11 and 12), so a leaf's details are description lines (``s0 : timeout after 10 s``) and a
composite's, which Mermaid refuses a description, follow its name on its label's one line
(Mermaid 11 sizes a composite's header for one line).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from ._compile import MachineSpec
from ._diagram_scene import WEBSOCKET_VIEW, Highlight, LifecycleView, Node, NodeKind, Scene, SceneEdge, build_scene

__all__ = ["to_mermaid"]

_MERMAID_ESCAPES: Final = str.maketrans(
    {"#": "#35;", ";": "#59;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "{": "#123;", "}": "#125;"}
)


def _mermaid_text(text: str) -> str:
    """*text* with the characters Mermaid would read as syntax replaced by entity codes."""
    return text.translate(_MERMAID_ESCAPES)


_BR: Final = "<br/>"
"""Mermaid's line break inside a label."""
_JOIN: Final = " · "
"""Between a composite's name and its details in its one-line label."""


class _Mermaid:
    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.ids = {key: scene.view.names.get(key, key) for key in scene.view.states}
        self.ids.update((key, f"s{index}") for index, key in enumerate(scene.user))
        self.ids.update((key, f"p{index}") for index, key in enumerate(k for k in scene.nodes if k not in self.ids))
        self.lines: list[str] = []

    def scope(self, edge: SceneEdge) -> str | None:
        """The block an edge is written in: its ends' common parent, or the top level."""
        parent = self.scene.parents[edge.source]
        return parent if parent == self.scene.parents[edge.target] else None

    def edge(self, edge: SceneEdge, indent: str) -> None:
        label = _BR.join(_mermaid_text(line) for line in edge.lines)
        self.lines.append(f"{indent}{self.ids[edge.source]} --> {self.ids[edge.target]}: {label}")

    def block(self, parent: str | None, keys: Sequence[str], indent: str) -> None:
        nodes = [self.scene.nodes[key] for key in keys]
        for node in nodes:
            if node.kind != "region":
                _MERMAID_NODES[node.kind](self, node, indent)
        initial = self.scene.nodes[parent].initial if parent is not None else None
        if initial is not None:
            self.lines.append(f"{indent}[*] --> {self.ids[initial]}")
        for edge in self.scene.edges:
            if parent is not None and self.scope(edge) == parent:
                self.edge(edge, indent)
        for node in nodes:  # after everything else in the block: a region is a section of its own
            if node.kind == "region":
                _MERMAID_NODES[node.kind](self, node, indent)

    def simple(self, node: Node, indent: str) -> None:
        ident = self.ids[node.key]
        if ident != node.name:
            self.lines.append(f'{indent}state "{_mermaid_text(node.name)}" as {ident}')
        self.lines.extend(f"{indent}{ident} : {_mermaid_text(detail)}" for detail in node.details)

    def composite(self, node: Node, indent: str) -> None:
        ident = self.ids[node.key]
        label = _JOIN.join(_mermaid_text(line) for line in (node.name, *node.details))
        if label != ident:  # a composite takes no description: its details go under its name
            self.lines.append(f'{indent}state "{label}" as {ident}')
        self.lines.append(f"{indent}state {ident} {{")
        self.block(node.key, node.children, indent + "    ")
        self.lines.append(f"{indent}}}")

    def region(self, node: Node, indent: str) -> None:
        self.lines.append(f"{indent}--")  # a concurrent section of the enclosing state
        self.composite(node, indent)

    def render(self) -> str:
        scene = self.scene
        self.lines = ["stateDiagram-v2", f"    %% {scene.title}", f"    [*] --> {self.ids[scene.view.start]}"]
        self.block(None, scene.view.states, "    ")
        for edge in scene.edges:
            if self.scope(edge) is None:
                self.edge(edge, "    ")
        self.lines.extend(f"    {self.ids[final]} --> [*]" for final in scene.view.finals)
        if scene.current:
            self.lines.append("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
            self.lines.append("    classDef enclosing stroke:#e65100,stroke-width:2px")
            self.lines.append(f"    class {','.join(sorted(self.ids[k] for k in scene.current))} current")
            if scene.enclosing:
                self.lines.append(f"    class {','.join(sorted(self.ids[k] for k in scene.enclosing))} enclosing")
        return "\n".join(self.lines) + "\n"


_MERMAID_NODES: Final[Mapping[NodeKind, Callable[[_Mermaid, Node, str], None]]] = {
    "simple": _Mermaid.simple,
    "composite": _Mermaid.composite,
    "history": _Mermaid.simple,  # Mermaid has no history pseudo-state: a state named H or H*
    "region": _Mermaid.region,  # a named composite in a section of its own (Mermaid's sections have no names)
}


def to_mermaid(spec: MachineSpec, highlight: Highlight = None, view: LifecycleView = WEBSOCKET_VIEW) -> str:
    """Mermaid ``stateDiagram-v2`` text for *spec*."""
    return _Mermaid(build_scene(spec, view, highlight)).render()
