"""Recovery of missed messages: how long a reconnecting client waits for 1,000 it missed.

One uvicorn process serves ``recovery_app:app`` (bench/recovery_app.py: a
``JsonWebsocketActor`` that joins a group with ``join_recovering()``) on each layer that
keeps histories; for each round, in this process (asyncio, ``websockets`` client):

1. a client connects with ``?recover=`` and keeps its session token, then leaves;
2. a second client has the server ``group_send`` *N* messages to the group (one frame
   asks for all N) and waits until it has received them itself (so they are all recorded);
3. the first client reconnects with its token and offset: the time from the handshake's
   start until it has all N messages and its new session frame is the **recovery time**;
   the messages are checked: N, in order, no duplicate.

For scale, the same N messages delivered *live* to a connected member (step 2's own
reception, from its request to the last message) are timed too: recovery against plain
fan-out of the same messages to one member, same run.

    .venv/bin/python bench/recovery.py                  # --missed 1000 --rounds 5
    .venv/bin/python bench/recovery.py --layers memory,sqlite,redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

HERE = Path(__file__).resolve().parent
TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(layer: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {
        **os.environ,
        "RECOVERY_LAYER": layer,
        "RECOVERY_DB": str(tmp / "recovery.sqlite3"),
        "RECOVERY_PREFIX": f"bench-recovery-{os.getpid()}",
    }
    command = [sys.executable, "-m", "uvicorn", "recovery_app:app", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=HERE, env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    msg = f"the {layer} server did not listen on 127.0.0.1:{port} within 20 s"
    raise RuntimeError(msg)


async def _until(ws: Any, count: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while len(frames) < count:
            frames.append(json.loads(await ws.recv()))
    return frames


async def one_round(port: int, missed: int) -> tuple[float, float]:
    """(recovery seconds, live fan-out seconds) for *missed* messages."""
    url = f"ws://127.0.0.1:{port}/"
    async with websockets.connect(url + "?recover=", max_size=None) as away:
        session = json.loads(await away.recv())
    async with websockets.connect(url, max_size=None) as sender:
        started = time.perf_counter()
        await sender.send(json.dumps({"burst": missed}))
        live = await _until(sender, missed)
        live_s = time.perf_counter() - started
    started = time.perf_counter()
    query = f"?recover={session['token']}&offset={session['offset']}"
    async with websockets.connect(url + query, max_size=None) as back:
        frames = await _until(back, missed + 1)
        recovery_s = time.perf_counter() - started
    got, resumed = frames[:-1], frames[-1]
    offsets = [frame["offset"] for frame in got]
    first = session["offset"] + 1
    if resumed.get("recovered") is not True or offsets != list(range(first, first + missed)):
        msg = f"recovery went wrong: session {resumed}, offsets {offsets[:3]}…{offsets[-3:]}"
        raise AssertionError(msg)
    if [frame["offset"] for frame in live] != offsets:
        msg = "the live member saw other offsets than the recovered client"
        raise AssertionError(msg)
    return recovery_s, live_s


async def bench_layer(port: int, missed: int, rounds: int) -> dict[str, float]:
    await one_round(port, min(missed, 100))  # warm-up
    recoveries, lives = [], []
    for _ in range(rounds):
        recovery_s, live_s = await one_round(port, missed)
        recoveries.append(recovery_s)
        lives.append(live_s)
    return {
        "recovery_ms": statistics.median(recoveries) * 1000,
        "recovery_max_ms": max(recoveries) * 1000,
        "live_ms": statistics.median(lives) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", default="memory,sqlite,redis")
    args = parser.parse_args()
    print(f"recovery of {args.missed} missed messages, median of {args.rounds} rounds (uvicorn, asyncio)")
    print(f"{'layer':<8} {'recovery ms':>12} {'max ms':>8} {'msgs/s':>9} {'live fan-out ms':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for layer in args.layers.split(","):
            try:
                process, port = _serve(layer, Path(tmp))
            except RuntimeError as exc:
                print(f"{layer:<8} skipped: {exc}")
                continue
            try:
                figures = asyncio.run(bench_layer(port, args.missed, args.rounds))
            except (OSError, AssertionError, TimeoutError) as exc:
                print(f"{layer:<8} failed: {exc!r}")
                continue
            finally:
                process.terminate()
                process.wait(10)
            rate = args.missed / (figures["recovery_ms"] / 1000)
            print(
                f"{layer:<8} {figures['recovery_ms']:>12.1f} {figures['recovery_max_ms']:>8.1f} "
                f"{rate:>9,.0f} {figures['live_ms']:>16.1f}"
            )


if __name__ == "__main__":
    main()
