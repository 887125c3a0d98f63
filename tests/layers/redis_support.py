"""Helpers for the Redis layer's tests: a unique key prefix per test, and cleaning it up."""

from __future__ import annotations

import secrets
import socket
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import coredis
import pytest
from coredis.connection import TCPLocation
from interlock.layers import RedisChannelLayer

REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 10.0  # seconds any single wait may take before the test fails


def redis_is_up(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """Whether something listens on the Redis port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unique_prefix() -> str:
    """A key prefix no other test (or test run) uses."""
    return f"interlock-test:{secrets.token_hex(6)}"


async def delete_prefix(prefix: str, url: str = REDIS_URL, *, cluster: bool = False) -> None:
    """Delete every key under *prefix*."""
    client: Any
    if cluster:  # (RedisCluster.from_url warns: it hands its pool the deprecated dict nodes)
        parts = urllib.parse.urlsplit(url)
        client = coredis.RedisCluster(startup_nodes=[TCPLocation(parts.hostname or "", parts.port or 6379)])
    else:
        client = coredis.Redis.from_url(url)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for key in keys:
            await client.delete([key])


async def count_keys(prefix: str, url: str = REDIS_URL) -> int:
    """How many keys live under *prefix*."""
    client: Any = coredis.Redis.from_url(url)
    async with client:
        return len([key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)])


@asynccontextmanager
async def redis_layer(prefix: str, url: str = REDIS_URL, **options: Any) -> AsyncIterator[RedisChannelLayer]:
    """A started layer on *prefix*, closed afterwards."""
    async with RedisChannelLayer(url, prefix=prefix, **options) as layer:
        yield layer


async def eventually(check: Any, what: str, wait: float = WAIT) -> None:
    """Poll the async *check* until it returns true; fail naming *what* after *wait* seconds."""
    with anyio.move_on_after(wait) as scope:
        while not await check():  # noqa: ASYNC110 - waits on another process's doing
            await anyio.sleep(0.02)
    if scope.cancelled_caught:
        pytest.fail(f"timed out waiting until {what}")
