"""Clients that stop reading, under real servers (uvicorn on asyncio, hypercorn on trio).

A member of a chat room that stops reading its socket (a tiny receive buffer, never
read) must not hold the room up or lose it messages silently: once its channel
overflows while one send to it waits, it is given up (teardown, channel closed, a
close 4008 tried last). The other members keep chatting and receive everything, the
server's memory stays bounded, and the log says what happened without an ERROR.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.support.hostile import masked_text_frame, rss, stuck_socket, wait_for
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples"
pytestmark = pytest.mark.e2e

FLOOD = 2_000  # messages into the room
TEXT = "x" * 8_000  # 16 MB in all: far more than the socket buffers between server and a stuck client
RSS_BOUND = 96 * 2**20  # the server's growth over the flood, stuck member included


@pytest.fixture(scope="module")
def chat(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_DB": str(tmp_path_factory.mktemp("slow") / "chat.sqlite3")}  # the default SQLite layer
    with serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def probes(anyio_backend: str) -> Iterator[RunningServer]:
    with serve("e2e_app:app", backend=anyio_backend, app_dir=str(HERE)) as running:
        yield running


async def room_members(server: RunningServer, room: str) -> int:
    async with httpx.AsyncClient() as http:
        rooms = (await http.get(server.http_url("/api/rooms"))).json()
    members: int = rooms.get(room, 0)
    return members


async def test_a_member_that_stops_reading_is_given_up_and_the_room_chats_on(chat: RunningServer) -> None:
    room = f"slow-{uuid.uuid4().hex[:8]}"
    log_start = len(chat.logs())
    stuck = await anyio.to_thread.run_sync(stuck_socket, chat, f"/ws/chat/{room}/?name=stuck")
    try:
        async with (
            await WSClient.connect(chat.host, chat.port, f"/ws/chat/{room}/?name=reader") as reader,
            await WSClient.connect(chat.host, chat.port, f"/ws/chat/{room}/?name=flood") as flood,
        ):

            async def three() -> bool:
                return await room_members(chat, room) == 3

            await wait_for(three, "all three members in the room")
            before = rss(chat)
            received: list[str] = []
            echoed: list[str] = []

            async def read_all(client: WSClient, into: list[str]) -> None:
                while len(into) < FLOOD:
                    into.append((await client.receive_json(timeout=20))["message"])

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_all, reader, received)
                tasks.start_soon(read_all, flood, echoed)  # the sender reads its room too
                for n in range(FLOOD):
                    await flood.send_json({"message": f"{n} {TEXT}"})
                    if n % 100 == 0:
                        await anyio.sleep(0.01)  # paced like a busy room, not one burst
            for got in (received, echoed):
                assert [int(text.split(" ", 1)[0]) for text in got] == list(range(FLOOD)), "a reader lost some"

            async def two() -> bool:
                return await room_members(chat, room) == 2

            await wait_for(two, "the member that stopped reading left the room")
            grown = rss(chat) - before
            assert grown < RSS_BOUND, f"the server grew by {grown / 2**20:.0f} MiB"
            await flood.send_json({"message": "still here?"})  # the room chats on
            assert (await reader.receive_json())["message"] == "still here?"
            assert (await flood.receive_json())["message"] == "still here?"
    finally:
        stuck.close()
    logs = chat.logs()[log_start:]
    assert "stopped reading" in logs, logs[-3000:]
    assert "ERROR" not in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]


async def test_send_timeout_gives_up_a_client_that_stops_reading(probes: RunningServer, anyio_backend: str) -> None:
    if anyio_backend == "trio":
        pytest.skip("hypercorn shields its socket writes from cancellation: no deadline can cut a send short there")

    async def members() -> int:
        async with httpx.AsyncClient() as http:
            count: int = (await http.get(probes.http_url("/groups/stream"))).json()["members"]
        return count

    log_start = len(probes.logs())
    stuck = await anyio.to_thread.run_sync(stuck_socket, probes, f"/ws/stream/{uuid.uuid4().hex[:12]}/")
    try:

        async def joined() -> bool:
            return await members() == 1

        await wait_for(joined, "the streaming actor joined its group")
        stuck.sendall(masked_text_frame("400"))  # 25 MiB the client will never read

        async def left() -> bool:
            return await members() == 0

        await wait_for(left, "the actor whose send timed out left its group", timeout=10)
    finally:
        stuck.close()
    logs = probes.logs()[log_start:]
    assert "send_timeout (1 s)" in logs, logs[-3000:]
    assert "ERROR" not in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
