"""The chat over plain TCP and its bot, as real processes on one SQLite layer file.

``python examples/chat.py`` (uvicorn and the TCP port, one process), ``interlock worker
chatbot:app chatbot.lobby ...`` (the bot, another process): WebSocket and TCP members share
rooms, and the bot answers ``/who`` with both, through ``group_members`` across processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.protocols.test_tcp import Client
from tests.support.servers import free_port
from tests.support.wsclient import WSClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.e2e


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start(
    command: list[str], env: dict[str, str], log: Path, ports: list[int] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=EXAMPLES, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while ports and not all(_listening(p) for p in ports):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{command} did not start: {log.read_text()}")
        time.sleep(0.05)
    return process


def _stop(process: subprocess.Popen[bytes], log: Path) -> str:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        pytest.fail(f"{process.args!r} did not stop on SIGINT: {log.read_text()}")
    return log.read_text()


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("chat")
    env = {**os.environ, "INTERLOCK_CHAT_DB": str(directory / "chat.sqlite3"), "INTERLOCK_CHAT_LAYER": "sqlite"}
    http, tcp = free_port(), free_port()
    python = sys.executable
    server_log, bot_log = directory / "chat.log", directory / "bot.log"
    server = _start([python, "chat.py", "--port", str(http), "--tcp-port", str(tcp)], env, server_log, [http, tcp])
    interlock = str(Path(python).with_name("interlock"))
    worker = [interlock, "worker", "chatbot:app", "chatbot.lobby", "chatbot.red", "--layer", "chatbot:layer"]
    bot = _start(worker, env, bot_log)
    time.sleep(1.0)  # the bot joins its rooms once its worker runs
    try:
        yield {"http": http, "tcp": tcp}
    finally:
        for process, log in ((bot, bot_log), (server, server_log)):
            text = _stop(process, log)
            assert "Traceback" not in text, text


async def tcp_member(port: int, name: str, room: str = "lobby") -> tuple[Client, anyio.abc.SocketStream]:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    member = Client(stream)
    assert (await member.line()).startswith("welcome to interlock chat")
    assert (await member.line()).endswith("in lobby")
    await member.send(f"/name {name}\n".encode())
    assert await member.line() == f"* you are {name}"
    if room != "lobby":
        await member.send(f"/join {room}\n".encode())
        assert await member.line() == f"* you are {name} in {room}"
    return member, stream


async def test_tcp_and_websocket_members_share_a_room(chat: dict[str, Any]) -> None:
    member, stream = await tcp_member(chat["tcp"], "Turing", "shared")
    ws = await WSClient.connect("127.0.0.1", chat["http"], "/ws/chat/shared/?name=Ada")
    try:
        await ws.send_json({"message": "hello from the browser"})
        assert await member.line() == "[shared] Ada: hello from the browser"
        assert (await ws.receive_json())["message"] == "hello from the browser"
        await member.send("hi, from nc ✓\r\n".encode())
        got = await ws.receive_json()
        assert got.pop("offset") >= 1  # the room's history numbers its messages
        assert got == {"room": "shared", "from": "Turing", "message": "hi, from nc ✓"}
        assert await member.line() == "[shared] Turing: hi, from nc ✓"
        await member.send(b"/rooms\n")
        assert "shared (2)" in await member.line()
    finally:
        await ws.close()
        await stream.aclose()


async def test_a_bad_tcp_client_is_closed_and_the_room_goes_on(chat: dict[str, Any]) -> None:
    good, good_stream = await tcp_member(chat["tcp"], "good", "calm")
    bad, bad_stream = await tcp_member(chat["tcp"], "bad", "calm")
    try:
        await bad.send(b"\xc3\x28 not utf-8\n")
        assert (await bad.line()).startswith("error: a line that is not UTF-8")
        assert await bad.closed()
        await good.send(b"still fine\n")
        assert await good.line() == "[calm] good: still fine"
    finally:
        await good_stream.aclose()
        await bad_stream.aclose()


async def test_the_bot_answers_who_roll_and_help_across_processes(chat: dict[str, Any]) -> None:
    member, stream = await tcp_member(chat["tcp"], "Turing")
    ws = await WSClient.connect("127.0.0.1", chat["http"], "/ws/chat/lobby/?name=Ada")
    try:
        await ws.send_json({"message": "/who"})
        assert (await ws.receive_json())["message"] == "/who"
        answer = await ws.receive_json(timeout=5)
        assert answer["from"] == "bot"
        assert answer["message"] == "in lobby: Ada, Turing"
        await ws.send_json({"message": "/roll 2d6"})
        await ws.receive_json()
        rolled = (await ws.receive_json())["message"]
        assert rolled.startswith("2d6: ")
        assert 2 <= int(rolled.rsplit("= ", 1)[1]) <= 12
        seen = [await member.line() for _ in range(4)]  # what Ada and the bot said, in order
        assert seen == [
            "[lobby] Ada: /who",
            "[lobby] bot: in lobby: Ada, Turing",
            "[lobby] Ada: /roll 2d6",
            f"[lobby] bot: {rolled}",
        ]
        await member.send(b"/roll lots\n")
        assert await member.line() == "[lobby] Turing: /roll lots"
        assert await member.line() == "[lobby] bot: usage: /roll NdM, e.g. /roll 2d6"
        await member.send(b"/help\n")  # the TCP port's own help, for this member only
        assert (await member.line()).startswith("* commands: /join ROOM")
        await ws.send_json({"message": "/help"})
        assert [m["message"] for m in [await ws.receive_json() for _ in range(4)]][-1].startswith("I answer /who")
    finally:
        await ws.close()
        await stream.aclose()
