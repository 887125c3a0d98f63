"""Random event sequences through a DSL consumer (hypothesis ``RuleBasedStateMachine``).

The sync rules drive an async :class:`WebsocketCommunicator` through an anyio blocking
portal, once on asyncio and once on trio. Invariants:

* the actor is always in exactly one leaf state of its spec (or a built-in state);
* ``closing`` and ``closed`` are final: no event moves the actor back, no handler runs;
* no handler runs in a state it was not declared for;
* once the actor has ended, it is in no group.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any, ClassVar

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from interlock.actors import JsonStateActor, ProtocolTypeRouter, UnhandledPolicy
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import CLOSED, CLOSING, State, on
from interlock.layers import InMemoryChannelLayer

GROUPS = ("everyone", "room")


class Consumer(JsonStateActor):
    """open.lobby (initial, defers note and room.msg) | open.room > seat (initial), standing."""

    groups = ("everyone",)
    lobby = State(defer=["note", "room.msg"])
    room = State(tags=["member"])
    seat = State(parent=room)
    standing = State(parent=room)

    instances: ClassVar[list[Any]] = []
    calls: ClassVar[list[tuple[str, str]]] = []

    async def connect(self) -> None:
        self.instances.append(self)
        await self.accept()

    def called(self, name: str) -> None:
        self.calls.append((name, self.state))

    @on.client("where")
    async def where(self, event: dict[str, Any]) -> None:
        self.called("where")
        await self.send_json({"where": self.state})

    @on.message("sync")
    async def sync(self, event: dict[str, Any]) -> None:
        self.called("sync")
        await self.send_json({"sync": event["n"]})

    @on.client("ping")
    def ping(self, event: dict[str, Any]) -> None:
        self.called("ping")

    @on.client("join", source=lobby, target=room, guard=lambda self, event: event.get("n", 0) % 2 == 0)
    async def join(self, event: dict[str, Any]) -> None:
        self.called("join")

    @on.client("join", source=lobby)
    def join_refused(self, event: dict[str, Any]) -> None:
        self.called("join_refused")

    @on.client("stand", source=seat, target=standing)
    async def stand(self, event: dict[str, Any]) -> None:
        self.called("stand")

    @on.client("sit", source=standing, target=seat)
    async def sit(self, event: dict[str, Any]) -> None:
        self.called("sit")

    @on.client("again", source=seat, target=seat)
    def again(self, event: dict[str, Any]) -> None:
        self.called("again")

    @on.client("leave", source=room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None:
        self.called("leave")

    @on.client("note", source=room)
    async def note(self, event: dict[str, Any]) -> None:
        self.called("note")
        await self.send_json({"note": event.get("n")})

    @on.message("room.msg", source=room)
    async def room_msg(self, event: dict[str, Any]) -> None:
        self.called("room_msg")
        await self.send_json({"room.msg": event.get("n")})

    @on.client("bye", source=room)
    async def bye(self, event: dict[str, Any]) -> None:
        self.called("bye")
        await self.close(4000)

    @on.client("crash", source=standing)
    async def crash(self, event: dict[str, Any]) -> None:
        self.called("crash")
        msg = "the handler failed"
        raise RuntimeError(msg)

    @room.enter
    async def enter_room(self) -> None:
        await self.channel_layer.group_add("room", self.channel_name)

    @room.exit
    async def exit_room(self) -> None:
        await self.channel_layer.group_discard("room", self.channel_name)


SPEC = Consumer.machine
LEAVES = frozenset(path for path, info in SPEC.states.items() if not info.children)
SOURCES: dict[str, set[str]] = {}
for _transition in SPEC.transitions:
    SOURCES.setdefault(_transition.handler, set()).add(_transition.source)
CLIENT_EVENTS = ["where", "ping", "join", "stand", "sit", "again", "leave", "note", "bye", "crash", "bogus", "room.msg"]
LAYER_EVENTS = ["room.msg", "note", "unknown.msg"]


def within(path: str, outer: str) -> bool:
    return path == outer or path.startswith(outer + ".")


class ConsumerMachine(RuleBasedStateMachine):
    """One connection per example; rules are client events, layer messages and a disconnect."""

    backend: ClassVar[str] = "asyncio"

    def __init__(self) -> None:
        super().__init__()
        self.portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal(self.backend)
        self.portal = self.portal_cm.__enter__()
        self.layer = InMemoryChannelLayer()
        self.instances: list[Consumer] = []
        self.calls: list[tuple[str, str]] = []
        self.ws_cm: AbstractContextManager[WebsocketCommunicator] | None = None
        self.ws: WebsocketCommunicator | None = None
        self.ended = False  # closing or closed: the actor must stay there
        self.calls_when_ended = 0
        self.disconnected = False
        self.sync_count = 0
        self.steps = 0

    @property
    def actor(self) -> Consumer:
        return self.instances[0]

    # mostly "ignore", so that invalid events do not end most runs at once
    @initialize(policy=st.sampled_from(["ignore", "ignore", "ignore", "log", "close", "raise"]))
    def connect(self, policy: UnhandledPolicy) -> None:
        app = ProtocolTypeRouter(
            {"websocket": Consumer.as_asgi(instances=self.instances, calls=self.calls, unhandled=policy)},
            channel_layer=self.layer,
        )
        self.ws_cm = self.portal.wrap_async_context_manager(WebsocketCommunicator(app, "/", timeout=5))
        self.ws = self.ws_cm.__enter__()
        assert self.portal.call(self.ws.connect).accepted
        assert self.actor.state == SPEC.initial_leaf

    def outputs_until(self, key: str) -> None:
        """Read what the actor sends until the reply carrying *key*, or a close frame."""
        assert self.ws is not None
        while True:
            message = self.portal.call(self.ws.receive_output)
            if message["type"] == "websocket.close":
                self.end()
                return
            assert message["type"] == "websocket.send"
            if key in json.loads(message["text"]):
                return

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.calls_when_ended = len(self.calls)

    @rule(event=st.sampled_from(CLIENT_EVENTS), n=st.integers(0, 3))
    def client_event(self, event: str, n: int) -> None:
        self.send_client_event(event, n)

    @precondition(lambda self: not self.ended)
    @rule(data=st.data(), n=st.integers(0, 3))
    def valid_client_event(self, data: st.DataObject, n: int) -> None:
        """An event some handler of the current state takes (guards may still refuse it)."""
        state = self.actor.state
        valid = sorted({event for source, kind, event in SPEC.dispatch if source == state and kind == "client"})
        self.send_client_event(data.draw(st.sampled_from(valid), label="event"), n)

    def send_client_event(self, event: str, n: int) -> None:
        assert self.ws is not None
        self.steps += 1
        self.portal.call(self.ws.send_json_to, {"type": event, "n": n})
        if not self.ended and not self.ws.finished:
            if event != "where":  # a "where" event is its own marker: a second one would leave a reply unread
                self.portal.call(self.ws.send_json_to, {"type": "where"})
            self.outputs_until("where")

    @rule(event=st.sampled_from(LAYER_EVENTS), n=st.integers(0, 3))
    def layer_message(self, event: str, n: int) -> None:
        channel = self.actor.channel_name
        assert channel is not None
        self.steps += 1
        if self.ws is None or self.ws.finished:
            return  # the actor's channel is gone
        self.portal.call(self.layer.send, channel, {"type": event, "n": n})
        if not self.ended:
            self.sync_count += 1
            self.portal.call(self.layer.send, channel, {"type": "sync", "n": self.sync_count})
            self.outputs_until("sync")

    @precondition(lambda self: not self.disconnected and self.steps >= 8)
    @rule(code=st.sampled_from([1000, 1001, 1006, 4000]))
    def disconnect(self, code: int) -> None:
        assert self.ws is not None
        self.portal.call(self.ws.disconnect, code)
        self.disconnected = True
        self.end()
        assert self.actor.state == CLOSED

    @invariant()
    def one_leaf_state(self) -> None:
        if self.instances:
            state = self.actor.state
            assert state in LEAVES or state in (CLOSING, CLOSED), state
            if state in (CLOSING, CLOSED):
                self.end()

    @invariant()
    def ended_is_final(self) -> None:
        if self.ended:
            assert self.actor.state in (CLOSING, CLOSED)

    @invariant()
    def handlers_run_where_declared(self) -> None:
        for handler, state in list(self.calls):
            assert any(within(state, source) for source in SOURCES[handler]), (handler, state)

    def teardown(self) -> None:
        try:
            if self.ws is not None and not self.disconnected:
                self.end()
                self.portal.call(self.ws.disconnect, 1000)
            if self.instances:
                assert self.actor.state == CLOSED
                assert len(self.calls) == self.calls_when_ended, self.calls[self.calls_when_ended :]
                for group in GROUPS:
                    assert self.portal.call(self.layer.group_members, group) == frozenset(), group
        finally:
            if self.ws_cm is not None:
                self.ws_cm.__exit__(None, None, None)
            self.portal_cm.__exit__(None, None, None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_random_event_sequences(backend: str) -> None:
    machine = type(f"ConsumerMachine_{backend}", (ConsumerMachine,), {"backend": backend})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
