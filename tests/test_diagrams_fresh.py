"""The diagrams in the README and docs are generated; a stale one fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
