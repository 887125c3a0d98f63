"""What the HTTP benchmarks share: a uvicorn subprocess on 127.0.0.1 and raw HTTP/1.1 sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """``uvicorn http_apps:make_<name> --factory`` (default loop and HTTP parser, no access log)."""

    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        cmd = [
            sys.executable, "-m", "uvicorn", f"http_apps:make_{name}", "--factory",
            "--host", HOST, "--port", str(self.port), "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(BENCH_DIR))
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=BENCH_DIR)
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn for {name} exited: {self.logs()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn for {name} is not listening: {self.logs()}") from None
                time.sleep(0.05)

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def logs(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@contextlib.contextmanager
def running(name: str) -> Iterator[Server]:
    server = Server(name)
    try:
        yield server
    finally:
        server.stop()


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, target: str, body: bytes = b""
) -> tuple[int, bytes]:
    """One request on a keep-alive connection; the response must have a Content-Length."""
    head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    writer.write(head + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    status = int(raw[9:12])
    length = 0
    for line in raw.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length) if length else b""
