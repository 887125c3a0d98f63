"""The chat example on the SQLite layer, served by several processes sharing one file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = [
    pytest.mark.e2e,
    # httpx's streams are chains of async generators; leaving an event stream before its end
    # lets trio's finalizer warn about the inner ones though the response is closed.
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <async_generator object (AsyncResponseStream|BoundAsyncStream|"
        r"HTTP11ConnectionByteStream|PoolByteStream|Response|AsyncHTTP11Connection)\.:"
        "pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture(scope="module")
def servers(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    """Two server processes on two ports, one layer file."""
    db = tmp_path_factory.mktemp("chat") / "chat.sqlite3"
    env = {"INTERLOCK_CHAT_LAYER": "sqlite", "INTERLOCK_CHAT_DB": str(db)}
    with (
        serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as one,
        serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as two,
    ):
        yield [one, two]
        for server in (one, two):
            assert "Traceback" not in server.logs()


async def join(server: RunningServer, room: str, name: str) -> WSClient:
    return await WSClient.connect(server.host, server.port, f"/ws/chat/{room}/?name={name}")


async def test_members_on_both_processes_get_every_message_once_in_order(servers: list[RunningServer]) -> None:
    one, two = servers
    members = [await join(one, "red", "a1"), await join(two, "red", "b1"), await join(one, "red", "a2")]
    outsider = await join(two, "blue", "b2")
    try:
        per_sender = 20
        for n in range(per_sender):
            for client in members:
                await client.send_json({"message": f"m{n}"})
        names = ["a1", "b1", "a2"]
        for member in members:
            got: list[dict[str, Any]] = [await member.receive_json() for _ in range(per_sender * len(names))]
            for name in names:
                assert [m["message"] for m in got if m["from"] == name] == [f"m{n}" for n in range(per_sender)]
            await member.receive_nothing(0.3)  # exactly once: nothing more arrives
        await outsider.receive_nothing(0.3)
    finally:
        for client in [*members, outsider]:
            await client.close()


async def test_either_process_lists_the_whole_room(servers: list[RunningServer]) -> None:
    one, two = servers
    clients = [await join(one, "listed", "x"), await join(two, "listed", "y")]
    try:
        async with httpx.AsyncClient() as http:
            for server in servers:
                rooms = (await http.get(server.http_url("/api/rooms"))).json()
                assert rooms["listed"] == 2
    finally:
        for client in clients:
            await client.close()


async def test_a_feed_on_one_process_streams_a_member_on_the_other(servers: list[RunningServer]) -> None:
    one, two = servers
    member = await join(one, "across", "ada")
    try:
        async with (
            httpx.AsyncClient(timeout=5) as http,
            http.stream("GET", two.http_url("/api/rooms/across/events")) as feed,
        ):
            lines = feed.aiter_lines()
            assert [await anext(lines), await anext(lines)] == ["event: joined", 'data: {"room": "across"}']
            await member.send_json({"message": "over the SQLite layer"})
            got = [await anext(lines) for _ in range(3)]
            assert got == [
                "",
                "event: message",
                'data: {"room": "across", "from": "ada", "message": "over the SQLite layer"}',
            ]
    finally:
        await member.close()


@pytest.fixture(scope="module")
def workers(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server with two worker processes on one port (uvicorn or hypercorn --workers 2)."""
    db = tmp_path_factory.mktemp("chat-workers") / "chat.sqlite3"
    env = {"INTERLOCK_CHAT_LAYER": "sqlite", "INTERLOCK_CHAT_DB": str(db)}
    with serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env, workers=2) as server:
        yield server


async def test_a_room_spread_over_worker_processes(workers: RunningServer) -> None:
    clients = [await join(workers, "spread", f"c{i}") for i in range(8)]  # the kernel spreads them
    try:
        for i, client in enumerate(clients):
            await client.send_json({"message": f"hello from c{i}"})
        for client in clients:
            got = {(await client.receive_json())["message"] for _ in clients}
            assert got == {f"hello from c{i}" for i in range(len(clients))}
            await client.receive_nothing(0.2)
    finally:
        for client in clients:
            await client.close()
