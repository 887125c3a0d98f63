"""Shared fixtures: every async test runs on asyncio and on trio.

``anyio_mode = "auto"`` (pyproject.toml) hands every coroutine test to anyio's plugin;
this fixture lists both backends explicitly, as anyio advises.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test once per backend."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _fresh_drop_log() -> None:
    """Each test sees the first unhandled event of a kind logged (the log is rate-limited per class)."""
    from interlock.actors import _base  # noqa: PLC0415 - private state, reset for isolation

    _base._drops.clear()
