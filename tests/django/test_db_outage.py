"""A database outage, end to end: the Django chat on uvicorn against a PostgreSQL that this test starts and stops.

The cluster is this test's own (``initdb`` + ``pg_ctl`` from the machine's PostgreSQL 15,
run as ``postgres`` when the tests run as root, on a free loopback port, removed after).
While it is down, each new WebSocket is closed with 1011 and one ERROR line naming the
database, an HTTP request that needs the session gets 500, and the sockets already open
chat on (the layer is SQLite); once it is back, new connections work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.django.example_project import APP, PROJECT, prepare, project_env, session_of
from tests.support.servers import RunningServer, free_port, serve
from tests.support.wsclient import WSClient

pytestmark = pytest.mark.e2e

BIN = Path("/usr/lib/postgresql/15/bin")


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:*port*, trust auth, a database ``test``."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="interlock-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def run(self, *args: str) -> None:
        done = subprocess.run([*self.as_owner, *args], check=False, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self.run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} -c fsync=off"
        log = str(self.folder / "log")
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-o", options, "start")

    def stop(self) -> None:
        self.run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (BIN / "pg_ctl").exists():
        pytest.skip(f"no PostgreSQL 15 in {BIN}")
    pg = Cluster()
    try:
        pg.init()
        pg.start()
        with psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE test")
        yield pg
    finally:
        if pg.running():
            pg.stop()
        shutil.rmtree(pg.folder, ignore_errors=True)


async def connect(server: RunningServer, room: str, key: str) -> WSClient:
    headers = [("Origin", server.http_url().rstrip("/")), ("Cookie", f"sessionid={key}")]
    return await WSClient.connect(server.host, server.port, f"/ws/chat/{room}/", headers=headers)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # uvicorn's; the refusal itself runs on trio in test_auth
async def test_an_outage_fails_new_connections_only_and_they_work_again_once_it_is_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = project_env(tmp_path, DJANGO_CHAT_PG_SCHEMA="public", DJANGO_CHAT_PG_PORT=str(cluster.port))
    prepare(env, "alice", "bob")
    alice_key, bob_key = session_of(env, "alice"), session_of(env, "bob")
    room = f"room-{uuid.uuid4().hex[:8]}"
    with serve(APP, backend="asyncio", app_dir=str(PROJECT), env=env) as server:
        async with await connect(server, room, alice_key) as alice, await connect(server, room, bob_key) as bob:
            await alice.send_json({"message": "before"})
            assert await bob.receive_json() == {"message": "before", "user": "alice"}
            assert await alice.receive_json() == {"message": "before", "user": "alice"}

            cluster.stop()
            for _ in range(3):  # each new connection fails alone, as the server's fault
                async with await connect(server, room, bob_key) as refused:
                    assert await refused.wait_closed() == (1011, "server error: the database is unavailable")
            async with httpx.AsyncClient(base_url=server.http_url()) as http:
                assert (await http.get("/", headers={"Cookie": f"sessionid={alice_key}"})).status_code == 500
                assert (await http.get("/accounts/login/")).status_code == 200  # needs no database
            await bob.send_json({"message": "during"})  # the sockets already open chat on
            assert await alice.receive_json() == {"message": "during", "user": "bob"}
            assert await bob.receive_json() == {"message": "during", "user": "bob"}

            cluster.start()
            async with await connect(server, room, bob_key) as again:  # new connections work again
                await again.send_json({"message": "after"})
                assert await again.receive_json() == {"message": "after", "user": "bob"}
                assert await alice.receive_json() == {"message": "after", "user": "bob"}
    logs = server.logs()
    assert "Traceback" not in logs, logs
    failures = [line for line in logs.splitlines() if "ERROR" in line or "failed on database" in line]
    assert len(failures) == 3, logs  # one line per refused connection, nothing else
    for line in failures:
        assert line.startswith("ERROR interlock.actors.django: "), line
        assert f"loading the user of websocket '/ws/chat/{room}/' failed on database 'default'" in line, line
        assert "(django.db.backends.postgresql, NAME='test')" in line, line
        assert "OperationalError" in line, line
        assert str(cluster.port) in line, line  # psycopg's text names the server's address
        assert "is the database server up and reachable?" in line, line
