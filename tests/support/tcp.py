"""A TcpServer served on a free loopback port for the length of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from interlock.actors import ASGIApp
from interlock.actors.tcp import TcpServer


@asynccontextmanager
async def serving(app: ASGIApp, **options: Any) -> AsyncIterator[TcpServer]:
    """Serve *app* on 127.0.0.1 (a port of the system's choice: ``server.port``) until the block ends."""
    server = TcpServer(app, "127.0.0.1", 0, **options)
    async with anyio.create_task_group() as tasks:
        await tasks.start(server.serve)
        yield server
        tasks.cancel_scope.cancel()
