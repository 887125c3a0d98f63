"""The inspector across processes: two servers on one layer (SQLite, Redis), each showing both.

Two server processes (uvicorn; hypercorn on trio) serve ``tests/inspector/processes_app.py``
on one SQLite file or one Redis key prefix. Real WebSocket clients join a room in each.
The inspector of either process lists both processes with their counts, shows the other
one's actors and one actor's detail (asked through the layer), streams it, and
``interlock inspect --process`` prints it. A process killed with SIGKILL leaves the list
once the layer prunes it (lease 1 s, grace 1 s); asking for it then is a 404 naming the
processes there are.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from playwright.sync_api import Browser, expect
from websockets.sync.client import ClientConnection, connect

from tests.layers.redis_support import REDIS_URL, delete_prefix, redis_is_up, unique_prefix
from tests.support.servers import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-inspector-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
WAIT = 15.0

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "redis"])
def layer_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"INSPECT_LAYER": str(tmp_path / "layer.sqlite3")}
        return
    if not redis_is_up():
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    prefix = unique_prefix()
    yield {"INSPECT_LAYER": REDIS_URL, "INSPECT_PREFIX": prefix}
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    cleaner = threading.Thread(target=anyio.run, args=(delete_prefix, prefix))
    cleaner.start()
    cleaner.join(timeout=30)


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def two_servers(backend: str, env: dict[str, str]) -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        serve("tests.inspector.processes_app:app", backend=backend, app_dir=str(ROOT), env=env) as first,
        serve("tests.inspector.processes_app:app", backend=backend, app_dir=str(ROOT), env=env) as second,
    ):
        yield first, second


def summary(server: RunningServer, **query: str) -> httpx.Response:
    return httpx.get(server.http_url("/_interlock/api/summary"), params=query, headers=AUTH, timeout=10)


def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {WAIT:g} s (last: {last!r})")


def members(server: RunningServer, count: int, stack: contextlib.ExitStack) -> list[ClientConnection]:
    clients = []
    for _ in range(count):
        client = stack.enter_context(connect(server.ws_url("/ws/member/"), open_timeout=5))
        client.send(json.dumps({"hello": 1}))
        assert json.loads(client.recv(timeout=5)) == {"hello": 1}  # accepted, and in the room
        clients.append(client)
    return clients


def served_by(pid: int, server: RunningServer) -> bool:
    """Whether *pid* is the server's process or one of its workers (hypercorn forks one)."""
    return os.getpgid(pid) == server.process.pid


def processes_seen(server: RunningServer, totals: list[int]) -> list[dict[str, Any]] | None:
    rows: list[dict[str, Any]] = summary(server, limit="0").json()["processes"]
    return rows if sorted(row.get("total", -1) for row in rows) == sorted(totals) else None


def test_each_process_shows_the_others_and_a_killed_one_leaves(backend: str, layer_env: dict[str, str]) -> None:
    with two_servers(backend, layer_env) as (first, second), contextlib.ExitStack() as stack:
        members(first, 2, stack)
        members(second, 1, stack)
        rows = eventually(lambda: processes_seen(first, [2, 1]), "the first process lists both")
        assert [row["this"] for row in rows] == [True, False]  # this process first
        here, there = rows
        assert served_by(here["pid"], first)
        assert served_by(there["pid"], second)
        assert there["answering"] is True
        assert there["classes"] == {"Member": 1}
        seen_from_second = eventually(lambda: processes_seen(second, [1, 2]), "the second process lists both")
        assert served_by(seen_from_second[0]["pid"], second)

        remote = summary(first, process=there["id"]).json()
        assert remote["viewing"] == there["id"]
        assert remote["process"]["pid"] == there["pid"]
        assert remote["total"] == 1
        (actor,) = remote["actors"]
        assert actor["class"] == "Member"
        assert "room.red" in actor["groups"]
        assert remote["layer"]["groups"] == {"room.red": 3}  # the layer's listing: every process
        # Listed by the viewed process, yet "this process" on the layer is still the asking one.
        assert remote["layer"]["this_process"] == summary(first).json()["layer"]["this_process"] != []

        detail = httpx.get(
            first.http_url(f"/_interlock/api/actors/{actor['id']}"),
            params={"process": there["id"]},
            headers=AUTH,
            timeout=10,
        )
        assert detail.status_code == 200, detail.text
        assert detail.json()["channel"] == actor["channel"]
        missing = httpx.get(
            first.http_url("/_interlock/api/actors/1"), params={"process": there["id"]}, headers=AUTH, timeout=10
        )
        assert missing.status_code == 404

        printed = subprocess.run(
            [sys.executable, "-m", "interlock", "inspect", first.http_url("/_interlock/"), "--process", there["id"]],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "INTERLOCK_INSPECTOR_TOKEN": TOKEN},
            check=False,
        )
        assert printed.returncode == 0, printed.stderr
        assert f"pid {there['pid']}" in printed.stdout
        assert "PROCESSES" in printed.stdout
        assert "Member     1" in printed.stdout or "Member  1" in printed.stdout

        unknown = summary(first, process="nosuchprocess")
        assert unknown.status_code == 404
        assert "no inspecting process 'nosuchprocess'" in unknown.text
        assert there["id"] in unknown.text  # it names the processes there are

        os.killpg(second.process.pid, signal.SIGKILL)  # no shutdown: only the lease can tell
        second.process.wait(timeout=10)
        eventually(lambda: processes_seen(first, [2]), "the killed process leaves the list")
        gone = summary(first, process=there["id"])
        assert gone.status_code == 404, gone.text


