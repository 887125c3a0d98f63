"""``examples/django_chat`` end to end: Django's login view, the session cookie on the WebSocket, the worker.

Served by uvicorn and by daphne (asyncio: Django's HTTP handler runs on asyncio only), and
by ``hypercorn -k trio`` for the WebSocket side (the session is made by ``manage.py
shell`` there, since Django cannot serve the login page on trio). The archive worker runs
as ``manage.py runworker chat-archive``, on the SQLite layer the servers use.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.django.example_project import APP, PROJECT, log_in, prepare, project_env, session_of
from tests.integration.checks import assert_clean_log
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import HandshakeRejected, WSClient

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("django-chat")
    prepare(project_env(folder), "alice", "bob")
    return folder


@pytest.fixture(scope="module")
def worker(data: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "chat-archive"],
        cwd=PROJECT,
        env=project_env(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output  # SIGTERM is a clean stop
    assert "Traceback" not in output, output


@pytest.fixture(scope="module", params=["asyncio", "daphne", "trio"], ids=["uvicorn", "daphne", "hypercorn-trio"])
def server(request: pytest.FixtureRequest, data: Path, worker: subprocess.Popen[str]) -> Iterator[RunningServer]:
    with serve(APP, backend=request.param, app_dir=str(PROJECT), env=project_env(data)) as running:
        yield running


@pytest.fixture
def client_backend(server: RunningServer, anyio_backend: str) -> None:
    """One client backend per server: the server's own (the client is not what is under test)."""
    wanted = "trio" if server.backend == "trio" else "asyncio"
    if anyio_backend != wanted:
        pytest.skip(f"{server.kind} is driven from {wanted} only")


async def session_for(server: RunningServer, data: Path, username: str) -> str:
    if server.backend == "trio":  # Django's views do not run on trio
        return await anyio.to_thread.run_sync(session_of, project_env(data), username)
    return await log_in(server.http_url(), username)


async def connect(server: RunningServer, room: str, key: str | None, origin: str | None = None) -> WSClient:
    headers = [("Origin", origin or server.http_url().rstrip("/"))]
    if key is not None:
        headers.append(("Cookie", f"sessionid={key}"))
    return await WSClient.connect(server.host, server.port, f"/ws/chat/{room}/", headers=headers)


@pytest.mark.usefixtures("client_backend")
async def test_logged_in_users_chat_and_the_worker_archives(server: RunningServer, data: Path) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    alice_key = await session_for(server, data, "alice")
    bob_key = await session_for(server, data, "bob")
    async with await connect(server, room, alice_key) as alice, await connect(server, room, bob_key) as bob:
        await alice.send_json({"message": "hello bob"})
        assert await bob.receive_json() == {"message": "hello bob", "user": "alice"}
        assert await alice.receive_json() == {"message": "hello bob", "user": "alice"}
        await bob.send_json({"message": "hi alice"})
        assert await alice.receive_json() == {"message": "hi alice", "user": "bob"}
        await alice.send_json({"message": ""})  # a client's mistake: closed with 4400, no traceback
        assert (await alice.wait_closed())[0] == 4400
    if server.backend != "trio":  # the room's page shows what the worker saved, through the ORM
        async with httpx.AsyncClient(base_url=server.http_url(), cookies={"sessionid": bob_key}) as http:
            deadline = time.monotonic() + 10
            while True:
                page = (await http.get(f"/chat/{room}/")).text
                if "bob: hi alice" in page or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.1)
        assert re.search(r"alice: hello bob\s+bob: hi alice", page), page
    assert_clean_log(server)


@pytest.mark.usefixtures("client_backend")
@pytest.mark.parametrize(
    "key", [None, "forged0123456789forged0123456789", "x", "é-not-ascii"], ids=["none", "forged", "short", "latin1"]
)
async def test_without_a_valid_session_the_socket_is_refused(server: RunningServer, key: str | None) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        await connect(server, "lobby", key)
    assert refused.value.status == 403
    assert_clean_log(server)


@pytest.mark.usefixtures("client_backend")
async def test_a_page_on_another_site_cannot_open_a_socket_with_the_users_cookie(
    server: RunningServer, data: Path
) -> None:
    key = await session_for(server, data, "alice")
    with pytest.raises(HandshakeRejected) as refused:
        await connect(server, "lobby", key, origin="http://evil.example")
    assert refused.value.status == 403
    async with await connect(server, "lobby", key, origin=server.http_url().rstrip("/")) as ok:  # its own page
        await ok.send_json({"message": "still here"})
        assert await ok.receive_json() == {"message": "still here", "user": "alice"}


async def test_a_missing_session_table_refuses_with_a_server_error(
    tmp_path: Path, anyio_backend: str, data: Path
) -> None:
    """A project that was never migrated: the handshake fails as the server's fault, 1011, one clear line."""
    if anyio_backend != "asyncio":
        pytest.skip("one backend is enough: the middleware's refusal is tested on both in test_auth.py")
    key = await anyio.to_thread.run_sync(session_of, project_env(data), "alice")  # valid elsewhere
    with serve(APP, backend="asyncio", app_dir=str(PROJECT), env=project_env(tmp_path)) as running:
        for _ in range(2):  # the server goes on refusing that way, connection by connection
            async with await connect(running, "lobby", key) as client:
                assert await client.wait_closed() == (1011, "server error: the database is unavailable")
        async with httpx.AsyncClient() as http:  # and serves what needs no session table
            assert (await http.get(running.http_url("/accounts/login/"))).status_code == 200
    logs = running.logs()
    assert "no such table: django_session" in logs, logs
    assert "run `manage.py migrate`" in logs
    assert "Traceback" not in logs, logs


@pytest.mark.usefixtures("client_backend")
async def test_an_overlong_room_name_is_the_clients_mistake(server: RunningServer, data: Path) -> None:
    """A room name longer than the model's field: refused (400 where the server can say so), no ERROR logged."""
    key = await session_for(server, data, "alice")
    room = "r" * 51
    with pytest.raises(HandshakeRejected) as refused:
        await connect(server, room, key)
    assert refused.value.status in (400, 403)  # uvicorn's default protocol answers any denial 403
    if server.backend != "trio":
        async with httpx.AsyncClient(base_url=server.http_url(), cookies={"sessionid": key}) as http:
            assert (await http.get(f"/chat/{room}/")).status_code == 404
    assert_clean_log(server)
