"""The chat example against an attacker's tricks, under real servers, with memory watched.

Deflate makes large messages cheap to send: a megabyte of one repeated letter is a few
kilobytes on the wire. Each case checks what the attacker gets (close codes), that the
server's memory grew by a bounded amount (RSS before and after, sampled meanwhile), that
the log holds no ERROR or traceback, and that a bystander in another room chats on.

The attacker uses the ``websockets`` library (permessage-deflate) from a worker thread,
so the tests run on both backends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.hostile import rss, stuck_socket, wait_for
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.e2e

MiB = 2**20


@pytest.fixture(scope="module")
def chat(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_DB": str(tmp_path_factory.mktemp("hostile") / "chat.sqlite3")}
    with serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


async def members(server: RunningServer, room: str) -> int:
    async with httpx.AsyncClient() as http:
        count: int = (await http.get(server.http_url("/api/rooms"))).json().get(room, 0)
    return count


class Bystander:
    """A member of a room of its own who checks, now and then, that the chat still works."""

    def __init__(self, client: WSClient) -> None:
        self.client = client
        self.rounds = 0

    async def chat_once(self) -> None:
        self.rounds += 1
        text = f"still here {self.rounds}"
        await self.client.send_json({"message": text})
        assert (await self.client.receive_json(timeout=10))["message"] == text


def around(logs: str, needle: str) -> str:
    """The server's log lines around the first *needle*: what an assertion about it shows."""
    at = logs.find(needle)
    return logs[max(at - 1500, 0) : at + 3000]


def send_deflated(url: str, texts: list[str]) -> tuple[int, str] | None:
    """Send *texts* compressed; return the close code and reason if the server closed."""
    try:
        with connect(url, compression="deflate", max_size=None, open_timeout=10, close_timeout=2) as ws:
            for text in texts:
                ws.send(json.dumps({"message": text}))
            ws.recv(timeout=10)  # the server's answer: a message of ours, or its close
    except ConnectionClosed as closed:
        received = closed.rcvd
        return None if received is None else (received.code, received.reason)
    except TimeoutError:
        return None
    return None


async def test_oversize_deflated_messages_close_with_1009_and_cost_little(chat: RunningServer) -> None:
    log_start = len(chat.logs())
    async with await WSClient.connect(chat.host, chat.port, f"/ws/chat/calm-{uuid.uuid4().hex[:6]}/") as calm:
        bystander = Bystander(calm)
        await bystander.chat_once()
        url = chat.ws_url(f"/ws/chat/bomb-{uuid.uuid4().hex[:6]}/?name=bomb")

        async def bomb() -> None:  # 15 MiB once inflated, some 15 KB on the wire
            closed = await anyio.to_thread.run_sync(send_deflated, url, ["a" * (15 * MiB)])
            assert closed is not None, "the server kept a connection that sent 15 MiB"
            assert closed[0] == 1009, closed
            await bystander.chat_once()

        for _ in range(2):  # the server inflates each message whole (its own 16 MiB limit): warm up
            await bomb()
        before = rss(chat)
        for _ in range(12):
            await bomb()
        grown = rss(chat) - before
    # The server inflates each message whole before the actor can refuse it (its own limit,
    # 16 MiB, comes first: lower --ws-max-size to refuse earlier), so what is measured is the
    # allocator's high-water mark after those buffers: 45-170 MiB over 12 to 36 such messages,
    # never growing with their number; 12 x 15 MiB inflated is 180 MiB, x 10 members was the
    # original attack's 406-438 MiB.
    assert grown < 256 * MiB, f"twelve more 15 MiB messages grew the server by {grown / MiB:.0f} MiB"
    logs = chat.logs()[log_start:]
    assert "max_message_size" in logs, logs[-2000:]
    assert "ERROR" not in logs, logs[-3000:]
    assert "Traceback" not in logs, around(logs, "Traceback")


