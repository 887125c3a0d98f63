"""Drive ``examples/django_chat`` from the outside: its ``manage.py``, its servers, its login page.

Everything runs in subprocesses with ``DJANGO_CHAT_DATA`` pointing at a temporary folder,
so runs never share a database or a layer file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_chat"
APP = "django_chat.asgi:application"
PASSWORD = "pw-for-tests-only"


def project_env(data: Path, **extra: str) -> dict[str, str]:
    """The environment of the example's processes: its data folder, and *extra*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTHONPATH"))}
    env.update({"DJANGO_CHAT_DATA": str(data), "PYTHONPATH": str(PROJECT), **extra})
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run ``manage.py ARGS`` and return its stdout; fail with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        check=False,
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def prepare(env: dict[str, str], *users: str) -> None:
    """Migrate and create *users* (password :data:`PASSWORD`)."""
    manage(env, "migrate", "--verbosity", "0")
    code = "from django.contrib.auth.models import User\n" + "".join(
        f"User.objects.create_user({name!r}, password={PASSWORD!r})\n" for name in users
    )
    manage(env, "shell", "-c", code)


def session_of(env: dict[str, str], username: str) -> str:
    """A session key with *username* logged in, made by ``manage.py shell`` (no HTTP needed)."""
    code = (
        "from django.contrib.auth.models import User\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "from interlock.actors.django import login\n"
        "scope = {'session': SessionStore()}\n"
        f"login(scope, User.objects.get(username={username!r}))\n"
        "scope['session'].save()\n"
        "print(scope['session'].session_key)\n"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]  # after shell's own notes


async def log_in(base: str, username: str) -> str:
    """Log in through Django's login view (GET the form, POST it with its CSRF token); the session key."""
    async with httpx.AsyncClient(base_url=base) as http:
        form = await http.get("/accounts/login/")
        assert form.status_code == 200, form.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None, form.text
        answer = await http.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token[1], "next": "/"},
        )
        assert answer.status_code == 302, (answer.status_code, answer.text)
        assert answer.headers["location"] == "/"
        key = http.cookies.get("sessionid")
        assert key, http.cookies
        return key
