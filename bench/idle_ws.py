"""One idle WebSocket connection served in process: what the memory benches count.

``serve_idle(app, waiting, stop)`` calls *app* with a WebSocket scope whose ``receive()``
gives ``websocket.connect``, then waits for *stop* before giving ``websocket.disconnect``;
``send()`` drops what it gets. *waiting* runs once per connection, when the app takes
``websocket.connect`` (the caller lets the loop settle before it counts).

On asyncio ``receive`` is an :class:`asyncio.Queue`'s ``get``, as Hypercorn and Daphne
hand it to the app (uvicorn's waits on one too), so an interlock actor steps it without a
task of its own, as under those servers (``interlock.actors._pump``); on trio it is a
function awaiting an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import sniffio

CONNECT = {"type": "websocket.connect"}
DISCONNECT = {"type": "websocket.disconnect", "code": 1000}


class _Inbox(asyncio.Queue[dict[str, Any]]):
    """A server's queue of events for one connection; tells when the app took the first one."""

    def __init__(self, taken: Callable[[], None]) -> None:
        super().__init__()
        self._taken: Callable[[], None] | None = taken

    def _get(self) -> dict[str, Any]:
        taken, self._taken = self._taken, None
        if taken is not None:
            taken()
        return super()._get()


_WAITING: dict[anyio.Event, list[_Inbox]] = {}  # a round's stop event -> its connections' queues
_RELEASERS: set[asyncio.Future[None]] = set()


async def _release(stop: anyio.Event, inboxes: list[_Inbox]) -> None:
    """At *stop*, give every connection of the round its ``websocket.disconnect``."""
    await stop.wait()
    del _WAITING[stop]
    for inbox in inboxes:
        inbox.put_nowait(DISCONNECT)


async def serve_idle(app: Any, waiting: Callable[[], None], stop: anyio.Event) -> None:
    """Serve one connection of *app* until *stop* is set (see the module)."""
    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}

    async def send(message: Any) -> None:
        return None

    if sniffio.current_async_library() == "asyncio":
        inbox = _Inbox(waiting)
        inbox.put_nowait(CONNECT)
        inboxes = _WAITING.get(stop)
        if inboxes is None:  # the first connection of this round: one task ends them all
            inboxes = _WAITING[stop] = []
            releaser = asyncio.ensure_future(_release(stop, inboxes))
            _RELEASERS.add(releaser)  # held until it ran
            releaser.add_done_callback(_RELEASERS.discard)
        inboxes.append(inbox)
        await app(scope, inbox.get, send)
        return

    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            waiting()
            return CONNECT
        await stop.wait()
        return DISCONNECT

    await app(scope, receive, send)
