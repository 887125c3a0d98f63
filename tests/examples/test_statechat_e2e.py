"""The state-machine chat under real servers: login, deferral, guarded join, timeouts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient, try_connect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    env = {
        "STATECHAT_AUTH_TIMEOUT": "5",
        "STATECHAT_IDLE_TIMEOUT": "60",
        "STATECHAT_TOKEN": "sesame",
        "STATECHAT_ALLOWED_ORIGINS": "http://localhost:*",
    }
    with serve("statechat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def hasty_server(anyio_backend: str) -> Iterator[RunningServer]:
    env = {"STATECHAT_AUTH_TIMEOUT": "0.3", "STATECHAT_IDLE_TIMEOUT": "0.6", "STATECHAT_TOKEN": "sesame"}
    with serve("statechat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


async def connect(server: RunningServer) -> WSClient:
    return await WSClient.connect(server.host, server.port, "/ws/")


async def login(client: WSClient, name: str) -> None:
    await client.send_json({"type": "login", "name": name, "token": "sesame"})
    assert await client.receive_json() == {"type": "welcome", "name": name}


async def until(client: WSClient, kind: str) -> dict[str, Any]:
    for _ in range(20):
        message: dict[str, Any] = await client.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind!r} message")


async def test_wrong_token_is_refused_and_the_client_may_retry(server: RunningServer) -> None:
    async with await connect(server) as client:
        await client.send_json({"type": "login", "name": "eve", "token": "guess"})
        assert (await client.receive_json())["type"] == "error"
        await login(client, "eve")


async def test_room_messages_and_leave(server: RunningServer) -> None:
    async with await connect(server) as ada, await connect(server) as bob:
        await login(ada, "ada")
        await login(bob, "bob")
        for client in (ada, bob):
            await client.send_json({"type": "join", "room": "red"})
            assert (await until(client, "joined"))["room"] == "red"
        await ada.send_json({"type": "say", "text": "hello"})
        for client in (ada, bob):
            message = await until(client, "message")
            while message["room"] == "*":  # announcements of the joins
                message = await until(client, "message")
            assert (message["from"], message["text"], message["room"]) == ("ada", "hello", "red")
        await bob.send_json({"type": "leave"})
        assert (await until(bob, "left"))["room"] == "red"
        await ada.send_json({"type": "say", "text": "anyone?"})
        assert (await until(ada, "message"))["text"] == "anyone?"
        await bob.receive_nothing(0.3)


async def test_guarded_join_keeps_the_client_in_the_lobby(server: RunningServer) -> None:
    async with await connect(server) as client:
        await login(client, "cy")
        await client.send_json({"type": "join", "room": "no spaces!"})
        assert (await client.receive_json())["type"] == "error"
        await client.send_json({"type": "join", "room": "blue"})
        assert (await until(client, "joined"))["room"] == "blue"


async def test_announcements_are_deferred_until_login(server: RunningServer) -> None:
    async with await connect(server) as late, await connect(server) as early:
        await login(early, "early")
        await early.send_json({"type": "join", "room": "green"})
        await until(early, "joined")
        await late.receive_nothing(0.2)  # the announcement waits: late has not logged in
        await login(late, "late")  # the welcome comes first, then the deferred news
        news = await until(late, "message")
        assert news["text"] == "early joined green"


async def test_malformed_client_message_closes_with_1007(server: RunningServer) -> None:
    async with await connect(server) as client:
        await client.send_json({"type": "login", "name": 42})
        code, reason = await client.wait_closed()
        assert code == 1007
        assert "Login" in reason


async def test_auth_timeout_closes_with_4001(hasty_server: RunningServer) -> None:
    async with await connect(hasty_server) as client:
        code, reason = await client.wait_closed(timeout=5)
        assert (code, reason) == (4001, "log in within 0.3 s")


async def test_idle_timeout_closes_with_4000(hasty_server: RunningServer) -> None:
    async with await connect(hasty_server) as client:
        await login(client, "idler")
        code, reason = await client.wait_closed(timeout=5)
        assert (code, reason) == (4000, "idle")


async def test_a_flood_of_deferred_frames_before_login_closes_with_1008(server: RunningServer) -> None:
    """Deferred events are bounded: the client's flood closes its connection, nothing else."""
    async with await connect(server) as client:
        frame = {"type": "chat.message", "room": "*", "sender": "x", "text": "a" * 300_000}
        for _ in range(4):  # 1.2 MB deferred, over max_deferred_bytes (1 MiB)
            await client.send_json(frame)
        code, reason = await client.wait_closed()
    assert code == 1008
    assert reason.startswith("too many deferred events")
    async with await connect(server) as other:  # the server serves on
        await login(other, "after-flood")
    assert "Traceback" not in server.logs()


async def test_origin_checked_by_default(hasty_server: RunningServer) -> None:
    """A page on another site is refused; the server's own origin, and clients sending none, get in."""
    server = hasty_server  # default origin settings: same origin only
    evil = await try_connect(server.host, server.port, "/ws/", headers=[("Origin", "http://evil.example")])
    assert (evil.accepted, evil.status) == (False, 403)
    own = [("Origin", f"http://{server.host}:{server.port}")]
    async with await WSClient.connect(server.host, server.port, "/ws/", headers=own) as client:
        await login(client, "own-page")
    async with await connect(server) as client:  # no Origin: not a browser
        await login(client, "cli")
    logs = server.logs()
    assert "Origin 'http://evil.example' is not allowed" in logs
    assert "Traceback" not in logs
    assert "ERROR" not in logs


async def test_allowed_origins_from_the_environment(server: RunningServer) -> None:
    headers = [("Origin", "http://localhost:5173")]  # STATECHAT_ALLOWED_ORIGINS=http://localhost:*
    async with await WSClient.connect(server.host, server.port, "/ws/", headers=headers) as client:
        await login(client, "dev-server-page")
    other = await try_connect(server.host, server.port, "/ws/", headers=[("Origin", "https://localhost.evil")])
    assert other.status == 403
