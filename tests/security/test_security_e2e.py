"""Origin checks and token auth under real servers, with a real client, on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.security.servers import BODIES, KINDS, assert_clean, run
from tests.support.servers import RunningServer
from tests.support.wsclient import WSClient, try_connect

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with run("tests.security.e2e_app:app", request.param) as running:
        yield running
        assert_clean(running.logs())


def kind(server: RunningServer) -> str:
    if server.kind == "hypercorn":
        return "hypercorn"
    return "uvicorn-wsproto" if "wsproto" in server.process.args else "uvicorn"  # type: ignore[operator]


async def echo(server: RunningServer, path: str, origin: str | None) -> str:
    headers = [] if origin is None else [("Origin", origin)]
    async with await WSClient.connect(server.host, server.port, path, headers=headers) as ws:
        await ws.send_text("hi")
        return await ws.receive_text()


async def refused(server: RunningServer, path: str, **kwargs: object) -> tuple[int, bytes]:
    handshake = await try_connect(server.host, server.port, path, **kwargs)  # type: ignore[arg-type]
    assert not handshake.accepted
    return handshake.status, handshake.body


async def test_own_origin_works_and_evil_is_refused(server: RunningServer) -> None:
    own = f"http://{server.host}:{server.port}"
    assert await echo(server, "/ws/same/", own) == "echo hi"
    status, body = await refused(server, "/ws/same/", headers=[("Origin", "http://evil.example")])
    assert status == 403
    if BODIES[kind(server)]:
        assert body == b"Forbidden: Origin 'http://evil.example' is not allowed"
    logs = server.logs()
    assert "refused websocket /ws/same/ from 127.0.0.1:" in logs
    # uvicorn's default protocol (websockets-sansio) is recognised and gets a close before accept
    assert ("answered 403 (close before accept)" in logs) is (kind(server) == "uvicorn")
    assert "Origin 'http://evil.example' is not allowed; allowed: the request's own origin" in logs


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("https://chat.example.com", True),
        ("http://chat.example.com", False),
        ("http://127.0.0.1:5173", False),
        ("null", False),
        ("http://evil.example/", False),
        (None, True),
    ],
)
async def test_listed_origins(server: RunningServer, origin: str | None, allowed: bool) -> None:
    if allowed:
        assert await echo(server, "/ws/listed/", origin) == "echo hi"
    else:
        assert (await refused(server, "/ws/listed/", headers=[("Origin", origin or "")]))[0] == 403


async def test_same_origin_on_another_name_is_refused(server: RunningServer) -> None:
    # the client connects to 127.0.0.1 (its Host header) from a page on localhost
    status, _ = await refused(server, "/ws/same/", headers=[("Origin", f"http://localhost:{server.port}")])
    assert status == 403


async def test_http_is_checked_too(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http_url()) as client:
        assert (await client.get("/")).status_code == 200
        response = await client.get("/", headers={"Origin": "http://evil.example"})
        assert response.status_code == 403
        assert response.text == "Forbidden: Origin 'http://evil.example' is not allowed"


async def test_token_in_the_query_string(server: RunningServer) -> None:
    async with await WSClient.connect(server.host, server.port, "/ws/token/?token=t0ken") as ws:
        assert await ws.receive_text() == "hello alice"
    status, body = await refused(server, "/ws/token/?token=nope")
    assert status == (401 if BODIES[kind(server)] else 403)
    if BODIES[kind(server)]:
        assert body == b"invalid token (from the query)"


async def test_token_in_a_header(server: RunningServer) -> None:
    headers = [("Authorization", "Bearer s3cret")]
    async with await WSClient.connect(server.host, server.port, "/ws/token/", headers=headers) as ws:
        assert await ws.receive_text() == "hello bob"
    status, body = await refused(server, "/ws/token/")
    assert status == (401 if BODIES[kind(server)] else 403)
    if BODIES[kind(server)]:
        assert body.startswith(b"no token: expected 'Authorization: Bearer <token>' or '?token=<token>' or")


async def test_token_in_the_subprotocols_is_never_echoed(server: RunningServer) -> None:
    async with await WSClient.connect(server.host, server.port, "/ws/token/", subprotocols=["bearer", "t0ken"]) as ws:
        assert ws.handshake.subprotocol == "bearer"
        assert await ws.receive_text() == "hello alice"
    status, _ = await refused(server, "/ws/token/", subprotocols=["bearer", "wrong"])
    assert status in (401, 403)
    assert "wrong" not in server.logs()
