"""EventSource in headless Chromium against the chat example's room feed (uvicorn; hypercorn on trio).

Playwright's sync API runs its own event loop, so these are plain functions, one server of
each kind per module. One page watches a room through ``EventSource`` (the page's Watch
button), another joins it over a WebSocket and speaks; the watcher sees the message, and
when it leaves, the server tears its actor down (the room's count drops).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import RunningServer, serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_LAYER": "memory"}
    with serve("chat:app", backend=request.param, app_dir=str(EXAMPLES), env=env) as running:
        yield running


CONSOLE_ERRORS: list[str] = []


def open_page(browser: Browser, server: RunningServer, room: str) -> Page:
    page = browser.new_context().new_page()
    page.on("console", lambda message: CONSOLE_ERRORS.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: CONSOLE_ERRORS.append(str(error)))
    page.goto(server.http_url("/"))
    page.fill("input[name=room]", room)
    return page


def members(server: RunningServer, room: str) -> int:
    count: int = httpx.get(server.http_url("/api/rooms"), timeout=5).json().get(room, 0)
    return count


def test_an_eventsource_watcher_sees_the_rooms_messages(browser: Browser, server: RunningServer) -> None:
    CONSOLE_ERRORS.clear()
    watcher = open_page(browser, server, "wall")
    watcher.click("#watch")
    expect(watcher.locator("#log")).to_contain_text("watching wall (read-only)", timeout=5000)

    speaker = open_page(browser, server, "wall")
    speaker.fill("input[name=name]", "ada")
    speaker.click("#join button")
    expect(speaker.locator("#log")).to_contain_text("joined wall", timeout=5000)
    assert members(server, "wall") == 2
    speaker.fill("input[name=message]", "hello from a browser")
    speaker.click("#say button")

    expect(watcher.locator("#log")).to_contain_text("[wall] ada: hello from a browser", timeout=5000)

    watcher.context.close()  # the watcher leaves: its actor ends, its group is left
    deadline = time.monotonic() + 5
    while members(server, "wall") != 1:
        assert time.monotonic() < deadline, "the feed's actor did not leave the room"
        time.sleep(0.05)
    speaker.context.close()
    assert CONSOLE_ERRORS == [], "the page logged errors in the browser's console"
    logs = server.logs()
    assert "ERROR" not in logs, logs
    assert "Traceback" not in logs, logs
