"""Shared fixtures: every async test runs on asyncio and on trio.

``anyio_mode = "auto"`` (pyproject.toml) hands every coroutine test to anyio's plugin;
this fixture lists both backends explicitly, as anyio advises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by .ci/setup; never a browser download
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test once per backend."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _fresh_drop_log() -> None:
    """Each test sees the first unhandled event of a kind logged (the log is rate-limited per class)."""
    from interlock.actors import _base  # noqa: PLC0415 - private state, reset for isolation

    _base._drops.clear()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), driven by Playwright's sync API, for the module's page tests."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests need it

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
