"""The diagrams in the README and docs are generated; a stale one fails the suite."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_checked_in_diagrams_match_the_code() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "diagrams.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_readme_diagram_block_is_filled() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- diagram: statechat:StateChat -->" in text
    assert "stateDiagram-v2" in text


def test_a_picture_is_stale_once_the_dot_text_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pygraphviz")
    spec = importlib.util.spec_from_file_location("docs_diagrams", ROOT / "docs" / "diagrams.py")
    assert spec is not None
    assert spec.loader is not None
    diagrams = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagrams)
    monkeypatch.setattr(diagrams, "PICTURES", tmp_path)
    target = "interlock.actors:WebsocketActor"
    assert diagrams.stale_picture(target)  # missing
    diagrams.draw_picture(target)
    svg = (tmp_path / "interlock.actors.WebsocketActor.svg").read_text(encoding="utf-8")
    assert "<svg" in svg
    assert diagrams.stamp(target) in svg
    assert not diagrams.stale_picture(target)
    monkeypatch.setattr(diagrams, "render", lambda target, fmt="mermaid": "digraph changed {}")
    assert diagrams.stale_picture(target)
