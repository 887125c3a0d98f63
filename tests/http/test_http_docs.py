"""docs/http.md shows the lifecycle diagram the code draws (docs/diagrams.py only loads WebSocket actors)."""

from __future__ import annotations

import re
from pathlib import Path

from interlock.actors import HttpActor

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"
BLOCK = re.compile(r"<!-- http-diagram -->\n```mermaid\n(?P<text>.*?)```\n<!-- /http-diagram -->", re.DOTALL)


def test_the_http_lifecycle_diagram_in_the_docs_is_fresh() -> None:
    found = BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert found is not None, "docs/http.md lost its <!-- http-diagram --> block"
    assert found["text"] == HttpActor.diagram("mermaid"), "regenerate it: print(HttpActor.diagram('mermaid'))"
