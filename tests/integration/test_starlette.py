"""interlock actors mounted in a Starlette app, under uvicorn (asyncio) and hypercorn (trio)."""

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
from tests.integration.starlette_app import LAYER_CLOSED
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import HandshakeRejected, WSClient

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.starlette_app:app"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        yield running


@pytest.mark.parametrize(
    ("prefix", "root_path"),
    [("/rt", "/rt"), ("/outer/inner", "/outer/inner"), ("/bare", "/bare")],
)
async def test_mounted_actor_sees_its_route_and_echoes(server: RunningServer, prefix: str, root_path: str) -> None:
    name = unique("ada")
    client, greeting = await join(server, f"{prefix}/ws/echo/{name}/")
    async with client:
        assert greeting["hello"] == name
        assert greeting["root_path"] == root_path
        assert greeting["path"] == f"{prefix}/ws/echo/{name}/"  # Starlette keeps the full path
        assert greeting["url_route"] == {"args": [], "kwargs": {"name": name}}
        await echo_round_trip(client, name)
    assert_clean_log(server)


async def test_two_clients_in_one_group_talk_through_the_layer(server: RunningServer) -> None:
    group = unique("room")
    first, _ = await join(server, f"/rt/ws/echo/first/?group={group}")
    second, _ = await join(server, f"/rt/ws/echo/second/?group={group}")
    async with first, second:
        await exchange_through_layer(first, second, "first", "second")
    assert_clean_log(server)


async def test_every_mount_shares_the_one_layer(server: RunningServer) -> None:
    group = unique("shared")
    via_router, _ = await join(server, f"/rt/ws/echo/router/?group={group}")
    via_nested, _ = await join(server, f"/outer/inner/ws/echo/nested/?group={group}")
    via_bare, _ = await join(server, f"/bare/ws/echo/bare/?group={group}")
    async with via_router, via_nested, via_bare:
        await via_bare.send_json({"say": "from the bare router"})
        for client in (via_router, via_nested, via_bare):
            assert await client.receive_json() == {"from": "bare", "said": "from the bare router"}
    assert_clean_log(server)


async def test_starlette_routes_share_the_app_and_the_layer(server: RunningServer) -> None:
    group = unique("notified")
    first, _ = await join(server, f"/rt/ws/echo/one/?group={group}")
    second, _ = await join(server, f"/bare/ws/echo/two/?group={group}")
    async with first, second:
        async with httpx.AsyncClient() as http:
            status = (await http.get(server.http_url("/api/status"))).json()
        assert status["lifespan"] == "started"
        assert status["groups"][group] == 2
        answer = await notify_over_http(server, f"/api/notify/{group}", [first, second], "from starlette")
        assert answer == {"members": 2}
    assert_clean_log(server)


async def test_unknown_path_under_the_mount_is_refused(server: RunningServer) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        await WSClient.connect(server.host, server.port, "/rt/ws/nowhere/")
    assert refused.value.status in (403, 404)
    assert "no route matches path '/rt/ws/nowhere/'" in server.logs()
    assert "Traceback" not in server.logs()


def test_lifespan_enters_and_closes_the_layer(anyio_backend: str) -> None:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        response = httpx.get(running.http_url("/api/status"))
        assert response.json()["lifespan"] == "started"
    logs = running.logs()
    assert LAYER_CLOSED in logs, logs
    assert "Traceback" not in logs, logs
