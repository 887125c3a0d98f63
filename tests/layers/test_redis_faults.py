"""RedisChannelLayer when Redis fails: restarted without persistence, refusing AUTH.

Each test starts its own ``redis-server`` on a free loopback port (persistence off, as
Redis runs here by default), so stopping it disturbs no other test.  Waits are bounded;
what is asserted is that calls fail fast with ``LayerUnavailable`` and that memberships
come back once Redis does.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest
from interlock.actors import WebsocketActor, _base
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import LayerUnavailable, RedisChannelLayer

from .redis_support import WAIT, eventually

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    # coredis leaves anyio memory streams unclosed when a connection fails (refused, reset):
    # these tests fail connections on purpose, so their garbage's ResourceWarnings are ignored.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

TIMEOUT = 0.5  # the layers' command timeout here


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()


class RedisServer:
    """A private redis-server on a free loopback port, which a test may stop and start again."""

    def __init__(self, *options: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.options = options
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*command, *self.options], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server on port {self.port} did not start")
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def server() -> Iterator[RedisServer]:
    redis = RedisServer()
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


async def _raises_unavailable_soon(call: Any, what: str) -> LayerUnavailable:
    started = time.monotonic()
    with anyio.fail_after(TIMEOUT * 4), pytest.raises(LayerUnavailable) as caught:
        await call()
    assert time.monotonic() - started < TIMEOUT * 3, f"{what} took too long to fail"
    return caught.value


async def test_a_restart_fails_calls_fast_then_memberships_come_back(server: RedisServer) -> None:
    states: list[str | None] = []
    options: dict[str, Any] = {"prefix": "faults", "lease": 0.3, "grace": 0.3, "timeout": TIMEOUT}
    async with (
        RedisChannelLayer(server.url, on_availability=states.append, **options) as owner,
        RedisChannelLayer(server.url, **options) as other,
        RedisChannelLayer(server.url, **options) as third,
    ):
        mine, theirs = await owner.new_channel(), await third.new_channel()
        await owner.group_add("room", mine)
        await third.group_add("room", theirs)  # other's group_send goes to two processes at once
        await other.group_add("workers", "worker.shared")
        assert await other.group_members("room") == {mine, theirs}

        server.kill()
        for what, call in [
            ("send", lambda: other.send(mine, {"type": "lost"})),
            ("send to a named channel", lambda: other.send("worker.shared", {"type": "lost"})),
            ("group_send", lambda: other.group_send("room", {"type": "lost"})),
            ("group_add", lambda: other.group_add("room", "worker.shared")),
            ("group_members", lambda: other.group_members("room")),
        ]:
            error = await _raises_unavailable_soon(call, what)
            assert server.url in str(error)
        await eventually(lambda: _true(owner.unavailable is not None), "the owner noticed", wait=WAIT)
        assert states
        assert states[0] is not None
        assert server.url in states[0]
        local = await owner.new_channel()  # this process's own channels still work meanwhile
        await owner.send(local, {"type": "local"})
        assert await owner.receive(local) == {"type": "local"}

        server.start()  # empty: persistence is off

        async def restored() -> bool:
            try:
                return await other.group_members("room") == {mine, theirs} and await other.group_members("workers") == {
                    "worker.shared"
                }
            except LayerUnavailable:
                return False

        await eventually(restored, "both processes wrote their memberships again", wait=WAIT)
        await eventually(lambda: _true(states[-1] is None), "the owner was told Redis answers again")
        await other.group_send("room", {"type": "after"})
        with anyio.fail_after(WAIT):
            assert await owner.receive(mine) == {"type": "after"}
            assert await third.receive(theirs) == {"type": "after"}


async def _true(value: bool) -> bool:
    return value


async def test_a_layer_started_while_redis_is_down_says_so_then_starts_once_it_is_up(server: RedisServer) -> None:
    server.kill()
    layer = RedisChannelLayer(server.url, prefix="faults", timeout=TIMEOUT)
    error = await _raises_unavailable_soon(layer.start, "start")
    assert server.url in str(error)
    server.start()
    with anyio.fail_after(WAIT):
        async with layer:
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "t"})
            assert await layer.receive(channel) == {"type": "t"}


@pytest.mark.parametrize("url_password", ["", ":wrong@", "someone:wrong@"])
async def test_a_redis_that_refuses_auth_is_a_clear_error_at_start(url_password: str) -> None:
    redis = RedisServer("--requirepass", "s3cret")
    redis.start()
    try:
        url = redis.url.replace("redis://", f"redis://{url_password}")
        with anyio.fail_after(WAIT), pytest.raises(LayerUnavailable) as caught:
            await RedisChannelLayer(url, timeout=TIMEOUT).start()
        assert f"127.0.0.1:{redis.port}" in str(caught.value)
        assert "wrong" not in str(caught.value)  # the URL's password is not shown
        assert "credentials" in str(caught.value)
        password = redis.url.replace("redis://", "redis://:s3cret@")
        async with RedisChannelLayer(password, prefix="faults", timeout=TIMEOUT) as layer:
            assert await layer.groups() == {}
        in_db3 = redis.url.replace("redis://", "redis://:s3cret@").replace("/0", "/3")
        async with (  # the lean connection authenticates and selects the URL's database too
            RedisChannelLayer(in_db3, prefix="faults", timeout=TIMEOUT) as one,
            RedisChannelLayer(in_db3, prefix="faults", timeout=TIMEOUT) as two,
        ):
            theirs = await two.new_channel()
            await one.group_add("room", theirs)
            await one.send(theirs, {"type": "direct"})
            await one.group_send("room", {"type": "to.room"})
            with anyio.fail_after(WAIT):
                assert [await two.receive(theirs) for _ in range(2)] == [{"type": "direct"}, {"type": "to.room"}]
            client: Any = coredis.Redis.from_url(in_db3.replace("/3", "/0"))
            async with client:
                assert await client.dbsize() == 0  # nothing went to database 0
    finally:
        redis.kill()


async def test_actors_failed_by_an_outage_close_with_1011_and_log_one_warning(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Room(WebsocketActor):
        groups = ("room",)

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            await self.channel_layer.group_send("room", {"type": "chat.message", "text": text_data})

        async def chat_message(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    _base._outage.update(logged=-float("inf"), since=0)  # the rate limit starts afresh
    layer = RedisChannelLayer(server.url, prefix="outage", timeout=TIMEOUT)
    app = Room.as_asgi(channel_layer=layer)
    try:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(WebsocketCommunicator(app, "/", timeout=WAIT)) for _ in range(3)]
            for client in clients:
                assert (await client.connect()).accepted
            server.kill()
            caplog.clear()
            for client in clients:
                await client.send_to(text_data="hello")
                closed = await client.receive_close()
                assert (closed.code, closed.reason) == (1011, "channel layer unavailable")
        outage = [r for r in caplog.records if r.name == "interlock.actors" and r.levelno >= logging.WARNING]
        assert len(outage) == 1, [r.getMessage() for r in outage]
        assert outage[0].levelno == logging.WARNING
        assert outage[0].exc_info is None
        assert "the channel layer is unavailable" in outage[0].getMessage()
    finally:
        server.start()
        await layer.close()


async def test_a_unix_socket_url_serves_the_whole_layer(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    redis = RedisServer("--unixsocket", str(path), "--unixsocketperm", "700")
    redis.start()
    try:
        url = f"unix://{path}?db=2"
        async with (
            RedisChannelLayer(url, prefix="unix", timeout=TIMEOUT) as one,
            RedisChannelLayer(url, prefix="unix", timeout=TIMEOUT) as two,
        ):
            theirs = await two.new_channel()
            await one.group_add("room", theirs)
            await one.send(theirs, {"type": "direct"})
            await one.group_send("room", {"type": "to.room"})
            with anyio.fail_after(WAIT):
                assert [await two.receive(theirs) for _ in range(2)] == [{"type": "direct"}, {"type": "to.room"}]
            assert await two.group_members("room") == {theirs}
    finally:
        redis.kill()