async def test_deflated_messages_into_a_room_that_stopped_reading_cost_bounded_memory(chat: RunningServer) -> None:
    """The amplification attack: ~100 KB on the wire, 10 members that never read."""
    room = f"amp-{uuid.uuid4().hex[:6]}"
    log_start = len(chat.logs())
    stuck = [await anyio.to_thread.run_sync(stuck_socket, chat, f"/ws/chat/{room}/?name=s{n}") for n in range(10)]
    try:
        async with await WSClient.connect(chat.host, chat.port, f"/ws/chat/calm-{uuid.uuid4().hex[:6]}/") as calm:
            bystander = Bystander(calm)

            async def all_in() -> bool:
                return await members(chat, room) == 10

            await wait_for(all_in, "the ten members joined")
            before = rss(chat)
            peak = before

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, rss(chat))
                    await anyio.sleep(0.05)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(sample)
                url = chat.ws_url(f"/ws/chat/{room}/?name=evil")
                await anyio.to_thread.run_sync(send_deflated, url, ["a" * 900_000] * 60)
                await bystander.chat_once()

                async def given_up() -> bool:
                    return await members(chat, room) == 0

                await wait_for(given_up, "the members that never read were given up")
                await bystander.chat_once()
                tasks.cancel_scope.cancel()
            grown, worst = rss(chat) - before, peak - before
    finally:
        for sock in stuck:
            sock.close()
    # 60 messages of 900 KB to 10 members would be 540 MB queued; the byte bound of each
    # channel (8 MiB) and the give-up keep it to the socket buffers and a few messages.
    assert worst < 160 * MiB, f"the server's memory peaked {worst / MiB:.0f} MiB above where it was"
    assert grown < 128 * MiB, f"the server grew by {grown / MiB:.0f} MiB"
    logs = chat.logs()[log_start:]
    assert "stopped reading" in logs, logs[-2000:]
    assert "ERROR" not in logs, logs[-3000:]
    assert "Traceback" not in logs, around(logs, "Traceback")


@pytest.fixture(scope="module")
def statechat(anyio_backend: str) -> Iterator[RunningServer]:
    env = {"STATECHAT_TOKEN": "sesame", "STATECHAT_AUTH_TIMEOUT": "30"}
    with serve("statechat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


async def test_deflated_events_deferred_before_login_are_bounded(statechat: RunningServer) -> None:
    """400 deferred frames of 900 KB (a few KB on the wire) before logging in."""
    log_start = len(statechat.logs())
    async with await WSClient.connect(statechat.host, statechat.port, "/ws/") as calm:
        await calm.send_json({"type": "login", "name": "calm", "token": "sesame"})
        assert (await calm.receive_json())["type"] == "welcome"
        before = rss(statechat)
        texts = [json.dumps({"type": "chat.message", "text": "a" * 900_000})] * 400

        def flood() -> tuple[int, str] | None:
            try:
                with connect(statechat.ws_url("/ws/"), compression="deflate", max_size=None, open_timeout=10) as ws:
                    for text in texts:
                        ws.send(text)
                    ws.recv(timeout=10)
            except ConnectionClosed as closed:
                return None if closed.rcvd is None else (closed.rcvd.code, closed.rcvd.reason)
            return None

        closed = await anyio.to_thread.run_sync(flood)
        assert closed is not None, "the flood of deferred events was kept"
        assert closed[0] == 1008, closed
        assert closed[1].startswith("too many deferred events"), closed
        grown = rss(statechat) - before
        await calm.send_json({"type": "join", "room": "calm"})  # the logged-in client chats on
        for _ in range(5):
            if (await calm.receive_json())["type"] == "joined":
                break
        else:
            pytest.fail("the logged-in client was not answered")
    assert grown < 32 * MiB, f"the server grew by {grown / MiB:.0f} MiB"
    logs = statechat.logs()[log_start:]
    assert "ERROR" not in logs, logs[-3000:]
    assert "Traceback" not in logs, around(logs, "Traceback")
