"""``interlock.dsl.http``: the lifecycle of an HTTP actor's response, kept as a table (the WebSocket one's sibling).

Rule 1. Every HTTP actor starts in ``receiving`` (the request body is coming in) and
        ends in ``done`` (the response went out whole, or was cut after a failure) or
        ``gone`` (the client left first); both are final.
Rule 2. The runtime moves ``receiving`` to ``responding`` with ``request`` once the whole
        body is in, and calls ``handle(body)`` there.
Rule 3. The application answers with ``send_response`` (headers and the whole body:
        ``done``), or with ``send_headers`` (``streaming``) followed by ``send_body`` as
        often as it likes; a ``send_body`` with ``more_body=False`` is ``finish``
        (``done``). A response may start while the body is still ``receiving`` (an
        early refusal).
Rule 4. The client moves the machine with ``disconnect`` (``gone``) from any live state;
        the runtime moves it with ``fail`` (``done``) when a handler raises: a 500 if
        nothing was sent, else the stream is cut.
Rule 5. Anything else is illegal and raises :class:`IllegalTransition` naming the state,
        the operation, what the state allows and the usual fix.

Theory of operation: as for ``LIFECYCLE`` (``_lifecycle.py``), the table is validated once
by a ``transitions`` machine and flattened into a dict; actors are headless and keep the
state in one attribute. The diagram is drawn from the same table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from ._compile import MachineSpec
from ._diagram import LifecycleView, render
from ._diagram_flat import FlatChart, render_flat
from ._lifecycle import OPEN, Edge, Lifecycle

__all__ = [
    "DONE",
    "GONE",
    "HTTP_LIFECYCLE",
    "RECEIVING",
    "RESPONDING",
    "STREAMING",
    "render_lifecycle",
    "render_machine",
]

RECEIVING: Final = "receiving"
RESPONDING: Final = "responding"
STREAMING: Final = "streaming"
DONE: Final = "done"
GONE: Final = "gone"

HTTP_STATES: Final[Sequence[str]] = (RECEIVING, RESPONDING, STREAMING, DONE, GONE)
LIVE: Final = frozenset({RECEIVING, RESPONDING, STREAMING})

HTTP_EDGES: Final[Sequence[Edge]] = (
    Edge("request", RECEIVING, RESPONDING),
    Edge("send_response", RECEIVING, DONE),  # an early answer: 413, 401 ...
    Edge("send_response", RESPONDING, DONE),
    Edge("send_headers", RECEIVING, STREAMING),
    Edge("send_headers", RESPONDING, STREAMING),
    Edge("send_body", STREAMING, None),
    Edge("finish", STREAMING, DONE),
    *(Edge("disconnect", state, GONE) for state in (RECEIVING, RESPONDING, STREAMING)),
    *(Edge("fail", state, DONE) for state in (RECEIVING, RESPONDING, STREAMING)),
)

HTTP_INTERNAL: Final = frozenset({"request", "finish", "disconnect", "fail"})
"""Triggers the runtime fires; error messages do not offer them to the application."""

_NO_HEADERS = "call send_headers() first, or send_response() for a whole response"
_FINISHED = "the response is finished (the last send_body() had more_body=False, or send_response() was called)"
_GONE = "the client has gone; the response can no longer be sent"

HTTP_HINTS: Final[Mapping[tuple[str, str], str]] = {
    ("send_body", RECEIVING): _NO_HEADERS,
    ("send_body", RESPONDING): _NO_HEADERS,
    ("send_body", DONE): _FINISHED,
    ("send_body", GONE): _GONE,
    ("send_headers", STREAMING): "send_headers() was already called; send the body with send_body()",
    ("send_headers", DONE): _FINISHED,
    ("send_headers", GONE): _GONE,
    ("send_response", STREAMING): (
        "the headers were already sent; end the response with send_body(body) (more_body=False)"
    ),
    ("send_response", DONE): _FINISHED,
    ("send_response", GONE): _GONE,
}

HTTP_LIFECYCLE: Final = attrs.evolve(
    Lifecycle.compile(HTTP_STATES, HTTP_EDGES, initial=RECEIVING, ignored=frozenset(), hints=HTTP_HINTS),
    internal=HTTP_INTERNAL,
)
"""The lifecycle every HTTP actor shares."""

_SHOWN: Final = ("request", "send_response", "send_headers", "finish", "disconnect", "fail")
_LABELS: Final[Mapping[str, str]] = {
    "request": "request (body read)",
    "finish": "send_body(more_body=False)",
    "send_response": "send_response()",
    "send_headers": "send_headers()",
    "disconnect": "client left",
    "fail": "handler raised (500, or the stream cut)",
}


def _edges(edges: Sequence[Edge]) -> list[tuple[str, str, str]]:
    merged: dict[tuple[str, str], list[str]] = {}
    for edge in edges:
        if edge.trigger in _SHOWN and edge.target is not None:
            labels = merged.setdefault((edge.source, edge.target), [])
            if _LABELS[edge.trigger] not in labels:
                labels.append(_LABELS[edge.trigger])
    loops = [(e.source, e.source, f"{e.trigger}() (internal)") for e in edges if e.target is None]
    return [(source, target, " / ".join(labels)) for (source, target), labels in merged.items()] + loops


def render_lifecycle(owner: str, fmt: str = "mermaid", highlight: str | None = None) -> str:
    """Draw the HTTP lifecycle as ``mermaid`` or ``dot`` text (``svg`` with Graphviz installed).

    *highlight* marks a live actor's current state.
    """
    chart = FlatChart("the HTTP lifecycle", tuple(HTTP_STATES), RECEIVING, (DONE, GONE), tuple(_edges(HTTP_EDGES)))
    return render_flat(owner, chart, fmt, highlight)


SERVING: Final = "serving"
"""How an HTTP state actor's diagram names the built-in ``open``: the request is being answered."""


_VIEW: Final = LifecycleView(
    states=(RECEIVING, OPEN, DONE, GONE),
    start=RECEIVING,
    finals=(DONE, GONE),
    edges=(
        (RECEIVING, OPEN, "request (body read)"),
        (RECEIVING, DONE, "send_response() / handler raised"),
        (RECEIVING, GONE, "client left"),
        (OPEN, DONE, "response finished / handler raised"),
        (OPEN, GONE, "client left"),
    ),
    names={OPEN: SERVING},
)
"""The HTTP lifecycle as an HTTP state actor's diagram draws it around the user's states."""


def render_machine(spec: MachineSpec, fmt: str = "mermaid", highlight: str | None = None) -> str:
    """Draw an HTTP state actor: its states nested in ``serving``, the HTTP lifecycle around them.

    Any format :func:`interlock.dsl.render` knows. *highlight* marks a state: one of the
    user's, or ``open`` (drawn as ``serving``); the runtime's other states are not drawn.
    """
    shown = highlight if highlight == OPEN or highlight in spec.states else None
    return render(spec, fmt, shown, _VIEW)
