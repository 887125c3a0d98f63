"""The ``interlock`` command as installed: ``--version``, ``python -m interlock``, Django projects.

The ``diagram`` and ``layer`` subcommands themselves are tested beside what they draw and
read (``tests/dsl/test_diagram.py``, ``tests/layers/test_sqlite.py``); this file covers
the command's own wiring.  Subprocesses run with ``-I`` from a scratch directory, so they
see the installed distribution only, not this checkout.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from interlock.actors._cli import main

VERSION = importlib.metadata.version("interlock")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-m", "interlock", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_version_prints_the_installed_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"interlock {VERSION}\n"


def test_python_m_interlock_prints_the_version(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"interlock {VERSION}\n"


def test_python_m_interlock_runs_the_subcommands(tmp_path: Path) -> None:
    result = run("diagram", "interlock.actors:WebsocketActor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stateDiagram-v2\n")
    result = run("layer", "groups", str(tmp_path / "missing.sqlite3"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("interlock layer groups: ")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_python_m_interlock_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: interlock ")


def test_console_script_prints_the_version(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "interlock"
    if not script.exists():
        pytest.skip(f"no interlock script beside {sys.executable}")
    result = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"interlock {VERSION}\n"


# -- a module of a Django project ----------------------------------------------------------------------------

PROJECT = {
    "mysite/__init__.py": "",
    "mysite/settings.py": """
        SECRET_KEY = "interlock-cli-tests-only"
        INSTALLED_APPS = ["notes"]
        DATABASES = {}
        USE_TZ = True
        """,
    "mysite/broken_settings.py": """
        SECRET_KEY = "interlock-cli-tests-only"
        INSTALLED_APPS = ["no_such_app_for_interlock"]
        """,
    "notes/__init__.py": "",
    "notes/models.py": """
        from django.db import models

        class Note(models.Model):
            text = models.TextField()
        """,
    "notes/actors.py": """
        from typing import Any

        from interlock.actors import StateActor
        from interlock.dsl import State, on

        from notes.models import Note

        class NoteActor(StateActor):
            drafting = State()
            saved = State(terminal=True)

            @on.client("save", source=drafting, target=saved)
            async def save(self, event: Any) -> None:
                Note(text=str(event))
        """,
}


@pytest.fixture
def django_project(tmp_path: Path) -> Path:
    pytest.importorskip("django")
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def django_env(settings: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    if settings is not None:
        env["DJANGO_SETTINGS_MODULE"] = settings
    return env


def test_diagram_sets_django_up_before_importing_the_module(django_project: Path) -> None:
    result = run("diagram", "notes.actors:NoteActor", cwd=django_project, env=django_env("mysite.settings"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stateDiagram-v2\n")
    assert "drafting" in result.stdout
    assert "save" in result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("interlock: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("settings", "cause"),
    [
        ("mysite.broken_settings", "ModuleNotFoundError: No module named 'no_such_app_for_interlock'"),
        ("mysite.no_such_settings", "ModuleNotFoundError: No module named 'mysite.no_such_settings'"),
    ],
)
def test_diagram_names_the_settings_module_when_django_setup_fails(
    django_project: Path, settings: str, cause: str
) -> None:
    result = run("diagram", "notes.actors:NoteActor", cwd=django_project, env=django_env(settings))
    error = one_line_error(result)
    assert f"cannot set up Django with DJANGO_SETTINGS_MODULE={settings!r}" in error
    assert cause in error


def test_diagram_without_django_settings_says_to_set_them(django_project: Path) -> None:
    result = run("diagram", "notes.actors:NoteActor", cwd=django_project, env=django_env(None))
    error = one_line_error(result)
    assert "cannot import module 'notes.actors': ImproperlyConfigured: " in error
    assert "set DJANGO_SETTINGS_MODULE" in error
