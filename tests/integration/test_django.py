"""interlock actors beside Django's ASGI handler in one ``ProtocolTypeRouter``, served for real.

Django's ASGI handler is asyncio-only (``django.core.handlers.asgi`` and
``django.dispatch.Signal.asend`` call ``asyncio.create_task``/``asyncio.gather``; under
``hypercorn -k trio`` every HTTP request fails with ``TypeError: trio.run received
unrecognized yield message <_GatheringFuture pending>``). So the HTTP tests run on
asyncio only; the WebSocket tests run on both backends, with Django's handler in the
router all the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.checks import assert_clean_log, echo_round_trip, exchange_through_layer, join, unique
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.django_app:application"
DJANGO_IS_ASYNCIO_ONLY = (
    "Django's ASGI handler runs on asyncio only (it calls asyncio.create_task and "
    "asyncio.gather), so it cannot serve HTTP under hypercorn -k trio"
)
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT)) as running:
        yield running


@pytest.fixture
def asyncio_only(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip(DJANGO_IS_ASYNCIO_ONLY)


async def room(server: RunningServer, name: str) -> WSClient:
    return await WSClient.connect(server.host, server.port, f"/ws/chat/{name}/")


async def post_json(server: RunningServer, url_path: str, message: dict[str, Any]) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.post(server.http_url(url_path), content=json.dumps(message).encode())
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.usefixtures("asyncio_only")
async def test_django_view_is_served(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http_url("/hello/"))
        assert response.status_code == 200
        assert response.json() == {"hello": "from django", "path": "/hello/", "method": "GET"}
        missing = await http.get(server.http_url("/no-such-view/"))
        assert missing.status_code == 404  # Django's own 404, not the router's
        assert "<h1>Not Found</h1>" in missing.text
    assert_clean_log(server)


async def test_actor_beside_django_echoes(server: RunningServer) -> None:
    name = unique("django")
    client, greeting = await join(server, f"/ws/echo/{name}/")
    async with client:
        assert greeting["url_route"] == {"args": [], "kwargs": {"name": name}}
        assert greeting["root_path"] == ""
        await echo_round_trip(client, name)
    assert_clean_log(server)


async def test_two_echo_clients_talk_through_the_layer(server: RunningServer) -> None:
    group = unique("room")
    first, _ = await join(server, f"/ws/echo/first/?group={group}")
    second, _ = await join(server, f"/ws/echo/second/?group={group}")
    async with first, second:
        await exchange_through_layer(first, second, "first", "second")
    assert_clean_log(server)


async def test_seed_room_chat_consumer_inside_django(server: RunningServer) -> None:
    name = unique("lobby")
    alice = await room(server, name)
    bob = await room(server, name)
    elsewhere = await room(server, unique("other"))
    async with alice, bob, elsewhere:
        await alice.send_json({"message": "hello bob"})
        assert await bob.receive_json() == {"message": "hello bob"}
        assert await alice.receive_json() == {"message": "hello bob"}
        await bob.send_json({"message": "hi alice"})
        assert await alice.receive_json() == {"message": "hi alice"}
        assert await bob.receive_json() == {"message": "hi alice"}
        await elsewhere.receive_nothing(0.2)
        await bob.close()  # bob's sync disconnect() runs group_discard through async_to_sync
        await alice.send_json({"message": "bob has gone"})
        assert await alice.receive_json() == {"message": "bob has gone"}
    assert_clean_log(server)


@pytest.mark.usefixtures("asyncio_only")
@pytest.mark.parametrize(("view", "kind"), [("notify", "async"), ("notify-sync", "sync")])
async def test_django_view_sends_to_the_seed_consumers(server: RunningServer, view: str, kind: str) -> None:
    name = unique("news")
    alice = await room(server, name)
    bob = await room(server, name)
    async with alice, bob:
        answer = await post_json(server, f"/{view}/chat_{name}/", {"type": "chat.message", "message": f"from {kind}"})
        assert answer == {"members": 2, "view": kind}
        for client in (alice, bob):
            assert await client.receive_json() == {"message": f"from {kind}"}
    assert_clean_log(server)


@pytest.mark.usefixtures("asyncio_only")
async def test_django_view_sends_to_an_interlock_actor(server: RunningServer) -> None:
    group = unique("echo-news")
    client, _ = await join(server, f"/ws/echo/reader/?group={group}")
    async with client:
        answer = await post_json(server, f"/notify/{group}/", {"type": "host.notify", "text": "from django"})
        assert answer == {"members": 1, "view": "async"}
        assert await client.receive_json() == {"notified": "from django"}
    assert_clean_log(server)


def test_lifespan_is_answered_by_the_router(anyio_backend: str) -> None:
    """Django refuses lifespan scopes; the ProtocolTypeRouter answers them, so no error is logged."""
    # uvicorn's default "--lifespan auto" hides a failing lifespan; "on" makes it fatal
    extra = ["--lifespan", "on"] if anyio_backend == "asyncio" else []
    with serve(APP, backend=anyio_backend, app_dir=str(ROOT), extra_args=extra) as running:
        async_result = httpx.get(running.http_url("/hello/")) if anyio_backend == "asyncio" else None
        assert async_result is None or async_result.status_code == 200
    logs = running.logs()
    assert "Traceback" not in logs, logs
    assert "lifespan" not in logs.lower(), logs
