"""RedisChannelLayer on a real 3-master Redis Cluster: the conformance suite, unchanged.

The module's fixture starts three ``redis-server --cluster-enabled yes`` on free loopback
ports in a temporary folder, joins them with ``redis-cli --cluster create``, and stops
them afterwards.  That every test passes on it shows that every script and multi-key
command stays in one hash slot (a cross-slot one fails with CROSSSLOT).
"""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from interlock.layers import RedisChannelLayer
from interlock.layers.testing import ChannelLayerConformance, LayerFactory

from .redis_support import delete_prefix, unique_prefix

pytestmark = [
    pytest.mark.redis,
    # coredis 6.9's RedisCluster leaves one pair of anyio memory streams unclosed each time a
    # client is left (a bare ping does it): its garbage's ResourceWarnings are ignored here.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.skipif(
        shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
        reason="needs redis-server and redis-cli",
    ),
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """asyncio only here: the suite's 418 tests take a minute a backend, and what the Cluster
    changes (the client's routing, every key's slot) is the same on trio, which the
    single-node suite covers."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so the client's garbage is ignored here, not in another module."""
    yield
    gc.collect()


def _free_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _wait_for(check: Any, what: str, wait: float = 20.0) -> None:
    deadline = time.monotonic() + wait
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"the Redis Cluster fixture timed out waiting until {what}")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    done = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False)
    return done.stdout.strip() == "PONG"


def _cluster_ok(port: int) -> bool:
    command = ["redis-cli", "-p", str(port), "cluster", "info"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return "cluster_state:ok" in done.stdout


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a 3-master cluster on loopback; yield a node's URL; stop and remove it afterwards."""
    folder: Path = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(3)
    servers = []
    try:
        for port in ports:
            node = folder / str(port)
            node.mkdir()
            servers.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(node),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _wait_for(lambda port=port: _answers(port), f"the node on port {port} answers")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
        for port in ports:
            _wait_for(lambda port=port: _cluster_ok(port), f"the node on port {port} reports cluster_state:ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(folder, ignore_errors=True)


class TestRedisClusterConformance(ChannelLayerConformance):
    short_expiry = 0.3

    @pytest.fixture
    async def key_prefix(self, cluster_url: str) -> AsyncIterator[str]:
        name = unique_prefix()
        yield name
        await delete_prefix(name, cluster_url, cluster=True)

    @pytest.fixture
    def layer_factory(self, cluster_url: str, key_prefix: str) -> LayerFactory:
        @asynccontextmanager
        async def make_layer(**options: Any) -> AsyncIterator[RedisChannelLayer]:
            async with RedisChannelLayer(cluster_url, cluster=True, prefix=key_prefix, **options) as layer:
                yield layer

        return make_layer

    @pytest.fixture
    async def layer(self, layer_factory: LayerFactory) -> AsyncIterator[Any]:
        async with layer_factory() as layer:
            yield layer
