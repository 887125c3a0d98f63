"""Open PostgreSQL connections left by N concurrent sync actors doing ORM work, with and without the guard.

Each of ``--actors`` WebSocket actors (plain ``def`` handlers, so they run in anyio's worker
threads, as Channels' sync consumers do) handles ``--messages`` frames, each a query on
the local PostgreSQL (127.0.0.1:5432, trust auth, database ``test``). The script counts
this run's server connections (``SELECT count(*) FROM pg_stat_activity WHERE
application_name = ...``) at their peak while the actors run, and once every handler
has returned (the worker threads are still alive, idle). ``--no-guard`` switches off the
``close_old_connections()`` that interlock runs around sync handlers in a Django project:
the behaviour before the fix. Prints one JSON line. Run::

    .venv/bin/python bench/django_connections.py [--actors 50] [--messages 5] [--no-guard]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import psycopg
from django.conf import settings

APPLICATION_NAME = f"interlock-bench-{os.getpid()}"
DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def count_connections() -> int:
    with psycopg.connect(DSN, application_name="interlock-bench-counter") as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
        found = row.fetchone()
        return int(found[0]) if found else 0


async def run(actors: int, messages: int) -> dict[str, Any]:
    from django.db import connection  # noqa: PLC0415 - after django.setup()
    from interlock.actors import WebsocketActor  # noqa: PLC0415
    from interlock.actors.testing import WebsocketCommunicator  # noqa: PLC0415

    class OrmActor(WebsocketActor):
        def connect(self) -> None:
            self.accept()

        def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            with connection.cursor() as cursor:  # this worker thread's connection
                cursor.execute("SELECT pg_sleep(0.005), %s", [text_data])
            self.send(text_data="done")

    peak = 0
    done = anyio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, await anyio.to_thread.run_sync(count_connections))
            await anyio.sleep(0.02)

    async def one(n: int) -> None:
        async with WebsocketCommunicator(OrmActor.as_asgi(), "/", timeout=30) as ws:
            assert (await ws.connect()).accepted
            for i in range(messages):
                await ws.send_to(text_data=f"{n}.{i}")
                assert await ws.receive_from() == "done"
            await ws.disconnect()

    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch)
        async with anyio.create_task_group() as clients:
            for n in range(actors):
                clients.start_soon(one, n)
        done.set()
    elapsed = time.perf_counter() - started
    after = await anyio.to_thread.run_sync(count_connections)
    pool = anyio.to_thread.current_default_thread_limiter().total_tokens
    return {
        "actors": actors,
        "messages": messages,
        "thread_pool": pool,
        "threads_alive": threading.active_count(),
        "peak_connections": peak,
        "connections_after": after,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--actors", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--no-guard", action="store_true", help="do not close connections around sync handlers")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": "5432",
                "NAME": "test",
                "USER": "postgres",
                "OPTIONS": {"application_name": APPLICATION_NAME},
            }
        },
        USE_TZ=True,
    )
    import django  # noqa: PLC0415

    django.setup()
    if args.no_guard:
        from interlock.actors import _sync  # noqa: PLC0415 - the bench switches the guard off

        _sync.disable_connection_guard()
    result = anyio.run(run, args.actors, args.messages, backend=args.backend)
    result.update(guard=not args.no_guard, backend=args.backend)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
