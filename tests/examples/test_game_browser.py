"""The tic-tac-toe page in headless Chromium: two pages are matched and play to a win.

Playwright's sync API runs its own event loop, so these are plain functions, one server of
each kind (uvicorn; hypercorn -k trio) per module, on the SQLite layer. One page reloads
mid-game (its socket drops), rejoins with the game id and token the page kept in
``sessionStorage``, and the game goes on; no page logs a console error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.servers import RunningServer, serve

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("game") / "game.sqlite3"
    env = {"INTERLOCK_GAME_LAYER": "sqlite", "INTERLOCK_GAME_DB": str(db)}
    with serve("game.game:app", backend=request.param, app_dir=str(EXAMPLES), env=env) as running:
        yield running


def open_page(browser: Browser, server: RunningServer, name: str, errors: list[str]) -> Page:
    page = browser.new_context().new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.http_url("/"))
    page.fill("#name", name)
    return page


def play(page: Page, square: int) -> None:
    button = page.locator(f'#board button[data-square="{square}"]')
    expect(button).to_be_enabled(timeout=5000)
    button.click()
    expect(button).to_have_text("X" if square in (0, 1, 2) else "O", timeout=5000)


def test_two_pages_play_a_game_with_a_rejoin(browser: Browser, server: RunningServer, tmp_path: Path) -> None:
    errors: list[str] = []
    ada = open_page(browser, server, "ada", errors)
    ada.click("#play")
    expect(ada.locator("#status")).to_have_text("Waiting for an opponent…", timeout=5000)
    bob = open_page(browser, server, "bob", errors)
    bob.click("#play")
    # bob usually proposes (he found ada in the lobby) and plays X; crossed proposals may swap them
    expect(bob.locator("#me")).to_contain_text("You play", timeout=5000)
    x, o = (bob, ada) if "You play X" in (bob.locator("#me").text_content() or "") else (ada, bob)
    expect(x.locator("#status")).to_contain_text("Your move (X)", timeout=5000)
    expect(o.locator("#status")).to_contain_text("'s move", timeout=5000)

    play(x, 0)
    play(o, 3)
    play(x, 1)

    o.reload()  # O's socket drops mid-game; the page kept the game id and token
    expect(x.locator("#status")).to_contain_text("connection dropped", timeout=5000)
    o.click("#rejoin")
    expect(x.locator("#status")).to_contain_text("'s move…", timeout=5000)  # told "back", then whose turn
    expect(o.locator("#status")).to_contain_text("Your move (O)", timeout=5000)  # O's turn resumed
    expect(o.locator("#board button")).to_have_text(["X", "X", "", "O", "", "", "", "", ""])

    play(o, 4)
    play(x, 2)
    expect(x.locator("#status")).to_have_text("You won: three in a row.", timeout=5000)
    expect(o.locator("#status")).to_have_text("You lost: three in a row.", timeout=5000)
    expect(x.locator("#again")).to_be_visible()
    shot = tmp_path / "game.png"
    x.screenshot(path=str(shot))
    assert shot.stat().st_size > 0
    ada.context.close()
    bob.context.close()
    assert errors == [], "the pages logged errors in the browser's console"
    logs = server.logs()
    assert "ERROR" not in logs, logs
    assert "Traceback" not in logs, logs
