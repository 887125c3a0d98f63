"""Starlette's and FastAPI's SessionMiddleware/AuthenticationMiddleware values in a mounted actor.

A user logs in through the host app's own view (httpx keeps the session cookie); the
WebSocket carries that cookie, and the actor reads ``scope["user"]``, ``scope["auth"]``
and ``scope["session"]`` as Starlette's middleware put them there. Served by uvicorn
and hypercorn -k trio, each client on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.servers import assert_clean, run
from tests.support.servers import RunningServer
from tests.support.wsclient import WSClient, try_connect

pytestmark = pytest.mark.e2e


@pytest.fixture(
    scope="module",
    params=[
        ("starlette_app", "uvicorn"),
        ("starlette_app", "hypercorn"),
        ("fastapi_app", "uvicorn"),
        ("fastapi_app", "hypercorn"),
    ],
    ids="-".join,
)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    app, kind = request.param
    with run(f"tests.security.host_auth_app:{app}", kind) as running:
        yield running
        assert_clean(running.logs())


async def log_in(server: RunningServer, name: str) -> str:
    """The Cookie header a browser would send after logging in as *name*."""
    async with httpx.AsyncClient(base_url=server.http_url()) as client:
        response = await client.post("/login", json={"name": name})
        assert response.text == "logged in"
        return "; ".join(f"{key}={value}" for key, value in client.cookies.items())


async def test_the_actor_sees_the_user_and_the_session(server: RunningServer) -> None:
    cookie = await log_in(server, "ada")
    origin = f"http://{server.host}:{server.port}"
    headers = [("Cookie", cookie), ("Origin", origin)]
    async with await WSClient.connect(server.host, server.port, "/rt/ws/me/", headers=headers) as ws:
        assert await ws.receive_json() == {
            "user": "ada",
            "scopes": ["authenticated"],
            "session": {"username": "ada", "theme": "dark"},
        }


async def test_anonymous_and_forged_cookies_are_refused_by_the_actor(server: RunningServer) -> None:
    for headers in ([], [("Cookie", "session=forged.value.here")]):
        handshake = await try_connect(server.host, server.port, "/rt/ws/me/", headers=headers)
        assert (handshake.accepted, handshake.status) == (False, 403)


async def test_the_origin_check_applies_before_the_session(server: RunningServer) -> None:
    cookie = await log_in(server, "bob")
    headers = [("Cookie", cookie), ("Origin", "http://evil.example")]
    handshake = await try_connect(server.host, server.port, "/rt/ws/me/", headers=headers)
    assert (handshake.accepted, handshake.status) == (False, 403)
    assert "Origin 'http://evil.example' is not allowed" in server.logs()
