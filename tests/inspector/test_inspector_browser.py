"""The inspector page in headless Chromium, on the chat example's actors (uvicorn; hypercorn on trio).

``tests/inspector/app.py`` serves the chat example's actors, the state-machine chat and the
inspector. Real WebSocket clients connect; the page must show the right counts, show a
client's state change within a second, draw the chosen actor's diagram with its state
highlighted and list its transitions, log no console error, and refuse a visit without
the token. A screenshot of the page is kept as ``inspector-<backend>.png`` in the test's
``tmp_path`` (pytest keeps the last three runs under ``/tmp/pytest-of-$USER/``); its path
is printed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.support.servers import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-inspector-token-0123456789"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_LAYER": "memory", "INSPECTOR_TOKEN": TOKEN}
    with serve("tests.inspector.app:app", backend=request.param, app_dir=str(ROOT), env=env) as running:
        yield running


def open_inspector(browser: Browser, server: RunningServer, errors: list[str]) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(server.http_url(f"/_interlock/?token={TOKEN}"))
    assert response is not None
    assert response.status == 200
    expect(page.locator("#status")).to_have_text("live", timeout=5000)
    assert "token" not in page.url  # taken out of the address bar
    return page


def watchers(server: RunningServer) -> int:
    headers = {"authorization": f"Bearer {TOKEN}"}
    count: int = httpx.get(server.http_url("/_interlock/api/summary"), headers=headers, timeout=5).json()["watchers"]
    return count


def chat_member(server: RunningServer, name: str) -> ClientConnection:
    return connect(server.ws_url(f"/ws/chat/lobby/?name={name}"), open_timeout=5)


def test_a_visit_without_the_token_is_refused(browser: Browser, server: RunningServer) -> None:
    page = browser.new_context().new_page()
    response = page.goto(server.http_url("/_interlock/"))
    assert response is not None
    assert response.status == 401
    assert "needs its token" in page.content()
    page.context.close()
    wrong = httpx.get(
        server.http_url("/_interlock/api/summary"), headers={"authorization": "Bearer nope-nope-nope-nope"}
    )
    assert wrong.status_code == 403
    assert httpx.get(server.http_url("/_interlock/events")).status_code == 401


def test_the_page_shows_live_actors_and_a_clients_state_change(
    browser: Browser, server: RunningServer, tmp_path: Path
) -> None:
    errors: list[str] = []
    with contextlib.ExitStack() as clients:
        members = [clients.enter_context(chat_member(server, name)) for name in ("ada", "bob")]
        state_client = clients.enter_context(connect(server.ws_url("/ws/state/"), open_timeout=5))
        page = open_inspector(browser, server, errors)
        classes = page.locator("#classes tbody")
        expect(classes.locator("tr[data-class=ChatActor] td").nth(1)).to_have_text("2", timeout=5000)
        expect(classes.locator("tr[data-class=StateChat] td").nth(1)).to_have_text("1")
        expect(classes.locator("tr[data-class=ChatActor]")).to_contain_text("open 2")
        expect(page.locator("#layer-groups")).to_contain_text("chat.lobby")

        state_row = page.locator("#actors tr.actor", has_text="StateChat")
        expect(state_row).to_contain_text("open.authenticating")
        state_row.click()
        expect(page.locator("#diagram svg")).to_be_visible(timeout=5000)
        assert "#ffd54f" in page.locator("#diagram").inner_html()  # the current state, highlighted

        # A real client's state change reaches the page within a second.
        state_client.send(json.dumps({"type": "login", "name": "cyd", "token": "letmein"}))
        assert json.loads(state_client.recv(timeout=5))["type"] == "welcome"
        changed = time.monotonic()
        expect(page.locator("#actors tr.actor", has_text="StateChat")).to_contain_text("open.lobby", timeout=1000)
        assert time.monotonic() - changed < 1.0
        expect(page.locator("#transitions tbody")).to_contain_text("login", timeout=1000)
        expect(page.locator("#detail-title")).to_have_text("StateChat in open.lobby")

        # Another member joins, one leaves: the counts follow.
        members.append(clients.enter_context(chat_member(server, "cyd")))
        expect(classes.locator("tr[data-class=ChatActor] td").nth(1)).to_have_text("3", timeout=2000)
        members.pop(0).close()
        expect(classes.locator("tr[data-class=ChatActor] td").nth(1)).to_have_text("2", timeout=2000)

        # The list's filters.
        page.select_option("select[name=class]", "ChatActor")
        expect(page.locator("#actors tbody tr")).to_have_count(2, timeout=2000)
        expect(page.locator("#matching")).to_contain_text("2 of 3 match")
        expect(page.locator("#transitions tbody")).to_contain_text("login")  # kept across the new stream

        shot = tmp_path / f"inspector-{server.port}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(f"inspector screenshot: {shot}")  # noqa: T201
        page.context.close()
        deadline = time.monotonic() + 5  # the page's stream ended: nobody watches, nothing is recorded
        while watchers(server) != 0:
            assert time.monotonic() < deadline, "the closed page still counts as a watcher"
            time.sleep(0.05)
    assert errors == []
    logs = server.logs()
    assert "Traceback" not in logs, logs
