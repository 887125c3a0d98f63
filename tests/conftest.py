"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test once per backend (listed explicitly, as anyio advises)."""
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every coroutine test for anyio, so no async test can silently skip a backend."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and _is_coroutine(function):
            item.add_marker(pytest.mark.anyio)


def _is_coroutine(function: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)
