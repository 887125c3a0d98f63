"""The example chat on the Redis layer, served by uvicorn and by hypercorn -k trio at once.

A member connected to one server and a member connected to the other chat in one room:
each receives the other's messages, both servers list the room's two members, and
neither server logs an ERROR or a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

from .redis_support import REDIS_URL, delete_prefix, redis_is_up, unique_prefix

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]

APP_DIR = Path(__file__).resolve().parent / "redis_e2e"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    prefix = unique_prefix()
    env = {"INTERLOCK_TEST_REDIS": REDIS_URL, "INTERLOCK_TEST_PREFIX": prefix}
    with (
        serve("redis_chat:app", backend="asyncio", app_dir=str(APP_DIR), env=env) as uvicorn,
        serve("redis_chat:app", backend="trio", app_dir=str(APP_DIR), env=env) as hypercorn,
    ):
        yield uvicorn, hypercorn
    anyio.run(delete_prefix, prefix)
    for server in (uvicorn, hypercorn):
        assert "ERROR" not in server.logs()
        assert "Traceback" not in server.logs()


async def _member(server: RunningServer, name: str) -> WSClient:
    origin = f"http://{server.host}:{server.port}"
    return await WSClient.connect(
        server.host, server.port, f"/ws/chat/lobby/?name={name}", headers=[("Origin", origin)]
    )


async def _said(client: WSClient) -> tuple[dict[str, Any], int]:
    """The next chat frame, and its offset in the room's history (one numbering, both servers)."""
    frame: dict[str, Any] = await client.receive_json()
    return frame, frame.pop("offset")


async def test_members_on_two_servers_chat_across_them(servers: tuple[RunningServer, RunningServer]) -> None:
    uvicorn, hypercorn = servers
    async with await _member(uvicorn, "Ada") as ada, await _member(hypercorn, "Bob") as bob:
        async with httpx.AsyncClient() as http:
            for server in servers:
                listing = await http.get(f"http://{server.host}:{server.port}/api/rooms")
                assert listing.json() == {"lobby": 2}
        await ada.send_json({"message": "hi from Ada"})
        frame, first = await _said(bob)
        assert frame == {"room": "lobby", "from": "Ada", "message": "hi from Ada"}
        assert await _said(ada) == (frame, first)
        await bob.send_json({"message": "hi from Bob"})
        frame = {"room": "lobby", "from": "Bob", "message": "hi from Bob"}
        assert await _said(ada) == (frame, first + 1)  # one numbering across both servers
        assert await _said(bob) == (frame, first + 1)

    async def left() -> bool:
        async with httpx.AsyncClient() as http:
            listing = await http.get(f"http://{uvicorn.host}:{uvicorn.port}/api/rooms")
        return bool(listing.json() == {})

    with anyio.fail_after(10):
        while not await left():  # noqa: ASYNC110 - the servers' actors leave in their own time
            await anyio.sleep(0.05)
