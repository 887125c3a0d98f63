"""The ORM from actors: ``database_sync_to_async`` and what a database failure says.

Theory of operation
-------------------
Django's ORM is sync and keeps one connection per thread. Async code reaches it
through :func:`database_sync_to_async`, which runs the function in an anyio worker
thread between two ``close_old_connections()`` calls (as Django's request cycle does
around a view), so stale and broken connections are closed in the thread that owns
them and open connections stay bounded by the thread pool. Sync handlers of actors get
the same guard without asking (see :mod:`interlock.actors._sync`).

:func:`describe_database_error` turns the errors a missing table or an unreachable
database raise into one line naming the table or the database and what to do.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from interlock.actors._sync import guarded

__all__ = ["close_old_connections", "database_sync_to_async", "describe_database_error"]

P = ParamSpec("P")
T = TypeVar("T")


def close_old_connections() -> None:
    """Close this thread's database connections that are broken or older than ``CONN_MAX_AGE``."""
    from django.db import close_old_connections as close  # noqa: PLC0415 - Django is optional

    close()


def database_sync_to_async(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """Wrap a sync function that uses the ORM so async code can await it.

    It runs in a worker thread, between two ``close_old_connections()``: Channels'
    ``database_sync_to_async``, on asyncio and trio. Usable as a decorator, on methods too.
    """

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(guarded, close_old_connections, fn, args, kwargs)

    return wrapper


def describe_database_error(exc: BaseException, what: str) -> str:
    """One line for a database error met while doing *what* ("loading the session"…).

    Names the database (alias, engine, name) and, for a missing table, says to migrate.
    """
    from django.db import DEFAULT_DB_ALIAS, connections  # noqa: PLC0415

    settings = connections.settings.get(DEFAULT_DB_ALIAS, {})
    where = f"database {DEFAULT_DB_ALIAS!r} ({settings.get('ENGINE', '?')}, NAME={settings.get('NAME', '')!r})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    lowered = text.lower()
    hint = ""
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        hint = "; a table is missing: run `manage.py migrate`"
    elif type(exc).__name__ in ("OperationalError", "InterfaceError"):
        hint = "; is the database server up and reachable?"
    return f"{what} failed on {where}: {type(exc).__name__}: {text}{hint}"
