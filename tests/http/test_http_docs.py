"""docs/http.md shows the lifecycle diagram the code draws (docs/diagrams.py only loads WebSocket actors)."""

from __future__ import annotations

import re
from pathlib import Path

from interlock.actors import HttpActor

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"
BLOCK = re.compile(r"<!-- http-diagram -->\n```mermaid\n(?P<text>.*?)```\n<!-- /http-diagram -->", re.DOTALL)


STATE_BLOCK = re.compile(
    r"<!-- http-state-diagram -->\n```mermaid\n(?P<text>.*?)```\n<!-- /http-state-diagram -->", re.DOTALL
)


def test_the_http_lifecycle_diagram_in_the_docs_is_fresh() -> None:
    found = BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert found is not None, "docs/http.md lost its <!-- http-diagram --> block"
    assert found["text"] == HttpActor.diagram("mermaid"), "regenerate it: print(HttpActor.diagram('mermaid'))"


def test_the_state_actor_diagram_in_the_docs_is_the_examples() -> None:
    """The page's long-poll example, run, draws the diagram shown under it."""
    text = DOC.read_text(encoding="utf-8")
    found = STATE_BLOCK.search(text)
    assert found is not None, "docs/http.md lost its <!-- http-state-diagram --> block"
    start = text.index("class Poll(HttpStateActor):")
    source = text[text.rindex("```python", 0, start) + len("```python\n") : text.index("async def main", start)]
    namespace: dict[str, object] = {}
    exec(compile(source, "docs/http.md", "exec"), namespace)  # the example's imports and class
    poll = namespace["Poll"]
    assert found["text"] == poll.diagram("mermaid")  # type: ignore[attr-defined]
