"""HTTP actors under real servers (uvicorn default options; hypercorn -k trio) and httpx clients."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from tests.support.servers import RunningServer, serve

HERE = Path(__file__).resolve().parent
pytestmark = [
    pytest.mark.e2e,
    # httpx's streams are chains of async generators; leaving a stream before its end (as an SSE
    # client does) lets trio's finalizer warn about the inner ones though the response is closed.
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <async_generator object (AsyncResponseStream|BoundAsyncStream|"
        r"HTTP11ConnectionByteStream|PoolByteStream|Response|AsyncHTTP11Connection)\.:"
        "pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve("e2e_app:app", backend=anyio_backend, app_dir=str(HERE)) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url(""), timeout=5) as client:
        yield client


def clean(logs: str) -> None:
    assert "ERROR" not in logs, logs
    assert "Traceback" not in logs, logs


class Events:
    """An event stream read line by line: each ``next()`` is an event's fields (or a comment)."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self, *, comments: bool = True) -> dict[str, str]:
        fields: dict[str, str] = {}
        while True:
            line = await anext(self.lines)
            if not line:
                if fields:
                    return fields
            elif line.startswith(":"):
                if comments:
                    return {"comment": line[1:].strip()}
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value


@contextlib.asynccontextmanager
async def open_events(
    http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[httpx.Response, Events]]:
    async with http.stream("GET", path, headers=headers) as response:
        yield response, Events(response.aiter_lines())


async def ended(http: httpx.AsyncClient, tag: str, count: int = 1) -> list[str]:
    """The causes of the ``disconnect()`` calls for *tag*, once there are *count* of them."""
    with anyio.fail_after(5):
        while True:
            causes: list[str] = (await http.get("/ended")).json().get(tag, [])
            if len(causes) >= count:
                return causes
            await anyio.sleep(0.02)


