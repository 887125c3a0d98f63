"""``manage.py runworker``'s error cases, run as a subprocess: one line each, exit 2 for usage, 1 for settings.

The example's ``manage.py`` with its own settings (a router whose ``"channel"`` entry
routes ``chat-archive``), or with ``tests.django.worker_settings`` (no application).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.django.example_project import PROJECT, ROOT, project_env

pytestmark = pytest.mark.e2e


def runworker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), "runworker", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return project_env(tmp_path, PYTHONPATH=f"{ROOT}", DJANGO_SETTINGS_MODULE="tests.django.worker_settings", **extra)


@pytest.mark.parametrize(
    ("args", "status", "line"),
    [
        ((), 2, "manage.py runworker: error: the following arguments are required: CHANNEL"),
        (
            ("bad name",),
            2,
            "CommandError: invalid channel name 'bad name': it contains ' '; channel names are 1 to 100 ASCII",
        ),
        (("",), 2, "CommandError: invalid channel name ''"),
        (
            ("nope",),
            2,
            "CommandError: runworker: the ChannelNameRouter has no application for ['nope']; "
            "it routes ['chat-archive']",
        ),
        (
            ("--layer", "nope", "chat-archive"),
            2,
            "CommandError: runworker --layer: no channel layer 'nope' in settings.INTERLOCK_CHANNEL_LAYERS "
            "(it has ['default'])",
        ),
        (("--backend", "curio", "chat-archive"), 2, "argument --backend: invalid choice: 'curio'"),
    ],
    ids=["no-channel", "invalid-name", "empty-name", "unrouted", "unknown-layer", "unknown-backend"],
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, args: tuple[str, ...], status: int, line: str) -> None:
    done = runworker(project_env(tmp_path), *args)
    assert done.returncode == status, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert line in last, done.stderr
    assert "Traceback" not in done.stderr
    if last.startswith("CommandError"):
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # usage lines only from argparse


@pytest.mark.parametrize(
    ("app", "line"),
    [
        (
            "",
            "CommandError: runworker needs the project's ASGI application: set INTERLOCK_ASGI_APPLICATION "
            "(or ASGI_APPLICATION) to its dotted path",
        ),
        ("nowhere.application", "CommandError: settings.ASGI_APPLICATION = 'nowhere.application' cannot be imported"),
    ],
    ids=["not-set", "not-importable"],
)
def test_no_asgi_application_exits_1_in_one_line(tmp_path: Path, app: str, line: str) -> None:
    done = runworker(bare_env(tmp_path, WORKER_TEST_APP=app), "chat-archive")
    assert done.returncode == 1, done.stderr
    [only] = done.stderr.strip().splitlines()
    assert only.startswith(line), only


def catches_sigterm(pid: int, within: float = 10) -> None:
    """Wait until *pid* handles SIGTERM (its ``SigCgt`` mask): the worker logs before it installs the handler."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.02)
    msg = f"process {pid} did not install a SIGTERM handler within {within} s"
    raise AssertionError(msg)


def test_the_worker_logs_each_line_once_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(PROJECT / "manage.py"), "runworker", "chat-archive"],
        cwd=ROOT,
        env=project_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # the settings' LOGGING handler, not that and basicConfig's as well
    assert first.startswith("INFO interlock.actors.worker: worker: serving channel(s) chat-archive on <SQLite"), first
    catches_sigterm(process.pid)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=20)[1]
    assert process.returncode == 0, rest
    assert rest.splitlines() == ["INFO interlock.actors.worker: worker: SIGTERM received, stopping"], rest
