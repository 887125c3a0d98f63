"""A plain JSON response per request: requests/s and the server's CPU time per request.

For each app of ``http_apps.py`` (raw ASGI, interlock's ``HttpActor`` with ``send_json``,
Starlette's ``JSONResponse``) a uvicorn subprocess serves 127.0.0.1; this process keeps
``--connections`` keep-alive connections to each, and each sends ``--requests`` requests
one at a time (``GET /json``), reading each response before the next. Apps take turns
for ``--rounds`` rounds, interleaved so that whatever else the machine does slows them
alike. Reported per app: the median requests/s of the rounds and the server's CPU time
per request (µs, from the process's CPU time over all rounds).

Usage::

    .venv/bin/python bench/http_json.py [--connections 50] [--requests 200] [--rounds 5]

Loopback only; every phase is bounded in time and the servers are always stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time

from http_common import HOST, Server, request, running

APPS = ("raw", "interlock", "starlette")


async def _client(port: int, count: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for _ in range(count):
            status, body = await request(reader, writer, "GET", "/json")
            assert status == 200, (status, body)
            assert json.loads(body) == {"hello": "world"}, body
    finally:
        writer.close()


async def _round(server: Server, connections: int, requests: int) -> tuple[float, float]:
    cpu = server.cpu_s()
    started = time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(*(_client(server.port, requests) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return connections * requests / elapsed, server.cpu_s() - cpu


async def bench(servers: dict[str, Server], args: argparse.Namespace) -> dict[str, tuple[list[float], float]]:
    figures: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in servers}
    for n in range(args.rounds + 1):  # one warm-up round
        for name, server in servers.items():
            rate, cpu = await _round(server, args.connections, args.requests)
            if n:
                rates, total = figures[name]
                rates.append(rate)
                figures[name] = (rates, total + cpu)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default=",".join(APPS))
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in args.only.split(","):
            try:
                servers[name] = stack.enter_context(running(f"{name}_json"))
            except (ImportError, RuntimeError) as exc:
                print(f"{name}: skipped: {exc}")
        figures = asyncio.run(bench(servers, args))
        for name, server in servers.items():
            if "Traceback" in server.logs():
                print(f"{name}: the server logged a traceback:\n{server.logs()}")
    total = args.connections * args.requests * args.rounds
    raw = figures.get("raw")
    raw_rate = statistics.median(raw[0]) if raw else None
    raw_cpu = raw[1] / total * 1e6 if raw else None
    print(f"JSON per request: {args.connections} connections x {args.requests} requests, {args.rounds} rounds")
    print(f"{'app':<12}{'req/s':>9}{'CPU us/req':>12}{'req/s vs raw':>14}{'CPU vs raw':>12}")
    for name, (rates, cpu_s) in figures.items():
        rate = statistics.median(rates)
        cpu = cpu_s / total * 1e6
        vs_rate = f"{rate / raw_rate:.2f}" if raw_rate else "-"
        vs_cpu = f"{cpu / raw_cpu:.2f}" if raw_cpu else "-"
        print(f"{name:<12}{rate:>9,.0f}{cpu:>12.1f}{vs_rate:>14}{vs_cpu:>12}")


if __name__ == "__main__":
    main()
