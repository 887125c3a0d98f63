"""Ask/reply round trips: interlock's ``ask()`` against the same request/reply by hand on channels_redis.

Rows, same run, each *N* sequential round trips after a warm-up (one in flight at a time):

* ``memory``: two actors in this process on an ``InMemoryChannelLayer``: one asks, the
  other's handler answers by returning;
* ``sqlite``: the same two actors on one ``SQLiteChannelLayer`` instance;
* ``sqlite-xproc``: the answering actor in a child process, on the same SQLite file;
* ``redis-xproc``: the same on interlock's ``RedisChannelLayer`` (127.0.0.1:6379);
* ``channels_redis-xproc``: the peer: what a Channels user writes by hand today, a
  request with a ``reply_to`` channel sent with channels_redis' ``RedisChannelLayer`` to
  a child process that ``receive()``s it and sends the answer back.

The actors run under :class:`~interlock.actors.testing.WebsocketCommunicator` (no
sockets): the asker's ``receive_json`` asks and answers the communicator, which times it.
Latency p50/p99 in microseconds and asks per second.

    .venv/bin/python bench/ask.py                  # --asks 2000 --warmup 200
    .venv/bin/python bench/ask.py --only memory,sqlite-xproc
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
from interlock.actors import JsonWebsocketActor, ProtocolTypeRouter, handler
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import GroupLayer, InMemoryChannelLayer, RedisChannelLayer, SQLiteChannelLayer

REDIS = "redis://127.0.0.1:6379/0"

PEER = textwrap.dedent(
    """
    import asyncio, sys
    from channels_redis.core import RedisChannelLayer

    async def main() -> None:
        layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"], prefix=sys.argv[1])
        channel = await layer.new_channel()
        print(channel, flush=True)
        while True:
            request = await layer.receive(channel)
            if request["type"] == "stop":
                return
            await layer.send(request["reply_to"], {"type": "reply", "result": request["n"] * 2})

    asyncio.run(main())
    """
)


class Answerer(JsonWebsocketActor):
    """Answers ``double`` asks by returning; tells the client its channel."""

    async def receive_json(self, content: Any) -> None:
        """Say this actor's channel."""
        await self.send_json({"channel": self.channel_name})

    @handler
    async def double(self, event: dict[str, Any]) -> int:
        """The answer: twice *n*."""
        return int(event["n"]) * 2


class Asker(JsonWebsocketActor):
    """Asks the channel it is given, *count* times, and reports each round trip in µs."""

    async def receive_json(self, content: Any) -> None:
        """Run the asks and send back the timings."""
        times: list[float] = []
        for n in range(content["count"]):
            started = time.perf_counter()
            answer = await self.ask(content["to"], {"type": "double", "n": n}, timeout=10)
            times.append((time.perf_counter() - started) * 1e6)
            if answer != 2 * n:
                msg = f"wrong answer {answer!r} to {n}"
                raise AssertionError(msg)
        await self.send_json({"times": times})


