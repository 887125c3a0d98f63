"""interlock actors in a FastAPI app (mounted, and routed by FastAPI), under uvicorn and hypercorn."""

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
from tests.integration.fastapi_app import LAYER_CLOSED
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient, try_connect

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.fastapi_app:app"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        yield running


async def test_mounted_actor_sees_its_route_and_echoes(server: RunningServer) -> None:
    name = unique("grace")
    client, greeting = await join(server, f"/rt/ws/echo/{name}/")
    async with client:
        assert greeting["actor"] == "EchoActor"
        assert greeting["root_path"] == "/rt"
        assert greeting["path"] == f"/rt/ws/echo/{name}/"
        assert greeting["url_route"] == {"args": [], "kwargs": {"name": name}}
        await echo_round_trip(client, name)
    assert_clean_log(server)


@pytest.mark.parametrize("prefix", ["/direct", "/routed"])
async def test_actor_routed_by_fastapi_itself(server: RunningServer, prefix: str) -> None:
    name = unique("direct")
    client, greeting = await join(server, f"{prefix}/{name}")
    async with client:
        assert greeting["actor"] == "DirectActor"
        assert greeting["path_params"] == {"name": name}
        assert greeting["url_route"] == {"args": [], "kwargs": {}}  # no URLRouter on the way
        await echo_round_trip(client, name)
    assert_clean_log(server)


async def test_add_api_websocket_route_cannot_host_an_actor(server: RunningServer) -> None:
    """FastAPI's own WebSocket routes inject parameters: an ASGI app is not an endpoint there."""
    handshake = await try_connect(server.host, server.port, "/api-route/nobody")
    assert not handshake.accepted
    assert handshake.status == 403
    assert_clean_log(server)


@pytest.mark.parametrize(
    ("first_path", "second_path"),
    [
        ("/rt/ws/echo/first/", "/rt/ws/echo/second/"),
        ("/rt/ws/echo/first/", "/direct/second"),
        ("/direct/first", "/routed/second"),
    ],
)
async def test_two_clients_in_one_group_talk_through_the_layer(
    server: RunningServer, first_path: str, second_path: str
) -> None:
    group = unique("room")
    first, _ = await join(server, f"{first_path}?group={group}")
    second, _ = await join(server, f"{second_path}?group={group}")
    async with first, second:
        await exchange_through_layer(first, second, "first", "second")
    assert_clean_log(server)


async def test_fastapi_routes_share_the_app_and_the_layer(server: RunningServer) -> None:
    group = unique("notified")
    mounted, _ = await join(server, f"/rt/ws/echo/one/?group={group}")
    direct, _ = await join(server, f"/direct/two?group={group}")
    async with mounted, direct:
        async with httpx.AsyncClient() as http:
            status = (await http.get(server.http_url("/api/status"))).json()
        assert status["lifespan"] == "started"
        assert status["groups"][group] == 2
        answer = await notify_over_http(server, f"/api/notify/{group}", [mounted, direct], "from fastapi")
        assert answer == {"members": 2}
        native = await WSClient.connect(server.host, server.port, "/api/native")
        async with native:
            message = await native.receive_json()
            assert message["native"] is True
            assert message["groups"][group] == 2
    assert_clean_log(server)


def test_lifespan_enters_and_closes_the_layer(anyio_backend: str) -> None:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        response = httpx.get(running.http_url("/api/status"))
        assert response.json()["lifespan"] == "started"
    logs = running.logs()
    assert LAYER_CLOSED in logs, logs
    assert "Traceback" not in logs, logs
