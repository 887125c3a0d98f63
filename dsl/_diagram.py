"""Diagrams of an actor's machine, drawn from its compiled :class:`MachineSpec`.

Mermaid (``stateDiagram-v2``) and Graphviz DOT are plain text and need nothing
installed; SVG is DOT laid out by Graphviz through ``pygraphviz`` (the ``svg`` extra).
Every diagram shows the built-in lifecycle around the user's states, guards as
``[guard]``, timeouts as ``after N s``, internal transitions as self-loops marked
``(internal)``, and each state's deferred events, tags and invoked tasks in a note.
Pass ``highlight=`` a state path to mark a live actor's current state and the states
enclosing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

from ._compile import MachineSpec, Transition
from ._lifecycle import CLOSED, CLOSING, CONNECTING, EDGES, OPEN

__all__ = ["FORMATS", "DiagramError", "DiagramFormat", "render"]

DiagramFormat = Literal["mermaid", "dot", "svg"]
FORMATS: Final = ("mermaid", "dot", "svg")
_SHOWN_LIFECYCLE: Final = ("accept", "close", "deny", "disconnect")


class DiagramError(RuntimeError):
    """A diagram cannot be produced (unknown format, or Graphviz missing for SVG)."""


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _label(t: Transition, spec: MachineSpec) -> str:
    if t.kind == "timeout":
        timeout = spec.states[t.event].timeout
        text = f"after {_seconds(timeout or 0)}"
    elif t.kind == "idle":
        text = f"idle {_seconds(spec.idle_timeout or 0)}"
    elif t.kind == "client":
        text = t.event
    elif t.kind == "message":
        text = f"message {t.event}"
    else:
        text = f"{t.kind} {t.event}"
    if t.guard_label:
        text += f" [{t.guard_label}]"
    if t.target is None:
        text += " (internal)"
    return text


def _lifecycle_edges() -> Iterator[tuple[str, str, str]]:
    merged: dict[tuple[str, str], list[str]] = {}
    for edge in EDGES:
        if edge.trigger in _SHOWN_LIFECYCLE and edge.target is not None:
            merged.setdefault((edge.source, edge.target), []).append(edge.trigger)
    for (source, target), triggers in merged.items():
        yield source, target, " / ".join(triggers)


def _notes(spec: MachineSpec, path: str) -> list[str]:
    info = spec.states[path]
    notes = []
    if info.timeout is not None:
        notes.append(f"timeout after {_seconds(info.timeout)}")
    if info.defer:
        notes.append("defers " + ", ".join(sorted(info.defer)))
    if info.invoke:
        notes.append("invokes " + ", ".join(info.invoke))
    if info.tags:
        notes.append("tags " + ", ".join(sorted(info.tags)))
    if info.terminal:
        notes.append("terminal")
    return notes


def _highlighted(spec: MachineSpec, highlight: str | None) -> tuple[str | None, set[str]]:
    if highlight is None:
        return None, set()
    enclosing = set(spec.chain(highlight)[:-1])
    if highlight in spec.states:
        enclosing.add(OPEN)
    return highlight, enclosing


def to_mermaid(spec: MachineSpec, highlight: str | None = None) -> str:
    """Mermaid ``stateDiagram-v2`` text for *spec*."""
    ids = {CONNECTING: "connecting", OPEN: "open", CLOSING: "closing", CLOSED: "closed"}
    for index, path in enumerate(spec.states):
        ids[path] = f"s{index}"
    lines = ["stateDiagram-v2", f"    %% {spec.owner}"]
    for path, info in spec.states.items():
        lines.append(f'    state "{info.name}" as {ids[path]}')

    def block(parent: str, indent: str) -> None:
        children = [p for p, info in spec.states.items() if info.parent == parent]
        initial = spec.states[parent].initial if parent in spec.states else (children[0] if children else None)
        if parent == OPEN and children:
            initial = spec.initial_leaf if spec.initial_leaf in children else spec.chain(spec.initial_leaf)[0]
        if initial is not None:
            lines.append(f"{indent}[*] --> {ids[initial]}")
        for child in children:
            if spec.states[child].children:
                lines.append(f"{indent}state {ids[child]} {{")
                block(child, indent + "    ")
                lines.append(f"{indent}}}")
        for child in children:
            notes = _notes(spec, child)
            if notes:
                lines.append(f"{indent}note right of {ids[child]}")
                lines.extend(f"{indent}    {note}" for note in notes)
                lines.append(f"{indent}end note")

    lines.append(f"    [*] --> {ids[CONNECTING]}")
    if spec.states:
        lines.append(f"    state {ids[OPEN]} {{")
        block(OPEN, "        ")
        lines.append("    }")
    for source, target, label in _lifecycle_edges():
        lines.append(f"    {ids[source]} --> {ids[target]}: {label}")
    for t in spec.transitions:
        target = t.target or t.source
        lines.append(f"    {ids[t.source]} --> {ids[target]}: {_label(t, spec)}")
    lines.append(f"    {ids[CLOSED]} --> [*]")
    current, enclosing = _highlighted(spec, highlight)
    if current is not None:
        lines.append("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
        lines.append("    classDef enclosing stroke:#e65100,stroke-width:2px")
        lines.append(f"    class {ids[current]} current")
        if enclosing:
            lines.append(f"    class {','.join(ids[p] for p in sorted(enclosing))} enclosing")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(spec: MachineSpec, highlight: str | None = None) -> str:
    """Graphviz DOT text for *spec*; composite states are clusters."""
    current, enclosing = _highlighted(spec, highlight)
    composite = {OPEN} if spec.states else set()
    composite |= {p for p, info in spec.states.items() if info.children}
    lines = [
        f"digraph {_q(spec.owner)} {{",
        "    compound=true; rankdir=LR; fontname=Helvetica;",
        '    node [shape=box, style="rounded", fontname=Helvetica];',
        "    edge [fontname=Helvetica, fontsize=10];",
        '    "__start" [shape=point, width=0.15];',
        '    "__end" [shape=doublecircle, label="", width=0.15];',
    ]

    def node(path: str, label: str, indent: str) -> None:
        attrs = [f"label={_q(label)}"]
        if path in spec.states:
            notes = _notes(spec, path)
            if notes:
                attrs = [f"label={_q(label + chr(10) + chr(10).join(notes))}"]
        if path == current:
            attrs.append('style="rounded,filled", fillcolor="#ffd54f", color="#e65100", penwidth=3')
        lines.append(f"{indent}{_q(path)} [{', '.join(attrs)}];")

    def cluster(path: str, label: str, indent: str) -> None:
        lines.append(f"{indent}subgraph {_q('cluster_' + path)} {{")
        style = ' color="#e65100"; penwidth=2;' if path in enclosing or path == current else ""
        notes = _notes(spec, path) if path in spec.states else []
        full = label + ("\n" + "\n".join(notes) if notes else "")
        lines.append(f"{indent}    label={_q(full)}; style=rounded;{style}")
        lines.append(f'{indent}    {_q(path + ".__anchor")} [shape=point, width=0.01, label=""];')
        for child, info in spec.states.items():
            if info.parent != path:
                continue
            if child in composite:
                cluster(child, info.name, indent + "    ")
            else:
                node(child, info.name, indent + "    ")
        lines.append(f"{indent}}}")

    for builtin in (CONNECTING, OPEN, CLOSING, CLOSED):
        if builtin in composite:
            cluster(builtin, builtin, "    ")
        else:
            node(builtin, builtin, "    ")

    def end(path: str, tail: bool) -> tuple[str, str]:
        if path in composite:
            return _q(path + ".__anchor"), f"{'ltail' if tail else 'lhead'}={_q('cluster_' + path)}"
        return _q(path), ""

    def edge(source: str, target: str, label: str, style: str = "") -> None:
        src, tail = end(source, tail=True)
        dst, head = end(target, tail=False)
        if source == target:  # a loop on a cluster: draw it on the cluster's anchor
            tail = head = ""
        attrs = [f"label={_q(label)}"] + [a for a in (tail, head, style) if a]
        lines.append(f"    {src} -> {dst} [{', '.join(attrs)}];")

    lines.append(f'    "__start" -> {_q(CONNECTING)};')
    for source, target, label in _lifecycle_edges():
        edge(source, target, label)
    for t in spec.transitions:
        edge(t.source, t.target or t.source, _label(t, spec), "style=dashed" if t.target is None else "")
    lines.append(f'    {_q(CLOSED)} -> "__end";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(spec: MachineSpec, highlight: str | None = None) -> str:
    """SVG text: the DOT diagram laid out by Graphviz (needs the ``svg`` extra)."""
    try:
        import pygraphviz  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError as exc:
        msg = (
            "SVG diagrams need Graphviz through pygraphviz: pip install 'interlock[svg]' "
            "(pygraphviz>=2); Mermaid and DOT need nothing"
        )
        raise DiagramError(msg) from exc
    graph = pygraphviz.AGraph(string=to_dot(spec, highlight))
    data: bytes = graph.draw(format="svg", prog="dot")
    return data.decode("utf-8")


def render(spec: MachineSpec, fmt: str = "mermaid", highlight: str | None = None) -> str:
    """Render *spec* as ``mermaid``, ``dot`` or ``svg`` text."""
    if fmt == "mermaid":
        return to_mermaid(spec, highlight)
    if fmt == "dot":
        return to_dot(spec, highlight)
    if fmt == "svg":
        return to_svg(spec, highlight)
    msg = f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}"
    raise DiagramError(msg)