def test_a_stream_follows_another_process(backend: str, layer_env: dict[str, str]) -> None:
    with two_servers(backend, layer_env) as (first, second), contextlib.ExitStack() as stack:
        members(second, 1, stack)
        rows = eventually(lambda: processes_seen(first, [0, 1]), "the first process lists both")
        there = rows[1]
        url = first.http_url("/_interlock/events")
        totals: list[int] = []
        with httpx.stream("GET", url, params={"process": there["id"]}, headers=AUTH, timeout=10) as stream:
            assert stream.status_code == 200
            deadline = time.monotonic() + WAIT
            event = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "summary":
                    content = json.loads(line.partition(":")[2])
                    assert content["viewing"] == there["id"]
                    totals.append(content["total"])
                    if totals == [1]:  # one more member there: the stream shows it
                        members(second, 1, stack)
                    if content["total"] == 2 or time.monotonic() > deadline:
                        break
        assert totals[0] == 1
        assert totals[-1] == 2
        # The other process records while watched from here: its summary counts the watcher.
        assert summary(second).json()["watchers"] >= 1


def test_the_page_lists_the_processes_and_shows_another(
    browser: Browser, backend: str, layer_env: dict[str, str], tmp_path: Path
) -> None:
    errors: list[str] = []
    with two_servers(backend, layer_env) as (first, second), contextlib.ExitStack() as stack:
        members(first, 1, stack)
        members(second, 2, stack)
        eventually(lambda: processes_seen(first, [1, 2]), "the first process lists both")
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(first.http_url(f"/_interlock/?token={TOKEN}"))
        expect(page.locator("#status")).to_have_text("live", timeout=5000)
        rows = page.locator("#processes tbody tr.process")
        expect(rows).to_have_count(2, timeout=5000)
        expect(rows.nth(0)).to_contain_text("(serving this page)")
        expect(rows.nth(0)).to_have_class("process selected")
        expect(page.locator("#total")).to_have_text("1")

        rows.nth(1).click()  # the other process: its actors, asked through the layer
        expect(page.locator("#total")).to_have_text("2", timeout=3000)
        expect(page.locator("#process")).to_contain_text("another process")
        expect(page.locator("#actors tbody tr.actor")).to_have_count(2)
        page.locator("#actors tbody tr.actor").first.click()
        expect(page.locator("#detail-title")).to_have_text("Member in open", timeout=3000)

        members(second, 1, stack)  # a change there reaches the page here
        expect(page.locator("#total")).to_have_text("3", timeout=3000)
        shot = tmp_path / f"inspector-processes-{backend}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(f"inspector screenshot: {shot}")  # noqa: T201

        os.killpg(second.process.pid, signal.SIGKILL)
        second.process.wait(timeout=10)
        expect(page.locator("#unreachable")).to_be_visible(timeout=WAIT * 1000)  # the one shown is gone
        expect(rows).to_have_count(1, timeout=WAIT * 1000)  # then pruned from the list
        rows.nth(0).click()
        expect(page.locator("#total")).to_have_text("1", timeout=3000)
        page.context.close()
    assert errors == []
    assert "Traceback" not in first.logs(), first.logs()
