"""Diagrams of a flat lifecycle: a table of states and labelled edges, no nesting.

The HTTP response's lifecycle (:mod:`interlock.dsl.http`) and the MQTT connection's
(``interlock.actors.mqtt``) are such tables; this draws them as Mermaid, DOT or SVG,
with a live actor's state highlighted, the same way for both.
"""

from __future__ import annotations

import attrs

from ._diagram import FORMATS, DiagramError

__all__ = ["FlatChart", "render_flat"]

_CURRENT_DOT = ', style="rounded,filled", fillcolor="#ffd54f", color="#e65100", penwidth=3'


@attrs.frozen
class FlatChart:
    """A flat lifecycle to draw: its states, where it starts and ends, its edges."""

    name: str
    """What the chart is, for error messages (``"the HTTP lifecycle"``)."""
    states: tuple[str, ...]
    initial: str
    finals: tuple[str, ...]
    edges: tuple[tuple[str, str, str], ...]
    """``(source, target, label)``; an edge whose source is its target is drawn dashed."""


def _mermaid(owner: str, chart: FlatChart, highlight: str | None) -> str:
    lines = ["stateDiagram-v2", f"    %% {owner}", f"    [*] --> {chart.initial}"]
    lines.extend(f"    {source} --> {target}: {label}" for source, target, label in chart.edges)
    lines.extend(f"    {final} --> [*]" for final in chart.finals)
    if highlight is not None:
        lines.append("    classDef current fill:#ffd54f,stroke:#e65100,stroke-width:3px")
        lines.append(f"    class {highlight} current")
    return "\n".join(lines) + "\n"


def _dot(owner: str, chart: FlatChart, highlight: str | None) -> str:
    lines = [
        f'digraph "{owner}" {{',
        "    rankdir=LR; fontname=Helvetica;",
        '    node [shape=box, style="rounded", fontname=Helvetica];',
        "    edge [fontname=Helvetica, fontsize=10];",
        '    "__start" [shape=point, width=0.15];',
        '    "__end" [shape=doublecircle, label="", width=0.15];',
    ]
    lines.extend(f'    "{s}" [label="{s}"{_CURRENT_DOT if s == highlight else ""}];' for s in chart.states)
    lines.append(f'    "__start" -> "{chart.initial}";')
    for source, target, label in chart.edges:
        dashed = ", style=dashed" if source == target else ""
        lines.append(f'    "{source}" -> "{target}" [label="{label}"{dashed}];')
    lines.extend(f'    "{final}" -> "__end";' for final in chart.finals)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_flat(owner: str, chart: FlatChart, fmt: str = "mermaid", highlight: str | None = None) -> str:
    """Draw *chart* as ``mermaid`` or ``dot`` text, or ``svg`` (Graphviz, the ``svg`` extra)."""
    if highlight is not None and highlight not in chart.states:
        msg = f"highlight={highlight!r} is not a state of {chart.name} ({', '.join(chart.states)})"
        raise ValueError(msg)
    if fmt == "mermaid":
        return _mermaid(owner, chart, highlight)
    if fmt == "dot":
        return _dot(owner, chart, highlight)
    if fmt == "svg":
        try:
            import pygraphviz  # noqa: PLC0415 - optional dependency, imported on demand
        except ImportError as exc:
            msg = "SVG diagrams need Graphviz through pygraphviz: pip install 'interlock[svg]'"
            raise DiagramError(msg) from exc
        data: bytes = pygraphviz.AGraph(string=_dot(owner, chart, highlight)).draw(format="svg", prog="dot")
        return data.decode("utf-8")
    msg = f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}"
    raise DiagramError(msg)