async def _asks(layer: GroupLayer, target: str, count: int) -> list[float]:
    app = ProtocolTypeRouter({"websocket": Asker.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/", timeout=600) as ws:
        await ws.connect()
        await ws.send_json_to({"to": target, "count": count})
        times: list[float] = (await ws.receive_json_from(timeout=600))["times"]
        return times


async def in_process(layer: GroupLayer, asks: int, warmup: int) -> list[float]:
    """Both actors here, on *layer*."""
    app = ProtocolTypeRouter({"websocket": Answerer.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/", timeout=60) as answerer:
        await answerer.connect()
        await answerer.send_json_to({})
        target = (await answerer.receive_json_from())["channel"]
        await _asks(layer, target, warmup)
        return await _asks(layer, target, asks)


def _child(script: str | None, *args: str) -> tuple[subprocess.Popen[str], str]:
    """A child process running *script* (None: this file) with *args*, and its first line."""
    command = [sys.executable, "-c", script] if script is not None else [sys.executable, __file__]
    child = subprocess.Popen([*command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def _stop(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.kill()


async def serve_answerer(kind: str, where: str) -> None:
    """In the child process: one ``Answerer`` on the store, until stdin says stop."""
    layer: GroupLayer = RedisChannelLayer(REDIS, prefix=where) if kind == "redis" else SQLiteChannelLayer(where)
    app = ProtocolTypeRouter({"websocket": Answerer.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(app, "/", timeout=600) as ws:
        await ws.connect()
        await ws.send_json_to({})
        print((await ws.receive_json_from())["channel"], flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
    await layer.close()


async def cross_process(kind: str, where: str, layer: GroupLayer, asks: int, warmup: int) -> list[float]:
    """The answerer in a child process on the same store."""
    child, target = _child(None, "--answer", kind, where)
    try:
        await _asks(layer, target, warmup)
        return await _asks(layer, target, asks)
    finally:
        _stop(child)
        await layer.close()


async def channels_redis_peer(asks: int, warmup: int) -> list[float]:
    """The request/reply a Channels user writes by hand, across two processes."""
    from channels_redis.core import RedisChannelLayer as ChannelsRedis  # noqa: PLC0415 - optional peer

    prefix = f"bench-ask-{secrets.token_hex(4)}"
    child, target = _child(PEER, prefix)
    layer = ChannelsRedis(hosts=[REDIS], prefix=prefix)
    reply_to = await layer.new_channel()
    times: list[float] = []
    try:
        for n in range(warmup + asks):
            started = time.perf_counter()
            await layer.send(target, {"type": "ask", "n": n, "reply_to": reply_to})
            reply = await layer.receive(reply_to)
            if n >= warmup:
                times.append((time.perf_counter() - started) * 1e6)
            if reply["result"] != 2 * n:
                msg = f"wrong answer {reply!r} to {n}"
                raise AssertionError(msg)
        await layer.send(target, {"type": "stop"})
    finally:
        child.wait(10)
    return times


def _report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    rate = len(times) / (sum(times) / 1e6)
    print(f"{name:<22} {p50:>9.0f} {p99:>9.0f} {rate:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--only", default="memory,sqlite,sqlite-xproc,redis-xproc,channels_redis-xproc")
    parser.add_argument("--answer", nargs=2, metavar=("KIND", "WHERE"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.answer:
        anyio.run(serve_answerer, *args.answer)
        return
    rows = args.only.split(",")
    print(f"ask round trips, {args.asks} after {args.warmup} warm-up, one at a time (asyncio)")
    print(f"{'row':<22} {'p50 µs':>9} {'p99 µs':>9} {'asks/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            try:
                if row == "memory":
                    times = anyio.run(in_process, InMemoryChannelLayer(), args.asks, args.warmup)
                elif row == "sqlite":
                    times = anyio.run(in_process, SQLiteChannelLayer(Path(tmp) / "a.sqlite3"), args.asks, args.warmup)
                elif row == "sqlite-xproc":
                    path = str(Path(tmp) / "x.sqlite3")
                    times = anyio.run(cross_process, "sqlite", path, SQLiteChannelLayer(path), args.asks, args.warmup)
                elif row == "redis-xproc":
                    prefix = f"bench-ask-{secrets.token_hex(4)}"
                    layer = RedisChannelLayer(REDIS, prefix=prefix)
                    times = anyio.run(cross_process, "redis", prefix, layer, args.asks, args.warmup)
                elif row == "channels_redis-xproc":
                    times = asyncio.run(channels_redis_peer(args.asks, args.warmup))
                else:
                    print(f"{row:<22} unknown row")
                    continue
            except (ImportError, OSError) as exc:
                print(f"{row:<22} skipped: {exc}")
                continue
            _report(row, times)


if __name__ == "__main__":
    main()
