"""The chat example under a real server (uvicorn on asyncio, hypercorn on trio), real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import HandshakeRejected, WSClient, try_connect

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
def server(anyio_backend: str) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_LAYER": "memory"}
    with serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


async def join(server: RunningServer, room: str, name: str) -> WSClient:
    return await WSClient.connect(server.host, server.port, f"/ws/chat/{room}/?name={name}")


async def test_messages_reach_exactly_their_room_in_order(server: RunningServer) -> None:
    red = [await join(server, "red", f"r{i}") for i in range(3)]
    blue = [await join(server, "blue", f"b{i}") for i in range(2)]
    try:
        per_sender = 5
        for n in range(per_sender):  # interleave the senders; each one's messages stay in order
            for client in red + blue:
                await client.send_json({"message": f"m{n}"})
        # read everything each member got and check per-sender order and exact membership
        for members, names in ((red, [f"r{i}" for i in range(3)]), (blue, [f"b{i}" for i in range(2)])):
            for member in members:
                got = [await member.receive_json() for _ in range(per_sender * len(names))]
                assert {m["room"] for m in got} == {"red" if names[0].startswith("r") else "blue"}
                for name in names:
                    assert [m["message"] for m in got if m["from"] == name] == [f"m{n}" for n in range(per_sender)]
                await member.receive_nothing(0.2)
    finally:
        for client in red + blue:
            await client.close()


async def test_each_sender_order_is_preserved(server: RunningServer) -> None:
    a = await join(server, "order", "a")
    b = await join(server, "order", "b")
    try:
        for n in range(50):
            await a.send_json({"message": str(n)})
        got = [await b.receive_json() for _ in range(50)]
        assert [m["message"] for m in got] == [str(n) for n in range(50)]
    finally:
        await a.close()
        await b.close()


async def test_room_listing_counts_members(server: RunningServer) -> None:
    a = await join(server, "listed", "a")
    b = await join(server, "listed", "b")
    try:
        async with httpx.AsyncClient() as http:
            rooms = (await http.get(server.http_url("/api/rooms"))).json()
            assert rooms["listed"] == 2
            page = await http.get(server.http_url("/"))
            assert page.status_code == 200
            assert "interlock chat" in page.text
    finally:
        await a.close()
        await b.close()
    async with httpx.AsyncClient() as http:
        for _ in range(50):
            rooms = (await http.get(server.http_url("/api/rooms"))).json()
            if "listed" not in rooms:
                break
            await anyio.sleep(0.05)
        assert "listed" not in rooms


async def test_malformed_json_closes_only_that_connection(server: RunningServer) -> None:
    bad = await join(server, "bad-json", "bad")
    good = await join(server, "bad-json", "good")
    try:
        await bad.send_text("{not json")
        code, reason = await bad.wait_closed()
        assert code == 1007
        assert "malformed JSON" in reason
        await good.send_json({"message": "still here"})
        assert (await good.receive_json())["message"] == "still here"
    finally:
        await good.close()
        await bad.close()


async def test_message_without_text_gets_an_explanation(server: RunningServer) -> None:
    client = await join(server, "explain", "x")
    try:
        await client.send_json(["not", "an", "object"])
        assert "error" in await client.receive_json()
        await client.send_json({"message": "ok"})
        assert (await client.receive_json())["message"] == "ok"
    finally:
        await client.close()


@pytest.mark.parametrize("room", ["x" * 65, "semi;colon", "%C3%A9t%C3%A9"])
async def test_invalid_room_names_are_refused(server: RunningServer, room: str) -> None:
    handshake = await try_connect(server.host, server.port, f"/ws/chat/{room}/")
    assert not handshake.accepted
    assert handshake.status in (400, 403)  # 403 where the server lacks the denial extension
    client = await join(server, "after-refusal", "ok")
    await client.send_json({"message": "served"})
    assert (await client.receive_json())["message"] == "served"
    await client.close()


async def test_unknown_path_is_refused(server: RunningServer) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        await WSClient.connect(server.host, server.port, "/nowhere/")
    assert refused.value.status in (403, 404)


@pytest.fixture(scope="module")
def capped_server(anyio_backend: str) -> Iterator[RunningServer]:
    env = {"INTERLOCK_CHAT_LAYER": "memory", "INTERLOCK_CHAT_MAX_CONNECTIONS": "2"}
    with serve("chat:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env) as running:
        yield running


async def test_connections_past_max_connections_are_refused_until_one_leaves(capped_server: RunningServer) -> None:
    first = await join(capped_server, "cap", "a")
    second = await join(capped_server, "cap", "b")
    try:
        for _ in range(3):  # a burst of refusals: one WARNING line
            handshake = await try_connect(capped_server.host, capped_server.port, "/ws/chat/cap/?name=c")
            assert not handshake.accepted
            assert handshake.status in (503, 403)  # 403 where the server lacks the denial extension
        await first.close()
        with anyio.fail_after(5):
            while True:  # the server reports the close, then the slot is free
                handshake = await try_connect(capped_server.host, capped_server.port, "/ws/chat/cap/?name=d")
                if handshake.accepted:
                    break
                await anyio.sleep(0.05)
    finally:
        await second.close()
    logs = capped_server.logs()
    assert logs.count("ChatActor refuses new connections: max_connections (2)") == 1
    assert "Traceback" not in logs


async def test_a_room_feed_streams_the_rooms_messages_read_only(server: RunningServer) -> None:
    member = await join(server, "fed", "ada")
    try:
        async with (
            httpx.AsyncClient(timeout=5) as http,
            http.stream("GET", server.http_url("/api/rooms/fed/events")) as feed,
        ):
            assert feed.status_code == 200
            assert feed.headers["content-type"].startswith("text/event-stream")
            lines = feed.aiter_lines()
            assert [await anext(lines), await anext(lines)] == ["event: joined", 'data: {"room": "fed"}']
            assert (await http.get(server.http_url("/api/rooms"))).json()["fed"] == 2  # the member and the feed
            await member.send_json({"message": "hello, wall"})
            assert (await member.receive_json())["message"] == "hello, wall"
            got = [await anext(lines) for _ in range(3)]
            assert got == ["", "event: message", 'data: {"room": "fed", "from": "ada", "message": "hello, wall"}']
    finally:
        await member.close()
    assert "ERROR" not in server.logs()


async def test_a_feed_of_an_invalid_room_is_400(server: RunningServer) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(server.http_url("/api/rooms/semi;colon/events"))
    assert response.status_code == 400
    assert "room names are" in response.text


async def test_a_page_on_another_site_cannot_open_a_socket(server: RunningServer) -> None:
    own = f"http://{server.host}:{server.port}"
    path = "/ws/chat/origin/?name=ada"
    refused = await try_connect(server.host, server.port, path, headers=[("Origin", "http://evil.example")])
    assert not refused.accepted
    assert refused.status == 403
    accepted = await try_connect(server.host, server.port, path, headers=[("Origin", own)])
    assert accepted.accepted, "the page's own origin must be let in"
    null = await try_connect(server.host, server.port, path, headers=[("Origin", "null")])
    assert not null.accepted