async def test_a_json_response_and_an_upload(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    response = await http.get("/json")
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert response.headers["content-type"] == "application/json"
    assert (await http.post("/upload", content=b"x" * 1000)).json() == {"size": 1000}
    clean(server.logs()[before:])


async def test_an_oversize_body_is_413_and_nothing_else_is_affected(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    before = len(server.logs())

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"y" * 512

    announced = await http.post("/upload", content=b"x" * 5000)
    assert announced.status_code == 413
    assert "over the limit of 1,024 bytes" in announced.text
    async with httpx.AsyncClient(base_url=server.http_url(""), timeout=5) as other:
        streamed = await other.post("/upload", content=chunks())  # chunked: no Content-Length
    assert streamed.status_code == 413
    assert (await http.post("/upload", content=b"ok")).json() == {"size": 2}
    logs = server.logs()[before:]
    clean(logs)


async def test_sse_headers_events_heartbeats_and_resumption(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    headers = {"Last-Event-ID": "41"}
    async with open_events(http, "/sse/news/sse1", headers) as (response, stream):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        hello = await stream.next()
        assert hello["event"] == "hello"
        assert json.loads(hello["data"]) == {"hello": "news", "last_event_id": "41"}
        assert await stream.next() == {"comment": "ping"}  # nothing sent for 0.2 s
        published = await http.post("/publish/news", json={"data": "line one\nline two", "id": 42})
        assert published.status_code == 202
        assert await stream.next(comments=False) == {"id": "42", "data": "line one\nline two"}
    assert await ended(http, "sse1") == ["client"]  # the client left mid-stream: disconnect() once
    clean(server.logs()[before:])


async def test_a_group_send_reaches_every_open_stream(server: RunningServer, http: httpx.AsyncClient) -> None:
    async with open_events(http, "/sse/many/m1") as (_, first), open_events(http, "/sse/many/m2") as (_, second):
        for stream in (first, second):
            assert (await stream.next())["event"] == "hello"
        await http.post("/publish/many", json={"data": "to all", "id": 1})
        for stream in (first, second):
            assert (await stream.next(comments=False))["data"] == "to all"


async def test_a_long_poll_answers_a_message_or_204(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    timed_out = await http.get("/poll/quiet/p0")
    assert timed_out.status_code == 204
    async with anyio.create_task_group() as tasks:
        answers: list[httpx.Response] = []

        async def poll() -> None:
            answers.append(await http.get("/poll/busy/p1"))

        tasks.start_soon(poll)
        with anyio.fail_after(5):
            while not (await http.get("/ended")).json().get("p1") and not answers:
                # publish until the poll, once waiting, takes it (the first may precede its group_add)
                await http.post("/publish/busy", json={"data": "news"})
                await anyio.sleep(0.05)
    assert answers[0].status_code == 200
    assert answers[0].json()["messages"][0] == "news"
    assert await ended(http, "p0") == ["actor"]
    clean(server.logs()[before:])


async def test_a_state_machine_long_poll_under_a_real_server(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    assert (await http.get("/statepoll/squiet/s0")).status_code == 204  # the state's timeout
    assert await ended(http, "s0-exit") == ["actor"]
    answers: list[httpx.Response] = []
    async with anyio.create_task_group() as tasks:

        async def poll() -> None:
            answers.append(await http.get("/statepoll/sbusy/s1"))

        tasks.start_soon(poll)
        with anyio.fail_after(5):
            while not answers:
                await http.post("/publish/sbusy", json={"data": "news"})
                await anyio.sleep(0.05)
    assert (answers[0].status_code, answers[0].json()) == (200, {"messages": ["news"]})
    async with httpx.AsyncClient(base_url=server.http_url(""), timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.get("/statepoll/sleft/s2")
    assert await ended(http, "s2-exit") == ["client"]  # exit hooks once, before the timeout
    assert await ended(http, "s2") == ["client"]
    clean(server.logs()[before:])


async def test_a_client_leaving_a_long_poll_is_noticed(server: RunningServer, http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=server.http_url(""), timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.get("/poll/left/gone1")
    assert await ended(http, "gone1") == ["client"]  # before the 1 s poll_timeout would answer


async def test_channels_sse_consumer_is_fed_by_group_send(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    async with open_events(http, "/compat/sse/compat/c1") as (_, stream):
        assert await stream.next() == {"data": "open"}
        await http.post("/publish/compat", json={"data": "after handle() returned"})
        assert await stream.next() == {"data": "after handle() returned"}
    assert await ended(http, "c1") == ["client"]
    clean(server.logs()[before:])


async def test_channels_long_poll_consumer_finishes_from_a_handler(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    before = len(server.logs())
    answers: list[httpx.Response] = []
    async with anyio.create_task_group() as tasks:

        async def poll() -> None:
            answers.append(await http.get("/compat/poll/cpoll/c2"))

        tasks.start_soon(poll)
        with anyio.fail_after(5):
            while not answers:
                await http.post("/publish/cpoll", json={"data": "done"})
                await anyio.sleep(0.05)
    body: dict[str, Any] = answers[0].json()
    assert (answers[0].status_code, body["type"], body["data"]) == (200, "sse.event", "done")
    assert await ended(http, "c2") == ["actor"]
    clean(server.logs()[before:])


async def test_a_handler_raising_before_the_headers_answers_500(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    response = await http.get("/fail/before/f1")
    assert (response.status_code, response.text) == (500, "Internal Server Error\n")
    assert await ended(http, "f1") == ["error"]
    logs = server.logs()[before:]
    assert "RuntimeError: handler broke before the headers" in logs
    assert logs.count("Traceback") == 1, logs  # ours; the server saw a complete response


async def test_a_handler_raising_after_the_headers_cuts_the_stream(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    before = len(server.logs())
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get("/fail/after/f2")
    assert await ended(http, "f2") == ["error"]
    logs = server.logs()[before:]
    assert "failed after the headers went out, the response is cut" in logs
    assert "RuntimeError: handler broke after the headers" in logs
    assert (await http.get("/json")).json() == {"ok": True}  # the server goes on serving


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until the chunked body's last chunk (or 10 s pass)."""
    sock.settimeout(10)
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        part = sock.recv(1 << 16)
        if not part:
            break
        data += part
    return data


async def test_a_slow_sse_reader_keeps_the_servers_memory_bounded(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """20 MiB of events for a reader that reads nothing: the server's RSS grows by a small bound."""
    before = len(server.logs())
    process = psutil.Process(server.process.pid)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        sock.sendall(b"GET /sse/slow/slow1 HTTP/1.1\r\nHost: test\r\n\r\n")
        with anyio.fail_after(5):
            while True:  # until the stream joined its group (the server is polled, no event exists)
                if (await http.get("/groups/slow")).json():
                    break
                await anyio.sleep(0.02)
        rss = process.memory_info().rss
        peak = rss
        for _ in range(20):  # 20 x 1,000 events of 1 KiB, to a reader that reads nothing
            assert (await http.post("/flood/slow?n=1000&size=1024")).status_code == 202
            peak = max(peak, process.memory_info().rss)
        data = await anyio.to_thread.run_sync(_read_to_end, sock)
    growth = (peak - rss) / (1 << 20)
    assert growth < 8, f"the server's RSS grew by {growth:.1f} MiB"
    received = data.count(b"\ndata: x")
    assert 0 < received < 20_000  # what fitted in the buffers, then the stream ended
    assert data.endswith(b"\r\n0\r\n\r\n")  # ended cleanly (channel_overflowed): the client resumes
    assert await ended(http, "slow1") == ["actor"]
    logs = server.logs()[before:]
    clean(logs)
    assert "the reader is too slow and lost" in logs
