"""A server's send that fails because the connection is going: the client's leaving, not the actor's failure.

Hypercorn on trio lets trio's ``BusyResourceError`` out of a send that meets its own
close of the connection (its ``send_eof()`` holds the socket); anyio's and trio's broken
or closed streams and ``OSError`` say the same. The actor ends once, as the connection's
end (``lost``, close code 1006), logs no ERROR and runs ``disconnect()`` once.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest
from interlock.actors import WebsocketActor
from interlock.actors._base import sending_found_client_gone
from interlock.layers import InMemoryChannelLayer


def _errors(backend: str) -> list[Exception]:
    errors: list[Exception] = [OSError("reset"), anyio.BrokenResourceError(), anyio.ClosedResourceError()]
    if backend == "trio":
        import trio  # noqa: PLC0415 - trio's own, on its backend

        errors += [trio.BusyResourceError("another task is currently sending data on this SocketStream")]
        errors += [trio.ClosedResourceError(), trio.BrokenResourceError()]
    return errors


class Echo(WebsocketActor):
    endings: list[tuple[str | None, int]]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)

    async def disconnect(self, code: int) -> None:
        self.endings.append((self.ending.cause if self.ending else None, code))


@pytest.mark.parametrize("layered", [False, True], ids=["direct", "mailbox"])
async def test_a_send_the_closing_connection_refuses_ends_the_actor_as_lost(
    anyio_backend: str, layered: bool, caplog: pytest.LogCaptureFixture
) -> None:
    for error in _errors(anyio_backend):
        Echo.endings = []
        events = [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "hi"}]

        async def receive(events: list[dict[str, Any]] = events) -> dict[str, Any]:
            if events:
                return events.pop(0)
            await anyio.sleep_forever()
            raise AssertionError  # pragma: no cover

        async def send(message: MutableMapping[str, Any], error: Exception = error) -> None:
            if message["type"] == "websocket.send":
                raise error

        layer = InMemoryChannelLayer() if layered else None
        app = Echo.as_asgi(channel_layer=layer)
        scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
        with caplog.at_level(logging.DEBUG, "interlock"), anyio.fail_after(5):
            await app(scope, receive, send)
        assert Echo.endings == [("lost", 1006)], error
        assert not [record for record in caplog.records if record.levelno >= logging.ERROR], error
        caplog.clear()


def test_other_errors_are_the_servers_or_the_actors() -> None:
    assert not sending_found_client_gone(RuntimeError("a bug"))
    assert not sending_found_client_gone(ValueError("BusyResourceError"))

    class BusyResourceError(Exception):  # the name alone, not trio's
        pass

    assert not sending_found_client_gone(BusyResourceError())
