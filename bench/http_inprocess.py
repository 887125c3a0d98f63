"""The cost of one HTTP request in process, without a server: raw ASGI against ``HttpActor``.

Each app answers ``{"hello": "world"}``; the loop calls it with a scope, a ``receive``
that returns the request and a ``send`` that drops the messages. Best of three runs of
``--requests`` requests, in µs per request.

Usage::

    .venv/bin/python bench/http_inprocess.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from http_apps import make_interlock_json, make_raw_json
from interlock.actors import Message

SCOPE = {"type": "http", "method": "GET", "path": "/json", "headers": [(b"host", b"bench")], "query_string": b""}
REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> Message:
    return REQUEST


async def send(message: Message) -> None:
    return None


async def per_request(call: Callable[[], Awaitable[None]], count: int) -> float:
    for _ in range(1000):  # warm up
        await call()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            await call()
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    return best


async def main(count: int) -> None:
    for name, app in (("raw ASGI", make_raw_json()), ("interlock HttpActor", make_interlock_json())):
        cost = await per_request(lambda app=app: app(dict(SCOPE), receive, send), count)  # type: ignore[misc]
        print(f"{name:<22}{cost:8.2f} us/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    asyncio.run(main(parser.parse_args().requests))
