"""``interlock inspect URL``, as a user runs it, against the inspector served by uvicorn (hypercorn on trio)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.servers import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-inspector-token-0123456789"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_LAYER": "memory", "INSPECTOR_TOKEN": TOKEN}
    with serve("tests.inspector.app:app", backend=request.param, app_dir=str(ROOT), env=env) as running:
        yield running


def inspect(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "INTERLOCK_INSPECTOR_TOKEN"}
    if token is not None:
        env["INTERLOCK_INSPECTOR_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "interlock", "inspect", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_inspect_prints_the_live_actors(server: RunningServer) -> None:
    url = server.http_url("/_interlock/")
    with connect(server.ws_url("/ws/chat/lobby/?name=ada")), connect(server.ws_url("/ws/chat/lobby/?name=bob")):
        result = inspect(url, "--token", TOKEN, "--layer")
        assert result.returncode == 0, result.stderr
        assert "ChatActor     2  open 2" in result.stdout
        assert "chat.lobby  2" in result.stdout
        assert "GROUPS ON THE LAYER (InMemoryChannelLayer, every process)" in result.stdout
        from_env = inspect(url.rstrip("/"), "--class", "ChatActor", "--json", token=TOKEN)
        assert from_env.returncode == 0, from_env.stderr
        assert '"matching": 2' in from_env.stdout
        watched = inspect(url, "--token", TOKEN, "--watch", "--watch-for", "0.6")
        assert watched.returncode == 0, watched.stderr
        assert "1 watching" in watched.stdout


def test_inspect_explains_what_went_wrong(server: RunningServer) -> None:
    url = server.http_url("/_interlock/")
    refused = inspect(url)
    assert refused.returncode == 2
    assert "answered 401" in refused.stderr
    assert "--token" in refused.stderr
    wrong = inspect(url, "--token", "wrong-token-wrong-token")
    assert (wrong.returncode, "answered 403: wrong inspector token" in wrong.stderr) == (2, True)
    assert "not an http://" in inspect("ftp://example.invalid/").stderr
    port = server.port
    gone = inspect(f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/_interlock/", "--token", TOKEN)
    assert gone.returncode == 2
    assert "cannot reach the inspector" in gone.stderr
    assert "Traceback" not in refused.stderr + wrong.stderr + gone.stderr
