"""Graceful shutdown on real servers, and bare actor apps under default lifespan settings.

``test_sigterm_closes_every_connection``: ``CLIENTS`` live connections in a room of
``lifecycle_app.LifeActor`` (uvicorn on asyncio, ``hypercorn -k trio`` on trio), then
SIGTERM to the server.  Every client must get a close frame with 1001 or 1012 (never a
dropped TCP connection, 1006), the server must exit with status 0 within ``EXIT_WITHIN``
seconds (uvicorn: by the SIGTERM it re-raises after a graceful shutdown), every
connection's exit hooks and ``disconnect()`` must have run once (cause ``shutdown``),
the log must hold no ERROR or Traceback, and this process, opening the SQLite file,
must find no member left in the room right after the exit (the layer's close on
lifespan shutdown ends the server's lease and drops its channels).

``test_bare_app_serves_and_stops``: ``uvicorn lifecycle_app:bare`` and ``hypercorn
lifecycle_app:bare`` (an ``as_asgi()`` app, no router) with the servers' default
lifespan settings must listen, serve a WebSocket, and exit 0 (uvicorn: -SIGTERM) on SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import anyio
import pytest

from tests.support.lifecycle_records import Expect, check, leftover_members, log_problems, read_records, report
from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e

CLIENTS = 250
OPEN_AT_ONCE = 25
EXIT_WITHIN = 15.0
SHUTDOWN_CODES = frozenset({1001, 1012})
# uvicorn re-raises the signal it caught once its graceful shutdown is done
# (uvicorn/server.py: signal.raise_signal), so its normal exit on SIGTERM is -SIGTERM
GRACEFUL_EXIT = {"uvicorn": frozenset({0, -signal.SIGTERM}), "hypercorn": frozenset({0})}
ALL = "life.all"


def life_env(base: Path) -> dict[str, str]:
    records = base / "records"
    records.mkdir()
    return {"INTERLOCK_LIFE_DB": str(base / "layer.sqlite3"), "INTERLOCK_LIFE_RECORDS": str(records)}


def sigterm_and_wait(server: RunningServer, within: float) -> int | None:
    """SIGTERM the server; its exit status, or None if it is still running after *within* s."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        return None


async def open_room(server: RunningServer, room: str, count: int) -> dict[str, WSClient]:
    """Open *count* clients joined to *room*, a few at a time; tag -> client."""
    clients: dict[str, WSClient] = {}
    limiter = anyio.Semaphore(OPEN_AT_ONCE)

    async def one(tag: str) -> None:
        async with limiter:
            client = await WSClient.connect(server.host, server.port, f"/ws/life/{tag}/", timeout=10)
            clients[tag] = client
            await client.send_json({"type": "join", "room": room})
            with anyio.fail_after(10):
                while (await client.receive_json(10)).get("type") != "joined":
                    pass

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, f"shut-{index:03d}-{uuid.uuid4().hex[:8]}")
    return clients


async def test_sigterm_closes_every_connection(anyio_backend: str, tmp_path: Path) -> None:
    env = life_env(tmp_path)
    db, records_dir = Path(env["INTERLOCK_LIFE_DB"]), Path(env["INTERLOCK_LIFE_RECORDS"])
    room = f"shutdown-{uuid.uuid4().hex[:8]}"
    closes: dict[str, tuple[int, str] | str] = {}
    with serve("lifecycle_app:app", backend=anyio_backend, app_dir=str(HERE), env=env) as server:
        clients = await open_room(server, room, CLIENTS)
        try:
            status: int | None = None
            started = time.monotonic()
            async with anyio.create_task_group() as tg:

                async def watch(tag: str, client: WSClient) -> None:
                    try:
                        closes[tag] = await client.wait_closed(timeout=EXIT_WITHIN + 5)
                    except TimeoutError:
                        closes[tag] = "no close frame and no TCP close"

                for tag, client in clients.items():
                    tg.start_soon(watch, tag, client)
                await anyio.sleep(0.2)  # every watcher is reading
                status = await anyio.to_thread.run_sync(sigterm_and_wait, server, EXIT_WITHIN)
            took = time.monotonic() - started
            left = await leftover_members(db, [ALL, "life.room." + room], within=0)  # right after the exit
        finally:
            for client in clients.values():
                await client.abort()
        log = server.logs()
    records = read_records(records_dir)
    expect = Expect(causes=frozenset({"shutdown"}), codes=SHUTDOWN_CODES)
    problems = {tag: found for tag in clients if (found := check(records.events(tag), expect))}
    seen = Counter(
        value if isinstance(value, str) else (f"{value[0]}" if value[0] in SHUTDOWN_CODES else f"{value[0]} (bad)")
        for value in closes.values()
    )
    bad_closes = {
        tag: value for tag, value in closes.items() if isinstance(value, str) or value[0] not in SHUTDOWN_CODES
    }
    channels = records.channel_tags()
    leftovers = {group: sorted(channels.get(c, c) for c in members) for group, members in left.items()}
    logged = log_problems(log, deliberate=())
    message = [
        f"{server.kind}: {len(clients)} clients, SIGTERM -> exit status {status} after {took:.1f}s "
        f"(bound {EXIT_WITHIN}s, graceful: {sorted(GRACEFUL_EXIT[server.kind])}); "
        f"close codes the clients saw: {dict(seen)}",
    ]
    if bad_closes:
        shown = ", ".join(f"{tag}={value}" for tag, value in sorted(bad_closes.items())[:8])
        message.append(f"{len(bad_closes)} clients saw no close with 1001/1012: {shown}")
    if problems:
        message.append(f"{len(problems)} connections broke the teardown guarantee:\n{report(problems)}")
    if leftovers:
        counts = {group: len(members) for group, members in leftovers.items()}
        message.append(f"members left in the SQLite file right after the exit {counts}: {leftovers}"[:1500])
    message.extend(logged)
    ok = status in GRACEFUL_EXIT[server.kind] and not bad_closes and not problems and not leftovers and not logged
    assert ok, "\n".join(message)


@pytest.mark.parametrize("app", ["bare", "bare_layered"])
async def test_bare_app_serves_and_stops(anyio_backend: str, tmp_path: Path, app: str) -> None:
    """A bare ``as_asgi()`` app starts with default lifespan settings, serves, stops on SIGTERM."""
    env = life_env(tmp_path)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(
                serve(f"lifecycle_app:{app}", backend=anyio_backend, app_dir=str(HERE), env=env, startup_timeout=10)
            )
        except RuntimeError as exc:
            pytest.fail(f"lifecycle_app:{app} never listened with default lifespan settings: {exc}"[:3000])
        tag = f"bare-{uuid.uuid4().hex[:8]}"
        async with await WSClient.connect(server.host, server.port, f"/ws/life/{tag}/") as client:
            if app == "bare":
                await client.send_json({"hello": "bare"})
                assert await client.receive_json() == {"echo": {"hello": "bare"}}
            else:
                await client.send_json({"type": "ping"})
                assert await client.receive_json() == {"type": "pong"}
        status = await anyio.to_thread.run_sync(sigterm_and_wait, server, EXIT_WITHIN)
        log = server.logs()
    logged = log_problems(log, deliberate=())
    graceful = GRACEFUL_EXIT[server.kind]
    stopped = status in graceful and not logged
    assert stopped, "\n".join(
        [f"{server.kind} {app}: exit status {status} after SIGTERM (graceful: {sorted(graceful)})", *logged]
    )
