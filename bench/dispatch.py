"""The dispatch path alone, without a server: µs per message for raw ASGI, the plain and JSON actors, and the DSL's.

Each app gets ``--messages`` text frames from an in-process ``receive`` and answers into
a ``send`` that drops them, so only the per-message work of the app is timed. Run::

    .venv/bin/python bench/dispatch.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from echo_apps import make_dsl, make_interlock, make_json, make_jsondsl, make_raw

FRAME = '{"type": "echo", "data": "hello"}'  # every app echoes it; the JSON ones decode and encode it


async def drive(app: Any, count: int) -> float:
    """Microseconds per echoed message."""
    messages: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    messages += [{"type": "websocket.receive", "text": FRAME}] * count
    messages.append({"type": "websocket.disconnect", "code": 1000})
    feed = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(feed)

    async def send(message: Any) -> None:
        return None

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    start = time.perf_counter()
    await app(scope, receive, send)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    """Time each app and print µs per message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    apps = (
        ("raw ASGI", make_raw),
        ("WebsocketActor", make_interlock),
        ("StateActor", make_dsl),
        ("JsonWebsocketActor", make_json),
        ("JsonStateActor", make_jsondsl),
    )
    for name, factory in apps:
        best = min(asyncio.run(drive(factory(), args.messages)) for _ in range(3))
        print(f"{name:<20} {best:6.2f} µs/message")


if __name__ == "__main__":
    main()
