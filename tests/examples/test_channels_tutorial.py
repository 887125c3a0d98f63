"""Channels' typed tutorial consumer (examples/channels_tutorial.py): two members of a room chat."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from interlock.actors.testing import WebsocketCommunicator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def tutorial() -> object:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import channels_tutorial  # noqa: PLC0415 - an example, importable from examples/
    finally:
        sys.path.remove(str(EXAMPLES))
    return channels_tutorial


async def test_two_members_of_a_room_hear_each_other(tutorial: object) -> None:
    application = tutorial.application  # type: ignore[attr-defined]
    async with (
        WebsocketCommunicator(application, "/ws/chat/lobby/") as a,
        WebsocketCommunicator(application, "/ws/chat/lobby/") as b,
    ):
        assert (await a.connect()).accepted
        assert (await b.connect()).accepted
        await a.send_to(text_data=json.dumps({"message": "hello"}))
        assert await a.receive_json_from() == {"message": "hello"}
        assert await b.receive_json_from() == {"message": "hello"}
        await a.disconnect()
        await b.disconnect()
    assert await application.channel_layer.groups() == {}


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ([("Host", "chat.test:8000"), ("Origin", "http://chat.test:8000")], True),
        ([("Host", "chat.test:8000"), ("Origin", "http://evil.example")], False),
        ([("Host", "chat.test:8000"), ("Origin", "null")], False),
        ([("Host", "chat.test:8000")], True),  # no Origin: not a browser
    ],
)
async def test_origin_is_checked_as_in_the_tutorial(
    tutorial: object, headers: list[tuple[str, str]], accepted: bool
) -> None:
    application = tutorial.application  # type: ignore[attr-defined]
    async with WebsocketCommunicator(application, "/ws/chat/lobby/", headers=headers) as ws:
        handshake = await ws.connect()
        assert handshake.accepted is accepted
        if accepted:
            await ws.disconnect()
        else:
            assert handshake.status == 403
    assert await application.channel_layer.groups() == {}
