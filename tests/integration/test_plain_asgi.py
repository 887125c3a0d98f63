"""interlock actors inside a hand-written ASGI app, under uvicorn (asyncio) and hypercorn (trio)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.checks import (
    assert_clean_log,
    echo_round_trip,
    exchange_through_layer,
    join,
    notify_over_http,
    unique,
)
from tests.integration.plain_app import LAYER_CLOSED
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import HandshakeRejected, WSClient

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.plain_app:app"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        yield running


async def test_routed_actor_echoes(server: RunningServer) -> None:
    name = unique("plain")
    client, greeting = await join(server, f"/ws/echo/{name}/")
    async with client:
        assert greeting["url_route"] == {"args": [], "kwargs": {"name": name}}
        assert greeting["path"] == f"/ws/echo/{name}/"
        await echo_round_trip(client, name)
    assert_clean_log(server)


async def test_actor_app_called_directly_echoes(server: RunningServer) -> None:
    name = unique("bare")
    client, greeting = await join(server, f"/actor/{name}")
    async with client:
        assert greeting["hello"] == name
        assert greeting["url_route"] == {"args": [], "kwargs": {}}
        await echo_round_trip(client, name)
    assert_clean_log(server)


async def test_two_clients_in_one_group_talk_through_the_layer(server: RunningServer) -> None:
    group = unique("room")
    first, _ = await join(server, f"/ws/echo/first/?group={group}")
    second, _ = await join(server, f"/actor/second?group={group}")
    async with first, second:
        await exchange_through_layer(first, second, "first", "second")
    assert_clean_log(server)


async def test_own_http_handling_shares_the_layer(server: RunningServer) -> None:
    group = unique("notified")
    first, _ = await join(server, f"/ws/echo/one/?group={group}")
    second, _ = await join(server, f"/actor/two?group={group}")
    async with first, second:
        async with httpx.AsyncClient() as http:
            health = await http.get(server.http_url("/health"))
            assert health.status_code == 200
            assert health.json()["groups"][group] == 2
            missing = await http.get(server.http_url("/ws/echo/one/"))
            assert missing.status_code == 404
            assert missing.json() == {"error": "no route for GET /ws/echo/one/"}
        assert await notify_over_http(server, f"/notify/{group}", [first, second], "from plain ASGI") == {"members": 2}
    assert_clean_log(server)


async def test_unrouted_websocket_paths_are_refused(server: RunningServer) -> None:
    with pytest.raises(HandshakeRejected) as by_app:
        await WSClient.connect(server.host, server.port, "/elsewhere")
    assert by_app.value.status == 403
    with pytest.raises(HandshakeRejected) as by_router:
        await WSClient.connect(server.host, server.port, "/ws/nowhere/")
    assert by_router.value.status in (403, 404)
    assert "Traceback" not in server.logs()


def test_lifespan_starts_and_closes_the_layer(anyio_backend: str) -> None:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        assert httpx.get(running.http_url("/health")).json()["ok"] is True
    logs = running.logs()
    assert LAYER_CLOSED in logs, logs
    assert "Traceback" not in logs, logs
