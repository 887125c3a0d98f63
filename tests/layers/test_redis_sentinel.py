"""RedisChannelLayer on a primary that Redis Sentinel names: a client from ``coredis.Sentinel``.

The fixture starts a private ``redis-server`` and a Sentinel (``redis-server --sentinel``)
watching it, on free loopback ports, and stops both.  What is checked is that the layer
runs on the primary client the Sentinel hands out (the hot path then goes through coredis,
which asks the Sentinel where the primary is); a failover is not exercised here.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import coredis
import pytest
from coredis.connection import TCPLocation
from interlock.layers import RedisChannelLayer

from .redis_support import WAIT

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

SERVICE = "interlock-primary"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on port {port}")
            time.sleep(0.02)


@pytest.fixture
def sentinel_port(tmp_path: Path) -> Iterator[int]:
    primary, sentinel = _free_port(), _free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its config file: it must be its own
    config.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
    )
    server = ["redis-server", "--port", str(primary), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes = [subprocess.Popen(server, stdout=subprocess.DEVNULL)]
    try:
        processes.append(subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL))
        _wait_for(primary)
        _wait_for(sentinel)
        yield sentinel
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def test_the_layer_runs_on_the_primary_a_sentinel_names(sentinel_port: int) -> None:
    async with coredis.Sentinel([TCPLocation("127.0.0.1", sentinel_port)]) as sentinel:
        one = RedisChannelLayer(sentinel.primary_for(SERVICE), prefix="sentinel-test")
        two = RedisChannelLayer(sentinel.primary_for(SERVICE), prefix="sentinel-test")
        assert one.address == f"the primary of Sentinel service {SERVICE!r}"
        async with one, two:
            theirs = await two.new_channel()
            await one.group_add("room", theirs)
            await one.send(theirs, {"type": "direct"})
            await one.group_send("room", {"type": "to.room"})
            with anyio.fail_after(WAIT):
                assert [await two.receive(theirs) for _ in range(2)] == [{"type": "direct"}, {"type": "to.room"}]
            assert await one.group_members("room") == {theirs}
            assert await one.groups() == {"room": 1}
            await one.flush()
