"""Timeouts are events, handled between other events: state timeouts, the idle timeout, named timers.

Each test runs on asyncio with real timeouts of a fraction of a second, and on trio
with its virtual clock (``MockClock(autojump_threshold=0)``) and timeouts of an hour,
which then take milliseconds of wall time.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, ClassVar

import anyio
import attrs
import pytest
import trio.testing
from interlock.actors import JsonStateActor, ProtocolTypeRouter, TransitionRecord
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, Timeout, on
from interlock.layers import InMemoryChannelLayer

HOUR = 3600.0


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str | tuple[str, dict[str, Any]]:
    """asyncio on its real clock; trio on a virtual clock that jumps whenever every task waits.

    anyio's plugin takes ``(name, options)`` and passes the options to the backend's
    runner (``trio.run(..., clock=...)``). A fresh clock per test keeps tests apart.
    """
    if request.param == "trio":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


@attrs.frozen
class Clock:
    """The timeout under test on this backend, and a wall-time check for the virtual one."""

    virtual: bool
    unit: float
    started: float = attrs.field(factory=time.monotonic)

    @property
    def wait(self) -> float:
        """How long a communicator waits for output: well past every timer of a test."""
        return 20 * self.unit

    def late(self, seconds: float) -> float:
        """An upper bound for something due after *seconds*: exact on the virtual clock, loose on a real one."""
        return seconds + (0.5 * self.unit if self.virtual else 1.0)

    def check_wall_time(self) -> None:
        if self.virtual:
            elapsed = time.monotonic() - self.started
            assert elapsed < 5, f"hour-long timeouts on trio's virtual clock took {elapsed:.1f} s of wall time"


@pytest.fixture
def clock(anyio_backend_name: str) -> Clock:
    if anyio_backend_name == "trio":
        return Clock(virtual=True, unit=HOUR)
    return Clock(virtual=False, unit=0.1)


def communicator(actor: type[JsonStateActor], clock: Clock, **initkwargs: Any) -> WebsocketCommunicator:
    app = ProtocolTypeRouter({"websocket": actor.as_asgi(**initkwargs)}, channel_layer=InMemoryChannelLayer())
    return WebsocketCommunicator(app, "/", timeout=clock.wait)


class Base(JsonStateActor):
    """Keeps its instances, what its handlers saw and its transitions; reports its state on request."""

    instances: ClassVar[list[Any]] = []
    log: ClassVar[list[Any]] = []
    records: ClassVar[list[TransitionRecord]] = []
    entered: float = 0.0

    def on_transition(self, record: TransitionRecord) -> None:
        self.records.append(record)

    async def connect(self) -> None:
        self.instances.append(self)
        await self.accept()

    @on.client("where")
    async def where(self, event: dict[str, Any]) -> None:
        await self.send_json({"state": self.state})

    def since_entered(self) -> float:
        return anyio.current_time() - self.entered


def timer_events(records: list[TransitionRecord]) -> list[tuple[str, str, str, bool]]:
    """(kind, event, source, accepted) of every timer event the actor handled or rejected."""
    return [(r.kind, r.event, r.source, r.accepted) for r in records if r.kind in ("timeout", "idle", "timer")]


# -- state timeouts -------------------------------------------------------------------------------------


@functools.cache
def state_timeout_actor(unit: float) -> type[Base]:
    class StateTimeout(Base):
        waiting = State(timeout=unit)
        other = State()
        timed_out = State()

        @waiting.enter
        async def mark(self) -> None:
            self.entered = anyio.current_time()

        @on.timeout(waiting, target=timed_out)
        async def too_late(self, event: Timeout) -> None:
            self.log.append(("timeout", event.name, event.seconds))
            await self.send_json({"timeout": event.name, "seconds": event.seconds, "after": self.since_entered()})

        @on.client("leave", source=waiting, target=other)
        async def leave(self, event: dict[str, Any]) -> None:
            await self.send_json({"left": self.state})

        @on.client("again", source=waiting, target=waiting)
        async def again(self, event: dict[str, Any]) -> None:
            await self.send_json({"again": self.state})

        @on.client("slow", source=waiting, target=other)
        async def slow(self, event: dict[str, Any]) -> None:
            await anyio.sleep(2 * unit)  # the timeout falls due meanwhile
            await self.send_json({"slow": "done"})

        @on.client("slow_again", source=waiting, target=waiting)
        async def slow_again(self, event: dict[str, Any]) -> None:
            await anyio.sleep(2 * unit)
            await self.send_json({"slow_again": "done"})

        @on.client("back", source=[other, timed_out], target=waiting)
        async def back(self, event: dict[str, Any]) -> None: ...

        @on.client("close")
        async def close_now(self, event: dict[str, Any]) -> None:
            await self.close(4000)

    return StateTimeout


async def test_state_timeout_fires_and_its_handler_runs(clock: Clock) -> None:
    actor = state_timeout_actor(clock.unit)
    log: list[Any] = []
    records: list[TransitionRecord] = []
    async with communicator(actor, clock, log=log, records=records) as ws:
        assert (await ws.connect()).accepted
        started = anyio.current_time()
        reply = await ws.receive_json_from()
        assert reply["timeout"] == "waiting"
        assert reply["seconds"] == clock.unit
        assert clock.unit <= reply["after"] < clock.late(clock.unit)
        assert anyio.current_time() - started >= clock.unit
        await ws.send_json_to({"type": "where"})
        assert await ws.receive_json_from() == {"state": "open.timed_out"}
        await ws.disconnect()
    assert [entry for entry in log if entry[0] == "timeout"] == [("timeout", "waiting", clock.unit)]
    timeouts = [(r.kind, r.event, r.source, r.target, r.accepted, r.handler) for r in records if r.kind == "timeout"]
    assert timeouts == [("timeout", "open.waiting", "open.waiting", "open.timed_out", True, "too_late")]
    clock.check_wall_time()


async def test_leaving_the_state_cancels_its_timeout(clock: Clock) -> None:
    log: list[Any] = []
    records: list[TransitionRecord] = []
    async with communicator(state_timeout_actor(clock.unit), clock, log=log, records=records) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "leave"})
        assert await ws.receive_json_from() == {"left": "open.waiting"}
        await ws.receive_nothing(3 * clock.unit)
        await ws.send_json_to({"type": "back"})  # entering again arms it again
        reply = await ws.receive_json_from()
        assert reply["timeout"] == "waiting"
        assert reply["after"] >= clock.unit
        await ws.disconnect()
    assert log == [("timeout", "waiting", clock.unit)]
    assert timer_events(records) == [("timeout", "open.waiting", "open.waiting", True)]
    clock.check_wall_time()


async def test_external_self_transition_restarts_the_timeout(clock: Clock) -> None:
    log: list[Any] = []
    async with communicator(state_timeout_actor(clock.unit), clock, log=log) as ws:
        assert (await ws.connect()).accepted
        first_entry = anyio.current_time()
        await anyio.sleep(0.4 * clock.unit)
        await ws.send_json_to({"type": "again"})
        assert await ws.receive_json_from() == {"again": "open.waiting"}
        # the next message is the restarted timeout: the first deadline passed without one
        reply = await ws.receive_json_from()
        assert reply["timeout"] == "waiting"
        assert reply["after"] >= clock.unit  # measured from the re-entry
        assert anyio.current_time() - first_entry >= 1.4 * clock.unit
        await ws.disconnect()
    assert [entry for entry in log if entry[0] == "timeout"] == [("timeout", "waiting", clock.unit)]
    clock.check_wall_time()


async def test_timeout_due_during_a_handler_that_leaves_is_dropped(clock: Clock) -> None:
    """The timeout falls due while a handler runs; the handler leaves the state: no timeout event."""
    log: list[Any] = []
    records: list[TransitionRecord] = []
    async with communicator(state_timeout_actor(clock.unit), clock, log=log, records=records) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "slow"})
        assert await ws.receive_json_from() == {"slow": "done"}
        await ws.send_json_to({"type": "where"})
        assert await ws.receive_json_from() == {"state": "open.other"}
        await ws.receive_nothing(2 * clock.unit)
        await ws.disconnect()
    assert log == []
    assert timer_events(records) == []  # not even as a rejected event
    clock.check_wall_time()


async def test_stale_timeout_of_a_reentered_state_is_dropped(clock: Clock) -> None:
    """Re-entering re-arms the timeout: the old arming, due during the handler, is dropped."""
    log: list[Any] = []
    records: list[TransitionRecord] = []
    async with communicator(state_timeout_actor(clock.unit), clock, log=log, records=records) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "slow_again"})
        assert await ws.receive_json_from() == {"slow_again": "done"}
        reply = await ws.receive_json_from()
        assert reply["timeout"] == "waiting"
        assert reply["after"] >= clock.unit
        await ws.disconnect()
    assert log == [("timeout", "waiting", clock.unit)]
    assert timer_events(records) == [("timeout", "open.waiting", "open.waiting", True)]
    clock.check_wall_time()


# -- the idle timeout -------------------------------------------------------------------------------------


@functools.cache
def idle_actor(unit: float) -> type[Base]:
    class Idle(Base):
        idle_timeout = unit
        chatting = State()
        asleep = State()

        @on.client("ping", source=chatting)
        async def ping(self, event: dict[str, Any]) -> None:
            self.log.append(("ping", anyio.current_time()))

        @on.idle(source=chatting, target=asleep)
        async def idle(self, event: Timeout) -> None:
            self.log.append(("idle", anyio.current_time()))
            await self.send_json({"idle": event.name, "seconds": event.seconds})

        @on.client("wake", source=asleep, target=chatting)
        async def wake(self, event: dict[str, Any]) -> None:
            await self.send_json({"awake": True})

    return Idle


async def test_idle_timeout_fires_for_a_silent_client(clock: Clock) -> None:
    async with communicator(idle_actor(clock.unit), clock, log=[]) as ws:
        assert (await ws.connect()).accepted
        started = anyio.current_time()
        assert await ws.receive_json_from() == {"idle": "idle", "seconds": clock.unit}
        assert anyio.current_time() - started >= clock.unit
        await ws.disconnect()
    clock.check_wall_time()


async def test_idle_timeout_is_reset_by_every_event(clock: Clock) -> None:
    log: list[Any] = []
    async with communicator(idle_actor(clock.unit), clock, log=log) as ws:
        assert (await ws.connect()).accepted
        for _ in range(5):  # 1.5 idle periods of activity
            await anyio.sleep(0.3 * clock.unit)
            await ws.send_json_to({"type": "ping"})
        await ws.send_json_to({"type": "where"})
        assert await ws.receive_json_from() == {"state": "open.chatting"}
        assert await ws.receive_json_from() == {"idle": "idle", "seconds": clock.unit}
        # the idle event itself does not re-arm the idle timeout: it fires once
        await ws.receive_nothing(3 * clock.unit)
        await ws.send_json_to({"type": "wake"})
        assert await ws.receive_json_from() == {"awake": True}
        assert await ws.receive_json_from() == {"idle": "idle", "seconds": clock.unit}
        await ws.disconnect()
    pings = [at for kind, at in log if kind == "ping"]
    idles = [at for kind, at in log if kind == "idle"]
    assert len(pings) == 5
    assert len(idles) == 2
    assert idles[0] - pings[-1] >= clock.unit
    clock.check_wall_time()


# -- named timers ---------------------------------------------------------------------------------------------


@functools.cache
def timer_actor(unit: float) -> type[Base]:
    class Timers(Base):
        ticking = State()
        started: ClassVar[dict[str, float]] = {}

        @on.client("start")
        async def start(self, event: dict[str, Any]) -> None:
            self.start_timer(event["name"], event["units"] * unit)
            self.started[event["name"]] = anyio.current_time()

        @on.client("cancel")
        async def cancel(self, event: dict[str, Any]) -> None:
            self.cancel_timer(event["name"])

        @on.client("slow_restart")
        async def slow_restart(self, event: dict[str, Any]) -> None:
            await anyio.sleep(2 * unit)  # "tick", started for 1 unit, falls due meanwhile
            self.start_timer("tick", unit)
            self.started["tick"] = anyio.current_time()
            await self.send_json({"restarted": "tick"})

        @on.timer("tick")
        async def tick(self, event: Timeout) -> None:
            await self.timer(event)

        @on.timer("tock")
        async def tock(self, event: Timeout) -> None:
            await self.timer(event)

        async def timer(self, event: Timeout) -> None:
            after = anyio.current_time() - self.started[event.name]
            self.log.append(("timer", event.name))
            await self.send_json({"timer": event.name, "seconds": event.seconds, "after": after})

    return Timers


async def test_named_timers_fire_in_deadline_order(clock: Clock) -> None:
    async with communicator(timer_actor(clock.unit), clock, log=[], started={}) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "start", "name": "tock", "units": 2})
        await ws.send_json_to({"type": "start", "name": "tick", "units": 1})
        first = await ws.receive_json_from()
        second = await ws.receive_json_from()
        assert (first["timer"], first["seconds"]) == ("tick", clock.unit)
        assert first["after"] >= clock.unit
        assert (second["timer"], second["seconds"]) == ("tock", 2 * clock.unit)
        assert second["after"] >= 2 * clock.unit
        await ws.receive_nothing(3 * clock.unit)  # a timer fires once
        await ws.disconnect()
    clock.check_wall_time()


async def test_named_timer_cancel_and_restart(clock: Clock) -> None:
    log: list[Any] = []
    async with communicator(timer_actor(clock.unit), clock, log=log, started={}) as ws:
        assert (await ws.connect()).accepted
        # cancel: never fires
        await ws.send_json_to({"type": "start", "name": "tick", "units": 1})
        await ws.send_json_to({"type": "cancel", "name": "tick"})
        await ws.receive_nothing(3 * clock.unit)
        # restart before it fires: it fires once, a full period after the restart
        await ws.send_json_to({"type": "start", "name": "tick", "units": 2})
        await anyio.sleep(clock.unit)
        await ws.send_json_to({"type": "start", "name": "tick", "units": 2})
        reply = await ws.receive_json_from()
        assert reply["timer"] == "tick"
        assert reply["after"] >= 2 * clock.unit
        await ws.receive_nothing(3 * clock.unit)
        # zero seconds: at once
        await ws.send_json_to({"type": "start", "name": "tock", "units": 0})
        assert (await ws.receive_json_from())["timer"] == "tock"
        await ws.disconnect()
    assert log == [("timer", "tick"), ("timer", "tock")]
    clock.check_wall_time()


async def test_restarting_a_due_timer_drops_the_old_deadline(clock: Clock) -> None:
    log: list[Any] = []
    records: list[TransitionRecord] = []
    async with communicator(timer_actor(clock.unit), clock, log=log, started={}, records=records) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "start", "name": "tick", "units": 1})
        await ws.send_json_to({"type": "slow_restart"})
        assert await ws.receive_json_from() == {"restarted": "tick"}
        reply = await ws.receive_json_from()
        assert reply["timer"] == "tick"
        assert reply["after"] >= clock.unit  # the restarted one, not the stale one
        await ws.receive_nothing(3 * clock.unit)
        await ws.disconnect()
    assert log == [("timer", "tick")]
    assert timer_events(records) == [("timer", "tick", "open.ticking", True)]
    clock.check_wall_time()


# -- closing stops every timer ----------------------------------------------------------------------------------


@functools.cache
def closing_actor(unit: float) -> type[Base]:
    class Closing(Base):
        idle_timeout = unit
        waiting = State(timeout=2 * unit)

        @on.timeout(waiting)
        async def late(self, event: Timeout) -> None:
            await self.send_json({"late": True})

        @on.idle()
        async def idle(self, event: Timeout) -> None:
            await self.send_json({"idle": True})

        @on.timer("tick")
        async def tick(self, event: Timeout) -> None:
            await self.send_json({"tick": True})

        @on.client("close")
        async def close_soon(self, event: dict[str, Any]) -> None:
            self.start_timer("tick", unit / 2)
            await self.close(4000, "bye")

    return Closing


async def test_no_timer_event_after_close(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """After close() the actor waits for the peer; its timers must not fire into 'closing'."""
    records: list[TransitionRecord] = []
    instances: list[Base] = []
    async with communicator(closing_actor(clock.unit), clock, records=records, instances=instances) as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({"type": "close"})
        assert (await ws.receive_close()).code == 4000
        await ws.receive_nothing(5 * clock.unit)  # the peer is slow to acknowledge
        assert instances[0].state == "closing"
        await ws.disconnect(4000)
    assert instances[0].state == "closed"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert timer_events(records) == []
    clock.check_wall_time()


# -- timers armed from an invoked task ------------------------------------------------------------------------


@functools.cache
def task_timer_actor(unit: float) -> type[Base]:
    class TaskTimer(Base):
        working = State(invoke=["work"])

        async def work(self) -> None:
            await anyio.sleep(unit)
            self.start_timer("tick", unit)  # while the actor's loop waits with no deadline
            self.log.append(("armed", anyio.current_time()))
            await anyio.sleep(100 * unit)

        @on.timer("tick")
        async def tick(self, event: Timeout) -> None:
            self.log.append(("tick", anyio.current_time()))
            await self.send_json({"timer": event.name})

    return TaskTimer


async def test_timer_started_by_an_invoked_task_fires(clock: Clock) -> None:
    log: list[Any] = []
    async with communicator(task_timer_actor(clock.unit), clock, log=log) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from(timeout=5 * clock.unit) == {"timer": "tick"}
        await ws.disconnect()
    (_, armed), (_, ticked) = log
    assert clock.unit <= ticked - armed < clock.late(clock.unit)
    clock.check_wall_time()
