"""Limits of plain WebSocket actors: ``handshake_timeout``, ``idle_timeout``, ``max_connections``.

The timeouts run on asyncio with real fractions of a second and on trio with its virtual
clock (``MockClock(autojump_threshold=0)``) and hour-long limits, which take milliseconds.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import anyio
import pytest
import trio.testing
from interlock.actors import JsonStateActor, WebsocketActor
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on

HOUR = 3600.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    if request.param == "trio":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


@pytest.fixture
def unit(anyio_backend_name: str) -> float:
    """The limit under test: an hour on trio's virtual clock, a tenth of a second on asyncio."""
    return HOUR if anyio_backend_name == "trio" else 0.1


class Recorder(WebsocketActor):
    endings: ClassVar[list[Any]] = []

    async def disconnect(self, code: int) -> None:
        self.endings.append(self.ending)


class SlowConnect(Recorder):
    """connect() takes a long time before it accepts."""

    async def connect(self) -> None:
        await anyio.sleep(self.handshake_timeout * 10)  # type: ignore[operator]
        await self.accept()


class NeverAccepts(Recorder):
    """connect() returns without accepting or refusing: the handshake stays pending."""

    async def connect(self) -> None:
        return None


class Echo(Recorder):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"echo {text_data}")


@pytest.mark.parametrize("actor", [SlowConnect, NeverAccepts])
@pytest.mark.parametrize(("denial", "status"), [(True, 408), (False, 403)])
async def test_a_handshake_not_done_in_time_is_refused_and_torn_down(
    actor: type[Recorder], denial: bool, status: int, unit: float
) -> None:
    Recorder.endings.clear()
    app = actor.as_asgi(handshake_timeout=unit)
    async with WebsocketCommunicator(app, "/", denial_extension=denial, timeout=20 * unit) as ws:
        started = anyio.current_time()
        handshake = await ws.connect()
        waited = anyio.current_time() - started
        assert not handshake.accepted
        assert handshake.status == status
        if denial:
            assert b"handshake not accepted within" in handshake.body
        await ws.disconnect()
    assert unit <= waited < unit + (0.5 * unit if unit == HOUR else 1.0)
    assert [(e.cause, e.code) for e in Recorder.endings] == [("actor", 1000)]


async def test_a_handshake_in_time_is_unaffected(unit: float) -> None:
    async with WebsocketCommunicator(Echo.as_asgi(handshake_timeout=unit), "/", timeout=20 * unit) as ws:
        assert (await ws.connect()).accepted
        await anyio.sleep(3 * unit)
        await ws.send_to(text_data="hi")
        assert await ws.receive_from() == "echo hi"


async def test_a_silent_client_is_closed_with_4000_and_frames_keep_it_open(unit: float) -> None:
    Recorder.endings.clear()
    async with WebsocketCommunicator(Echo.as_asgi(idle_timeout=2 * unit), "/", timeout=20 * unit) as ws:
        assert (await ws.connect()).accepted
        for _ in range(3):  # each frame moves the deadline on
            await anyio.sleep(unit)
            await ws.send_to(text_data="ping")
            assert await ws.receive_from() == "echo ping"
        started = anyio.current_time()
        close = await ws.receive_close()
        waited = anyio.current_time() - started
        await ws.disconnect(close.code)
    assert (close.code, close.reason) == (4000, f"idle for {2 * unit:g} s")
    assert 2 * unit <= waited < 2 * unit + (0.5 * unit if unit == HOUR else 1.0)
    assert [e.cause for e in Recorder.endings] == ["actor"]


async def test_a_client_that_never_speaks_idles_out(unit: float) -> None:
    class Quiet(Echo):
        idle_timeout = unit
        idle_close_code = 4004

    async with WebsocketCommunicator(Quiet.as_asgi(), "/", timeout=20 * unit) as ws:
        assert (await ws.connect()).accepted
        assert (await ws.receive_close()).code == 4004


class Limited(Recorder):
    max_connections = 2


@pytest.mark.parametrize(("denial", "status"), [(True, 503), (False, 403)])
async def test_connections_past_max_connections_are_refused(
    denial: bool, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "interlock.actors")
    app = Limited.as_asgi()
    async with (
        WebsocketCommunicator(app, "/") as first,
        WebsocketCommunicator(app, "/") as second,
    ):
        assert (await first.connect()).accepted
        assert (await second.connect()).accepted
        for _ in range(3):
            async with WebsocketCommunicator(app, "/", denial_extension=denial) as extra:
                handshake = await extra.connect()
                assert (handshake.accepted, handshake.status) == (False, status)
                await extra.disconnect()
        await first.disconnect()
        async with WebsocketCommunicator(app, "/") as third:  # a slot is free again
            assert (await third.connect()).accepted
            await third.disconnect()
        await second.disconnect()
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "Limited refuses new connections: max_connections (2)" in m]) == 1
    assert [m for m in lines if "Limited admits connections again, after refusing 3" in m]
    assert not [r for r in caplog.records if r.exc_info is not None]


async def test_a_failed_actor_frees_its_slot() -> None:
    class Fragile(Recorder):
        max_connections = 1

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            raise RuntimeError("boom")

    for _ in range(3):
        async with WebsocketCommunicator(Fragile.as_asgi(), "/") as ws:
            assert (await ws.connect()).accepted
            await ws.send_to(text_data="x")
            assert (await ws.receive_close()).code == 1011
            await ws.disconnect(1011)


async def test_a_state_actor_has_a_handshake_timeout_too(unit: float) -> None:
    class Pending(JsonStateActor):
        handshake_timeout = unit
        lobby = State(terminal=True)

        async def connect(self) -> None:
            return None  # nothing accepts

        @on.client("hello", source=lobby)
        async def hello(self, event: dict[str, Any]) -> None:
            return None

    async with WebsocketCommunicator(Pending.as_asgi(), "/", timeout=20 * unit) as ws:
        handshake = await ws.connect()
        assert (handshake.accepted, handshake.status) == (False, 408)
