"""One idle WebSocket connection served in process: what the memory benches count.

``serve_idle(app, waiting, stop)`` calls *app* with a WebSocket scope whose ``receive()``
gives ``websocket.connect``, then, at the next call, runs *waiting* once and waits for
*stop* before giving ``websocket.disconnect``; ``send()`` drops what it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio


async def serve_idle(app: Any, waiting: Callable[[], None], stop: anyio.Event) -> None:
    """Serve one connection of *app* until *stop* is set (see the module)."""
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        waiting()
        await stop.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)
