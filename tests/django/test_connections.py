"""Item 2 of issue 10, measured: sync actors doing ORM work on the local PostgreSQL leave no connections open.

``bench/django_connections.py`` runs in a subprocess (it configures Django for PostgreSQL)
with 20 concurrent sync actors; its own connections are counted in ``pg_stat_activity``
by their ``application_name``. With interlock's guard the count never exceeds the thread
pool and is back to zero once the handlers return; with the guard off (the behaviour
before the fix) every thread that ran a handler keeps its connection, which is what
makes this test able to fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTORS = 20


def measure(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "django_connections.py"),
            "--actors",
            str(ACTORS),
            "--messages",
            "3",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sync_actors_leave_no_connection_open(backend: str) -> None:
    result = measure("--backend", backend)
    assert result["peak_connections"] <= result["thread_pool"], result
    assert result["connections_after"] == 0, result


def test_without_the_guard_the_connections_stay_open() -> None:
    result = measure("--no-guard")
    assert result["connections_after"] >= ACTORS // 2, result  # one per thread that ran a handler
