"""Channels' SSE and long-poll consumers, imports changed, under daphne, the server Channels users run.

daphne serves asyncio only, so this module runs on asyncio alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.http.test_http_e2e import clean, ended, open_events
from tests.support.servers import RunningServer, serve

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # daphne runs on asyncio (Twisted's asyncio reactor) only


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve("e2e_app:app", backend="daphne", app_dir=str(HERE)) as running:
        yield running


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url(""), timeout=5) as client:
        yield client


async def test_channels_sse_consumer_under_daphne(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    async with open_events(http, "/compat/sse/daphne/d1") as (_, stream):
        assert await stream.next() == {"data": "open"}
        await http.post("/publish/daphne", json={"data": "after handle() returned"})
        assert await stream.next() == {"data": "after handle() returned"}
    assert await ended(http, "d1") == ["client"]  # the client left mid-stream: disconnect() once
    clean(server.logs()[before:])


async def test_channels_long_poll_consumer_under_daphne(server: RunningServer, http: httpx.AsyncClient) -> None:
    before = len(server.logs())
    answers: list[httpx.Response] = []
    async with anyio.create_task_group() as tasks:

        async def poll() -> None:
            answers.append(await http.get("/compat/poll/dpoll/d2"))

        tasks.start_soon(poll)
        with anyio.fail_after(5):
            while not answers:
                await http.post("/publish/dpoll", json={"data": "done"})
                await anyio.sleep(0.05)
    assert answers[0].json()["data"] == "done"
    assert await ended(http, "d2") == ["actor"]
    clean(server.logs()[before:])


async def test_sse_and_failures_under_daphne(server: RunningServer, http: httpx.AsyncClient) -> None:
    async with open_events(http, "/sse/dnews/d3", {"Last-Event-ID": "7"}) as (response, stream):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert (await stream.next())["event"] == "hello"
        assert await stream.next() == {"comment": "ping"}
    assert await ended(http, "d3") == ["client"]
    response = await http.get("/fail/before/d4")
    assert response.status_code == 500
    assert (await http.post("/upload", content=b"x" * 5000)).status_code == 413
    assert (await http.get("/json")).json() == {"ok": True}
