"""Origin checks and subprotocol tokens in headless Chromium, against real servers.

The page comes from the app itself, so its origin is the server's; the same server
reached under its other name (``localhost`` vs ``127.0.0.1``) is another origin, which
a browser sends and the validators refuse. Playwright's sync API runs its own event
loop, so these tests are plain functions, one server of each kind per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.security.servers import KINDS, assert_clean, run
from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e


OPEN_SOCKET = """
async ([url, protocols, say]) => await new Promise((resolve) => {
    const ws = protocols.length ? new WebSocket(url, protocols) : new WebSocket(url);
    const timer = setTimeout(() => resolve({outcome: "timeout"}), 5000);
    ws.onopen = () => { if (say) ws.send(say); };
    ws.onmessage = (event) => {
        clearTimeout(timer);
        resolve({outcome: "open", protocol: ws.protocol, data: event.data});
        ws.close(1000);
    };
    ws.onclose = (event) => { clearTimeout(timer); resolve({outcome: "closed", code: event.code}); };
})
"""


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with run("tests.security.e2e_app:app", request.param) as running:
        yield running
        assert_clean(running.logs())


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def socket(page: Page, url: str, protocols: list[str] | None = None, say: str = "") -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(OPEN_SOCKET, [url, protocols or [], say])
    return result


def test_the_pages_own_origin_works_and_another_is_refused(server: RunningServer, page: Page) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/")
    own = socket(page, f"ws://127.0.0.1:{server.port}/ws/same/", say="hi")
    assert own == {"outcome": "open", "protocol": "", "data": "echo hi"}
    other = socket(page, f"ws://localhost:{server.port}/ws/same/", say="hi")
    assert other == {"outcome": "closed", "code": 1006}  # the browser hides the 403
    assert f"Origin 'http://127.0.0.1:{server.port}' is not allowed" in server.logs()


def test_listed_origins_from_a_browser(server: RunningServer, page: Page) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/")
    assert socket(page, f"ws://127.0.0.1:{server.port}/ws/listed/", say="hi")["outcome"] == "closed"
    page.goto(f"http://localhost:{server.port}/")  # allowed: http://localhost:*
    assert socket(page, f"ws://127.0.0.1:{server.port}/ws/listed/", say="hi")["data"] == "echo hi"


def test_token_as_subprotocol_from_a_browser(server: RunningServer, page: Page) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/")
    url = f"ws://127.0.0.1:{server.port}/ws/token/"
    assert socket(page, url, ["bearer", "t0ken"]) == {"outcome": "open", "protocol": "bearer", "data": "hello alice"}
    assert socket(page, url, ["bearer", "forged"]) == {"outcome": "closed", "code": 1006}
    assert socket(page, url + "?token=s3cret")["data"] == "hello bob"
