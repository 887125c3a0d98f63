"""End-to-end tests of the test-support WebSocket client and server runner.

Each backend gets a real server: uvicorn for asyncio, ``hypercorn -k trio`` for
trio, and the client runs on the same backend as the test.  A small in-process
wsproto server covers what an ASGI app cannot trigger: pings and explicitly
fragmented messages.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import anyio.abc
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from .servers import RunningServer, free_port, serve
from .wsclient import ConnectionClosed, HandshakeRejected, WSClient, try_connect

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["asyncio", "trio"], scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on both anyio backends."""
    backend: str = request.param
    return backend


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    """Run the echo app in uvicorn (asyncio) or hypercorn -k trio (trio)."""
    with serve("echo_app:app", backend=anyio_backend, app_dir=str(HERE)) as running:
        yield running


async def connect(
    server: RunningServer,
    path: str = "/",
    *,
    subprotocols: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> WSClient:
    """Connect a client to ``path`` on ``server``."""
    return await WSClient.connect(server.host, server.port, path, subprotocols=subprotocols, headers=headers)


async def test_server_kind_matches_backend(server: RunningServer, anyio_backend: str) -> None:
    assert server.kind == {"asyncio": "uvicorn", "trio": "hypercorn"}[anyio_backend]
    assert server.process.poll() is None
    assert server.host == "127.0.0.1"


async def test_text_and_bytes_echo(server: RunningServer) -> None:
    async with await connect(server) as ws:
        assert ws.handshake.accepted
        assert ws.handshake.status == 101
        await ws.send_text("hello")
        assert await ws.receive() == "hello"
        await ws.send_bytes(b"\x00\x01binary\xff")
        assert await ws.receive() == b"\x00\x01binary\xff"
        await ws.send_text("héllo ✓")
        assert await ws.receive_text() == "héllo ✓"
        await ws.send_bytes(b"")
        assert await ws.receive_bytes() == b""


async def test_json_roundtrip(server: RunningServer) -> None:
    payload = {
        "type": "chat",
        "n": 3,
        "tags": ["a", "b"],
        "nested": {"ok": True, "none": None},
    }
    async with await connect(server) as ws:
        await ws.send_json(payload)
        assert await ws.receive_json() == payload


async def test_receive_text_rejects_binary(server: RunningServer) -> None:
    async with await connect(server) as ws:
        await ws.send_bytes(b"raw")
        with pytest.raises(AssertionError, match="expected a text message"):
            await ws.receive_text()


async def test_large_messages(server: RunningServer) -> None:
    text = "".join(chr(0x41 + i % 26) for i in range(200 * 1024))
    blob = bytes(i % 251 for i in range(200 * 1024))
    async with await connect(server) as ws:
        await ws.send_text(text)
        await ws.send_bytes(blob)
        assert await ws.receive() == text
        assert await ws.receive() == blob


async def test_many_messages_keep_order(server: RunningServer) -> None:
    async with await connect(server) as ws:
        for i in range(200):
            await ws.send_text(f"m{i}")
        for i in range(200):
            assert await ws.receive_text() == f"m{i}"


async def test_receive_nothing(server: RunningServer) -> None:
    async with await connect(server) as ws:
        await ws.receive_nothing()
        await ws.send_text("ping?")
        with pytest.raises(AssertionError, match="ping\\?"):
            await ws.receive_nothing(timeout=2)
        await ws.receive_nothing()


async def test_receive_timeout_has_clear_message(server: RunningServer) -> None:
    async with await connect(server) as ws:
        with pytest.raises(TimeoutError, match=r"no WebSocket message received within 0\.2s"):
            await ws.receive(timeout=0.2)
        # The connection is still usable after a timeout.
        await ws.send_text("still here")
        assert await ws.receive_text() == "still here"


async def test_server_initiated_close(server: RunningServer) -> None:
    async with await connect(server) as ws:
        await ws.send_text("before")
        await ws.send_text("close")
        assert await ws.receive_text() == "before"
        with pytest.raises(ConnectionClosed) as info:
            await ws.receive()
        assert (info.value.code, info.value.reason) == (4000, "bye")
        assert ws.close_info == (4000, "bye")
        with pytest.raises(ConnectionClosed):
            await ws.send_text("too late")


async def test_wait_closed_returns_code_and_keeps_messages(
    server: RunningServer,
) -> None:
    async with await connect(server) as ws:
        await ws.send_text("kept")
        await ws.send_text("close")
        assert await ws.wait_closed() == (4000, "bye")
        assert await ws.receive_text() == "kept"
        with pytest.raises(ConnectionClosed):
            await ws.receive()


async def test_wait_closed_times_out(server: RunningServer) -> None:
    async with await connect(server) as ws:
        with pytest.raises(TimeoutError, match="did not close"):
            await ws.wait_closed(timeout=0.2)


async def test_client_close(server: RunningServer) -> None:
    ws = await connect(server)
    await ws.send_text("x")
    assert await ws.receive_text() == "x"
    with anyio.fail_after(3):
        await ws.close(1000, "done")
        await ws.close()  # idempotent
    with pytest.raises(ConnectionClosed):
        await ws.receive(timeout=1)


async def test_rejected_handshake(server: RunningServer) -> None:
    with pytest.raises(HandshakeRejected) as info:
        await connect(server, "/deny")
    assert info.value.status == 403
    handshake = await try_connect(server.host, server.port, "/deny")
    assert not handshake.accepted
    assert handshake.status == 403
    assert handshake.subprotocol is None


async def test_rejected_handshake_with_custom_response(server: RunningServer) -> None:
    handshake = await try_connect(server.host, server.port, "/teapot")
    assert not handshake.accepted
    assert handshake.status == 418
    assert handshake.body == b"short and stout"
    assert handshake.header("X-Echo") == "teapot"


async def test_try_connect_accepted(server: RunningServer) -> None:
    handshake = await try_connect(server.host, server.port, "/", subprotocols=["chat.v1"])
    assert handshake.accepted
    assert handshake.status == 101
    assert handshake.subprotocol == "chat.v1"


async def test_subprotocol_and_request_headers(server: RunningServer) -> None:
    async with await connect(
        server,
        "/headers",
        subprotocols=["chat.v2", "chat.v1"],
        headers=[("Origin", "http://example.test"), ("X-Token", "s3cret")],
    ) as ws:
        assert ws.handshake.subprotocol == "chat.v2"
        seen = await ws.receive_json()
        assert seen["origin"] == "http://example.test"
        assert seen["x-token"] == "s3cret"
        assert seen["sec-websocket-protocol"] == "chat.v2, chat.v1"


async def test_concurrent_clients(server: RunningServer) -> None:
    async def one(i: int) -> None:
        async with await connect(server) as ws:
            for j in range(10):
                await ws.send_json([i, j])
                assert await ws.receive_json() == [i, j]

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)


