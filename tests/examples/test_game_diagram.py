"""``interlock diagram examples.game.game:Player`` works from the repository, as the README says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("form", ["mermaid", "dot"])
def test_the_game_draws_from_the_command_line(form: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "interlock", "diagram", "examples.game.game:Player", "-f", form],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for state in ("lobby", "looking", "proposing", "rejoining", "judging", "my_turn", "their_turn", "opponent_away"):
        assert state in done.stdout
    back = {  # opponent_away goes back to playing's history pseudo-state
        "mermaid": re.compile(r'state "H" as (p\d+).*\n\s*s\d+ --> \1: message game\.rejoin \[token_ok\]\n', re.S),
        "dot": re.compile(
            r'"open\.game\.opponent_away" -> "open\.game\.playing\.__history" \[label="message game\.rejoin'
        ),
    }[form]
    assert back.search(done.stdout), done.stdout
    assert "always [game_over]" in done.stdout
    assert "after grace (30 s)" in done.stdout
