"""The dispatch path of a ``def`` handler alone: µs per message through the worker-thread bridge.

A ``WebsocketActor`` whose ``receive`` is a plain ``def`` echoes ``--messages`` frames from
an in-process ``receive`` into a ``send`` that drops them, so only the per-message work is
timed: the thread hop of :func:`interlock.actors._sync.run_in_worker` and, in a Django project,
the ``close_old_connections()`` around each call. Three modes:

* ``plain``: no Django imported (what every non-Django user pays);
* ``django-idle``: Django configured, the handler touches no database (one guard call on
  each side of the handler, over zero open connections);
* ``django-off``: the same with the guard switched off, to see what the guard itself costs.

Run::

    .venv/bin/python bench/sync_dispatch.py [--messages 20000] [--mode plain|django-idle|django-off]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from interlock.actors import WebsocketActor


class SyncEcho(WebsocketActor):
    def connect(self) -> None:  # a def hook: runs in a worker thread
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=text_data)


async def drive(count: int) -> float:
    """Microseconds per echoed message."""
    messages: list[dict[str, Any]] = [{"type": "websocket.connect"}]
    messages += [{"type": "websocket.receive", "text": "hello"}] * count
    messages.append({"type": "websocket.disconnect", "code": 1000})
    feed = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(feed)

    async def send(message: Any) -> None:
        return None

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    start = time.perf_counter()
    await SyncEcho.as_asgi()(scope, receive, send)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    """Time the sync echo and print µs per message."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--mode", choices=["plain", "django-idle", "django-off"], default="plain")
    args = parser.parse_args()
    if args.mode != "plain":
        from django.conf import settings  # noqa: PLC0415 - only in the Django modes

        settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
        import django  # noqa: PLC0415

        django.setup()
        if args.mode == "django-off":
            from interlock.actors import _sync  # noqa: PLC0415 - the bench switches the guard off

            _sync.disable_connection_guard()
    best = min(asyncio.run(drive(args.messages)) for _ in range(3))
    print(f"{'sync echo (' + args.mode + ')':<28} {best:6.2f} µs/message")


if __name__ == "__main__":
    main()
