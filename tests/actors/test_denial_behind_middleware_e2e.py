"""An actor's refusal behind middleware that wraps ``send`` (Starlette's sessions), on real servers.

Behind such middleware interlock cannot tell uvicorn's websockets-sansio protocol from
another, so the refusal goes out as an HTTP response; that protocol logged "ASGI callable
returned without completing handshake" at ERROR for every one (100 of 100 before the
actor let the server's close callback run after it). The client must get the status and
body, and the log no ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import try_connect

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve("denial_app:app", backend=anyio_backend, app_dir=str(HERE)) as running:
        yield running


async def test_refusals_behind_starlette_middleware_log_no_error(server: RunningServer) -> None:
    log_start = len(server.logs())
    for _ in range(20):
        handshake = await try_connect(server.host, server.port, "/ws/deny")
        assert not handshake.accepted
        assert (handshake.status, handshake.body) == (401, b"who are you?")
    logs = server.logs()[log_start:]
    assert "ERROR" not in logs, logs[-2000:]


async def test_a_failing_connect_behind_starlette_middleware_is_a_500_logged_once(server: RunningServer) -> None:
    log_start = len(server.logs())
    handshake = await try_connect(server.host, server.port, "/ws/fail")
    assert (handshake.accepted, handshake.status) == (False, 500)
    logs = server.logs()[log_start:]
    assert logs.count("boom in connect") >= 1
    assert "without completing handshake" not in logs, logs[-2000:]
