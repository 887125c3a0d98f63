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


# -- interlock worker ------------------------------------------------------------------------------------

WORKERS = """
from interlock.actors import Actor, ChannelNameRouter, ProtocolTypeRouter, StopActor, handler
from interlock.layers import SQLiteChannelLayer
import os


class Jobs(Actor):
    @handler
    async def job_run(self, message):
        await self.channel_layer.send(message["reply_to"], {"type": "job.done", "n": message["n"]})

    @handler
    async def job_fail(self, message):
        raise KeyError("missing")

    @handler
    async def job_stop(self, message):
        raise StopActor("asked to stop")


layer = SQLiteChannelLayer(os.environ["LAYER_PATH"])
application = ProtocolTypeRouter({"channel": ChannelNameRouter({"jobs": Jobs.as_asgi()})}, channel_layer=layer)
bare = Jobs.as_asgi()
"""


@pytest.fixture
def worker_project(tmp_path: Path) -> Path:
    (tmp_path / "workers.py").write_text(textwrap.dedent(WORKERS))
    return tmp_path


def worker_env(project: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["LAYER_PATH"] = str(project / "layer.sqlite3")
    return env


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["workers:nothing", "jobs"], "module 'workers' has no attribute 'nothing'"),
        (["workers", "jobs"], "expected MODULE:APP"),
        (["workers:Jobs", "jobs"], "workers:Jobs is a class; point at an app"),
        (["workers:application", "other"], "the ChannelNameRouter has no application for ['other']"),
        (["workers:application", "bad name!"], "bad name!"),
        (["workers:bare", "jobs"], "workers:bare has no channel layer to serve: pass --layer MODULE:NAME"),
        (["workers:bare", "jobs", "--layer", "workers:Jobs"], "--layer workers:Jobs is <class"),
    ],
)
def test_worker_usage_errors_exit_2_with_one_line(worker_project: Path, args: list[str], error: str) -> None:
    result = run("worker", *args, cwd=worker_project, env=worker_env(worker_project))
    assert result.returncode == 2, result
    assert error in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_worker_serves_logs_failures_goes_on_and_stops_on_sigterm(
    worker_project: Path, anyio_backend: str
) -> None:
    """A failing message is logged and the worker goes on; SIGTERM stops it with 0, StopActor with 1."""
    import anyio  # noqa: PLC0415
    from interlock.layers import SQLiteChannelLayer  # noqa: PLC0415

    command = [
        sys.executable,
        "-I",
        "-m",
        "interlock",
        "worker",
        "workers:application",
        "jobs",
        "--backend",
        anyio_backend,
    ]
    async with SQLiteChannelLayer(worker_project / "layer.sqlite3") as layer:
        for stop, expected in (("signal", 0), ("stop", 1)):
            with anyio.fail_after(30):
                process = await anyio.open_process(command, cwd=worker_project, env=worker_env(worker_project))
                async with process:
                    inbox = await layer.new_channel()
                    await layer.send("jobs", {"type": "job.fail"})
                    await layer.send("jobs", {"type": "job.run", "n": 1, "reply_to": inbox})
                    assert await layer.receive(inbox) == {"type": "job.done", "n": 1}
                    if stop == "signal":
                        process.terminate()
                    else:
                        await layer.send("jobs", {"type": "job.stop"})
                    assert await process.wait() == expected
                    assert process.stderr is not None
                    chunks = [chunk async for chunk in process.stderr]
                    stderr = b"".join(chunks).decode()
            assert "failed on a 'job.fail' message from channel 'jobs' and goes on serving: KeyError" in stderr
            if stop == "stop":
                assert "the worker for channel 'jobs' stopped: a handler raised StopActor('asked to stop')" in stderr
            else:
                assert "SIGTERM received, stopping" in stderr
