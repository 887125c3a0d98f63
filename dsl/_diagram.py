"""Diagrams of an actor's machine, drawn from its compiled :class:`MachineSpec`.

Mermaid (``stateDiagram-v2``) and Graphviz DOT are plain text and need nothing
installed; SVG is DOT laid out by Graphviz through ``pygraphviz`` (the ``svg`` extra).
Every diagram shows the built-in lifecycle around the user's states, each composite
state's initial child, guards as ``[guard]``, timeouts as ``after N s``, named delays as
``after name (N s)``, eventless choices as ``always``, a transition to a state's history
as an arrow to an ``H`` (``H*``: deep) pseudo-state inside it, each parallel region of
``open`` as a box (section) of its own, internal transitions as dashed self-loops marked
``(internal)`` (all the loops of one state on one edge, a line each), and each state's
timeout, delays, deferred events, tags and invoked tasks inside its box. Delays are
drawn with the class's ``delays`` overrides applied. Pass ``highlight=`` a state path
(or several: a live actor's state and its state in each region) to mark them and the
states enclosing them.

Theory of operation: :mod:`._diagram_scene` turns the spec into a format-neutral scene
(nodes with a kind, edges with a kind, the loops of a state merged), and
:mod:`._diagram_mermaid` and :mod:`._diagram_dot` draw it, each with a table of
functions per node kind; their headers give the layout rules each renderer imposes
(checked by ``tests/dsl/test_diagram_structure.py``). This module picks the format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from ._compile import MachineSpec
from ._diagram_dot import to_dot, to_svg
from ._diagram_mermaid import to_mermaid
from ._diagram_scene import FORMATS, WEBSOCKET_VIEW, DiagramError, DiagramFormat, Highlight, LifecycleView

__all__ = [
    "FORMATS",
    "WEBSOCKET_VIEW",
    "DiagramError",
    "DiagramFormat",
    "LifecycleView",
    "render",
    "to_dot",
    "to_mermaid",
    "to_svg",
]

_RENDERERS: Final[Mapping[str, Callable[[MachineSpec, Highlight, LifecycleView], str]]] = {
    "mermaid": to_mermaid,
    "dot": to_dot,
    "svg": to_svg,
}


def render(
    spec: MachineSpec, fmt: str = "mermaid", highlight: Highlight = None, view: LifecycleView = WEBSOCKET_VIEW
) -> str:
    """Render *spec* as ``mermaid``, ``dot`` or ``svg`` text.

    *highlight* marks a state (a live actor's), or several (its state and each region's),
    and the states enclosing them; *view* is the
    lifecycle drawn around the user's states (the WebSocket one unless an HTTP actor's).
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        msg = f"unknown diagram format {fmt!r}; choose one of {', '.join(FORMATS)}"
        raise DiagramError(msg)
    return renderer(spec, highlight, view)
