"""Bounds on what a client can make an actor do, and its mistakes reported as its own.

Each case closes with the fitting code and a reason, logs at most one WARNING line with
no traceback, and never looks like a server failure (1011).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import anyio
import pytest
from interlock.actors import JsonWebsocketActor, WebsocketActor, handler
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import InMemoryChannelLayer, SQLiteChannelLayer


class Echo(JsonWebsocketActor):
    async def receive_json(self, content: Any) -> None:
        await self.send_json(content)


class Bytes(WebsocketActor):
    max_message_size = 1000

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


def client_fault_logged(caplog: pytest.LogCaptureFixture) -> None:
    records = [r for r in caplog.records if r.name.startswith("interlock")]
    assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
    assert records[0].exc_info is None
    assert "the client sent malformed data" in records[0].getMessage()


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        ("[" * 100_000, 1007, "malformed JSON: maximum recursion depth exceeded"),
        ('{"message": "\\ud800"}', 1007, "'\\ud800' is half of a character (a lone surrogate)"),
        ('{"message": "\\udfff and more"}', 1007, "'\\udfff' is half of a character"),
        ('"' + "x" * (1 << 20) + '"', 1009, "a text message of 1,048,578 characters is over the limit of 1,048,576"),
        ('"' + "é" * 600_000 + '"', 1009, "a text message of 600,002 characters is over the limit of 1,048,576 bytes"),
    ],
)
async def test_client_mistakes_close_with_their_code(
    caplog: pytest.LogCaptureFixture, text: str, code: int, reason: str
) -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data=text)
        close = await ws.receive_close()
        assert close.code == code
        assert reason in close.reason
    client_fault_logged(caplog)


@pytest.mark.parametrize(
    "text",
    [
        '{"pair": "\\ud83d\\ude00"}',  # an escaped surrogate pair is one character
        '{"path": "C:\\\\udder"}',  # a backslash before a "u", not an escape
        '"' + "é" * 500_000 + '"',  # 1,000,002 bytes of UTF-8: under 1 MiB
    ],
)
async def test_what_looks_close_to_a_mistake_is_served(text: str) -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(text_data=text)
        assert await ws.receive_from()


async def test_the_size_limit_applies_to_bytes_and_can_be_set(caplog: pytest.LogCaptureFixture) -> None:
    async with WebsocketCommunicator(Bytes.as_asgi(), "/") as ws:
        await ws.connect()
        await ws.send_to(bytes_data=b"x" * 1000)
        assert await ws.receive_from() == b"x" * 1000
        await ws.send_to(bytes_data=b"x" * 1001)
        close = await ws.receive_close()
        assert (close.code, close.reason) == (
            1009,
            "a binary message of 1,001 bytes is over the limit of 1,000 bytes (max_message_size)",
        )
    client_fault_logged(caplog)


async def test_no_limit_when_set_to_none() -> None:
    async with WebsocketCommunicator(Bytes.as_asgi(max_message_size=None), "/") as ws:
        await ws.connect()
        await ws.send_to(bytes_data=b"x" * 5000)
        assert await ws.receive_from() == b"x" * 5000


# -- a member whose channel overflows is told -------------------------------------------------


class Slow(WebsocketActor):
    """A room member whose handler waits: its channel fills while it is busy."""

    groups = ("room",)
    gate: anyio.Event | None = None

    @handler
    async def room_say(self, event: dict[str, Any]) -> None:
        assert self.gate is not None
        await self.gate.wait()
        await self.send(text_data=event["text"])


class Resyncing(Slow):
    resyncs: ClassVar[list[int]] = []

    async def channel_overflowed(self, dropped: int) -> None:
        self.resyncs.append(dropped)
        await self.send(text_data=f"resync: lost {dropped}")


@pytest.mark.parametrize("layer_kind", ["memory", "sqlite"])
async def test_a_member_whose_channel_overflows_is_closed_with_4008(
    layer_kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    layer: Any = (
        InMemoryChannelLayer(capacity=3)
        if layer_kind == "memory"
        else SQLiteChannelLayer(tmp_path / "l.sqlite3", capacity=3)
    )
    gate = anyio.Event()
    async with layer, WebsocketCommunicator(Slow.as_asgi(channel_layer=layer, gate=gate), "/") as ws:
        await ws.connect()
        for n in range(10):
            await layer.group_send("room", {"type": "room.say", "text": str(n)})
        gate.set()
        texts = []
        while True:
            message = await ws.receive_output(5)
            if message["type"] == "websocket.close":
                break
            texts.append(message["text"])
        assert message["code"] == 4008
        assert "too slow" in message["reason"]
        assert texts == [str(n) for n in range(len(texts))]  # what arrived came in order, from the start
        await ws.disconnect(4008)
    assert any("its channel was full and lost" in r.getMessage() for r in caplog.records)


async def test_channel_overflowed_can_be_overridden_to_resynchronise() -> None:
    layer = InMemoryChannelLayer(capacity=2)
    gate = anyio.Event()
    Resyncing.resyncs.clear()
    async with WebsocketCommunicator(Resyncing.as_asgi(channel_layer=layer, gate=gate), "/") as ws:
        await ws.connect()
        for n in range(6):
            await layer.group_send("room", {"type": "room.say", "text": str(n)})
        gate.set()
        seen = [await ws.receive_from() for _ in range(3)]
        assert any(isinstance(text, str) and text.startswith("resync: lost") for text in seen), seen
        await ws.disconnect()
    assert len(Resyncing.resyncs) == 1, "a storm of drops is one channel_overflowed() call"
    assert Resyncing.resyncs[0] >= 3
