"""MQTT publish → actor → group → WebSocket client: interlock against mqttasgi + Channels, in one run.

For each stack (``bench/mqtt_apps.py``): its MQTT process and its uvicorn process start on
Redis, ``--members`` WebSocket clients connect, then this process publishes to the
Mosquitto at 127.0.0.1:1883 (QoS 0, as telemetry goes):

1. **Paced**: ``--paced`` messages, one every ``--interval`` seconds; each client records
   the one-way latency of each (machine-wide monotonic clock): p50 and p99.
2. **Burst**: ``--burst`` messages as fast as the publisher goes; messages/s is the count
   one client received over the time from the first publish to its last arrival, and
   what did not arrive within ``--settle`` seconds is reported as lost.

Run (Mosquitto and Redis running)::

    .venv/bin/python bench/mqtt_bridge.py [--paced 300] [--interval 0.02] [--burst 3000] [--members 1]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from interlock.actors.mqtt import MqttConnection
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(stack: str, env: dict[str, str], port: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    if stack == "interlock":
        mqtt = [str(BIN / "interlock"), "mqtt", "mqtt_apps:interlock_mqtt", "--log-level", "WARNING"]
        ws = "mqtt_apps:interlock_ws"
    else:
        mqtt = [str(BIN / "mqttasgi"), "-H", "127.0.0.1", "-p", "1883", "-v", "0", "mqtt_apps:channels_mqtt"]
        ws = "mqtt_apps:channels_ws"
    uvicorn = [str(BIN / "uvicorn"), "--factory", ws, "--port", str(port), "--log-level", "warning"]
    processes = []
    for name, command in (("mqtt", mqtt), ("ws", uvicorn)):
        with (logs / f"{stack}-{name}.log").open("wb") as out:
            processes.append(
                subprocess.Popen(command, cwd=HERE, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
            )
    return processes


async def members(port: int, count: int) -> list[ClientConnection]:
    deadline = time.monotonic() + 20
    while True:
        try:
            return [await connect(f"ws://127.0.0.1:{port}/", max_queue=None) for _ in range(count)]
        except OSError:
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.2)


async def read(ws: ClientConnection, into: dict[str, list[float]]) -> None:
    async for raw in ws:
        now = time.monotonic()
        data = json.loads(raw)
        into.setdefault(data["phase"], []).append(now - data["sent"])
        into.setdefault(data["phase"] + "@", []).append(now)


async def bench(stack: str, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    port = free_port()
    env = {"MQTT_BENCH_PREFIX": f"mqtt-bench-{secrets.token_hex(3)}", "PYTHONPATH": str(HERE)}
    processes = start(stack, env, port, logs)
    topic = f"bench/{stack}/readings"
    try:
        clients = await members(port, args.members)
        received: list[dict[str, list[float]]] = [{} for _ in clients]
        async with MqttConnection("mqtt://127.0.0.1:1883") as publisher, anyio.create_task_group() as tasks:
            for ws, into in zip(clients, received, strict=True):
                tasks.start_soon(read, ws, into)
            # warm up until the MQTT side's subscription is live and the path is hot
            deadline = time.monotonic() + 20
            while len(received[0].get("warm", [])) < 20:
                await publisher.publish(topic, json.dumps({"phase": "warm", "sent": time.monotonic()}))
                await anyio.sleep(0.05)
                if time.monotonic() > deadline:
                    msg = f"{stack}: nothing came through; see {logs}"
                    raise RuntimeError(msg)
            await anyio.sleep(0.5)
            for n in range(args.paced):
                await publisher.publish(topic, json.dumps({"phase": "paced", "n": n, "sent": time.monotonic()}))
                await anyio.sleep(args.interval)
            await anyio.sleep(1.0)
            started = time.monotonic()
            for n in range(args.burst):
                await publisher.publish(topic, json.dumps({"phase": "burst", "n": n, "sent": time.monotonic()}))
            with anyio.move_on_after(args.settle):
                while any(len(r.get("burst", [])) < args.burst for r in received):  # noqa: ASYNC110 - polls counts
                    await anyio.sleep(0.05)
            tasks.cancel_scope.cancel()
        for ws in clients:
            await ws.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
    paced = sorted(x for r in received for x in r.get("paced", []))
    burst_times = received[0].get("burst@", [])
    got = len(burst_times)
    rate = got / (burst_times[-1] - started) if got > 1 else 0.0
    return {
        "stack": stack,
        "p50_ms": statistics.median(paced) * 1000 if paced else float("nan"),
        "p99_ms": paced[int(len(paced) * 0.99) - 1] * 1000 if paced else float("nan"),
        "paced_lost": args.paced * args.members - len(paced),
        "burst_msgs_per_s": rate,
        "burst_lost": args.burst - got,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--paced", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.02, help="50 a second: a pace both stacks keep up with")
    parser.add_argument("--burst", type=int, default=3000)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--stacks", default="interlock,channels")
    args = parser.parse_args()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / "mqtt-bench-logs"
    logs.mkdir(exist_ok=True)
    results = [anyio.run(bench, stack, args, logs) for stack in args.stacks.split(",")]
    print(f"{'stack':<10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'burst msg/s':>12} {'lost':>6}")
    for r in results:
        print(
            f"{r['stack']:<10} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['paced_lost']:>5} "
            f"{r['burst_msgs_per_s']:>12.0f} {r['burst_lost']:>6}"
        )
    if len(results) == 2 and results[1]["burst_msgs_per_s"]:
        ratio = results[0]["burst_msgs_per_s"] / results[1]["burst_msgs_per_s"]
        print(f"throughput ratio interlock/channels: {ratio:.2f}")


if __name__ == "__main__":
    main()
