"""The state actor's direct path: a client frame taken by one plain transition calls its handler at once.

The decision is cached per class, state and *declared* event: a client that invents event
types never grows the cache, and what the direct path does (the handler's answer, the
unhandled policy for the rest, an observer switching it off) is what the full path does.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.actors import JsonStateActor, TransitionRecord
from interlock.actors.testing import WebsocketCommunicator
from interlock.dsl import State, on


class Counter(JsonStateActor):
    unhandled_client = "log"  # an unknown type is logged and skipped, the socket stays open
    counting = State(initial=True)

    @on.client("add", source=counting)
    async def add(self, event: Any) -> None:
        await self.send_json({"added": event.get("n")})


class Observed(Counter):
    seen: list[str] = []  # noqa: RUF012 - one test's record

    def on_transition(self, record: TransitionRecord) -> None:
        type(self).seen.append(record.event)


async def test_invented_event_types_never_grow_the_cache() -> None:
    async with WebsocketCommunicator(Counter.as_asgi(), "/") as client:
        assert (await client.connect()).accepted
        for n in range(200):  # every frame a type of its own, none declared
            await client.send_to(text_data=json.dumps({"type": f"invented-{n}"}))
        await client.send_json_to({"type": "add", "n": 1})
        assert await client.receive_json_from() == {"added": 1}
        await client.send_json_to({"type": "add", "n": 2})
        assert await client.receive_json_from() == {"added": 2}
    assert all(not event.startswith("invented-") for _, _, event in Counter._direct_names)
    assert len(Counter._direct_names) <= 2  # "add" in "counting" (and the lifecycle's own, if any)


async def test_an_observed_class_takes_the_full_path_and_records_each_event() -> None:
    Observed.seen = []
    async with WebsocketCommunicator(Observed.as_asgi(), "/") as client:
        assert (await client.connect()).accepted
        await client.send_json_to({"type": "add", "n": 3})
        assert await client.receive_json_from() == {"added": 3}
    assert "add" in Observed.seen