async def test_connect_refused_and_timeout() -> None:
    with pytest.raises(OSError, match=r"(?i)connect|refused"):
        await WSClient.connect("127.0.0.1", free_port(), "/")


async def test_server_logs_are_clean(server: RunningServer) -> None:
    # Runs last for each backend: nothing above may have made the server crash.
    assert server.process.poll() is None
    assert "Traceback" not in server.logs(), server.logs()


# ---------------------------------------------------------------------------
# An in-process wsproto server: pings and fragmented messages.


async def _raw_server(stream: anyio.abc.SocketStream, pongs: list[bytes], done: anyio.Event) -> None:
    """Accept, ping, send fragmented text + bytes, echo one message, close 1001."""
    ws = WSConnection(ConnectionType.SERVER)

    async def send(event: object) -> None:
        await stream.send(ws.send(event))  # type: ignore[arg-type]

    async def next_event() -> object:
        while True:
            for event in ws.events():
                return event
            ws.receive_data(await stream.receive())

    async with stream:
        request = await next_event()
        assert isinstance(request, Request)
        await send(AcceptConnection(subprotocol=request.subprotocols[0] if request.subprotocols else None))
        await send(Ping(payload=b"are you there"))
        await send(TextMessage(data="frag", message_finished=False))
        await send(TextMessage(data="mented ", message_finished=False))
        await send(TextMessage(data="tëxt", message_finished=True))
        await send(BytesMessage(data=b"\x01\x02", message_finished=False))
        await send(BytesMessage(data=b"\x03", message_finished=True))
        while True:
            event = await next_event()
            if isinstance(event, Pong):
                pongs.append(bytes(event.payload))
            elif isinstance(event, TextMessage):
                await send(TextMessage(data=event.data.upper()))
                break
        await send(CloseConnection(code=1001, reason="going away"))
        while ws.state is not ConnectionState.CLOSED:
            event = await next_event()
        done.set()


async def test_ping_and_fragmented_messages() -> None:
    pongs: list[bytes] = []
    done = anyio.Event()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:

        async def handler(stream: anyio.abc.SocketStream) -> None:
            await _raw_server(stream, pongs, done)

        tg.start_soon(listener.serve, handler)
        async with await WSClient.connect("127.0.0.1", port, "/raw", subprotocols=["p1"]) as ws:
            assert ws.handshake.subprotocol == "p1"
            assert await ws.receive() == "fragmented tëxt"
            assert await ws.receive() == b"\x01\x02\x03"
            await ws.send_text("shout")
            assert await ws.receive_text() == "SHOUT"
            assert await ws.wait_closed() == (1001, "going away")
        with anyio.fail_after(5):
            await done.wait()
        tg.cancel_scope.cancel()
    assert pongs == [b"are you there"]


# ---------------------------------------------------------------------------
# serve() failure handling (synchronous).


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_reports_startup_failure(backend: str) -> None:
    with (
        pytest.raises(RuntimeError, match="exited with code") as info,
        serve("no_such_module_xyz:app", backend=backend, app_dir=str(HERE)),
    ):
        pytest.fail("server should not have started")
    assert "no_such_module_xyz" in str(info.value)


def test_serve_rejects_unknown_backend() -> None:
    with (
        pytest.raises(ValueError, match="unknown backend"),
        serve("echo_app:app", backend="curio"),
    ):
        pass


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_serve_stops_server_and_keeps_logs() -> None:
    with serve(
        "echo_app:app",
        backend="asyncio",
        app_dir=str(HERE),
        extra_args=["--log-level", "info"],
    ) as srv:
        log_path = srv.log_path
        assert log_path.exists()
    assert srv.process.returncode is not None
    assert not log_path.exists()
    assert "Uvicorn running on" in srv.logs()  # still readable after the file is gone
