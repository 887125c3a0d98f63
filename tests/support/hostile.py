"""Clients that misbehave at the socket level, and how to watch a server meanwhile."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Awaitable, Callable

import anyio
import psutil
import pytest

from tests.support.servers import RunningServer


def stuck_socket(server: RunningServer, path: str) -> socket.socket:
    """Open a WebSocket by hand on a socket with a tiny receive buffer, which is never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((server.host, server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def masked_text_frame(text: str) -> bytes:
    """One client text frame (short payloads only)."""
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def rss(server: RunningServer) -> int:
    """The server's resident memory, its worker processes included."""
    process = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    """Poll *predicate* (an HTTP probe of the server) until it holds."""
    deadline = anyio.current_time() + timeout
    while anyio.current_time() < deadline:
        if await predicate():
            return
        await anyio.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout} s")
