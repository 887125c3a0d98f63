"""The chat page in headless Chromium: a tab cut off for 5 seconds gets every message it missed, once.

Two tabs join one room; one tab's socket is dropped and held down for 5 s while the other
sends 50 messages (each acknowledged by the server); after its automatic reconnect
(``examples/interlock.js``: session token and last offset) the first tab shows all 50, in
order, once, and says it reconnected. Served by uvicorn (asyncio) and hypercorn -k trio,
on the in-memory and the SQLite layers. Playwright's sync API runs its own loop: plain
functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import RunningServer, serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MISSED = 50

pytestmark = pytest.mark.e2e


@pytest.fixture(
    scope="module",
    params=[("asyncio", "memory"), ("trio", "memory"), ("asyncio", "sqlite"), ("trio", "sqlite")],
    ids="-".join,
)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    backend, layer = request.param
    db = tmp_path_factory.mktemp("chat") / "chat.sqlite3"
    env = {"INTERLOCK_CHAT_LAYER": layer, "INTERLOCK_CHAT_DB": str(db), "INTERLOCK_CHAT_SECRET": "s" * 32}
    with serve("chat:app", backend=backend, app_dir=str(EXAMPLES), env=env, extra_args=()) as running:
        yield running


def open_chat(browser: Browser, server: RunningServer, name: str, errors: list[str]) -> Page:
    page = browser.new_context().new_page()
    # The drop below is the page's own doing: Chromium logs nothing for it but the close.
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.http_url("/"))
    page.fill("#join input[name=room]", "recovery")
    page.fill("#join input[name=name]", name)
    page.click("#join button:text('Join')")
    expect(page.locator("#log")).to_contain_text("joined recovery", timeout=5000)
    return page


def said(page: Page, who: str) -> list[str]:
    lines = page.locator("#log div:not(.system)").all_text_contents()
    return [line.removeprefix(f"{who}: ") for line in lines if line.startswith(f"{who}: ")]


def test_a_tab_cut_off_for_five_seconds_gets_all_it_missed_once(browser: Browser, server: RunningServer) -> None:
    errors: list[str] = []
    ada = open_chat(browser, server, "ada", errors)
    bob = open_chat(browser, server, "bob", errors)
    bob.evaluate("socket.request({message: 'before'})")
    expect(ada.locator("#log")).to_contain_text("bob: before", timeout=5000)

    ada.evaluate("socket.drop(5000)")  # the socket goes; the page reconnects in 5 s
    expect(ada.locator("#log")).to_contain_text("disconnected (4999", timeout=5000)
    acked = bob.evaluate(
        f"""async () => {{
            const results = [];
            for (let n = 0; n < {MISSED}; n++) results.push(await socket.request({{message: `m${{n}}`}}));
            return results;
        }}"""
    )
    assert acked == [True] * MISSED  # the server acknowledged each one
    assert said(ada, "bob") == ["before"]  # still away: nothing arrived meanwhile

    expect(ada.locator("#log")).to_contain_text("reconnected", timeout=15000)
    expect(ada.locator("#log div:not(.system)")).to_have_count(1 + MISSED, timeout=5000)
    assert said(ada, "bob") == ["before", *(f"m{n}" for n in range(MISSED))]
    assert not re.search("some messages were missed", ada.locator("#log").text_content() or "")

    bob.evaluate("socket.request({message: 'after'})")  # live again, still once
    expect(ada.locator("#log")).to_contain_text("bob: after", timeout=5000)
    assert said(ada, "bob") == ["before", *(f"m{n}" for n in range(MISSED)), "after"]
    assert said(bob, "bob") == ["before", *(f"m{n}" for n in range(MISSED)), "after"]
    ada.screenshot(path=str(Path(server.log.path).with_suffix(".recovery.png")))
    assert not [error for error in errors if "4999" not in error], errors
