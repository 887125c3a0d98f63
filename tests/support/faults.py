"""Clients that vanish: TCP resets at chosen moments, for fault-injection end-to-end tests.

:meth:`tests.support.wsclient.WSClient.abort` resets an open WebSocket connection;
:func:`reset_during_handshake` resets one before the handshake has completed.
"""

from __future__ import annotations

import contextlib
import socket
import struct

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

__all__ = ["reset", "reset_during_handshake"]


async def reset(stream: anyio.abc.SocketStream) -> None:
    """Close *stream* with a TCP reset (``SO_LINGER`` 0), never a FIN."""
    raw: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    with contextlib.suppress(OSError):  # the peer reset it first
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with anyio.CancelScope(shield=True):
        await stream.aclose()


async def reset_during_handshake(host: str, port: int, target: str, *, after: float, timeout: float = 5) -> bytes:
    """Send a WebSocket upgrade request for *target*, wait *after* seconds, then reset.

    Returns whatever the server answered meanwhile (empty if it had not answered yet),
    read while waiting so the server's writes never block.
    """
    with anyio.fail_after(timeout):
        stream = await anyio.connect_tcp(host, port)
    answer = bytearray()
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        await stream.send(ws.send(Request(host=f"{host}:{port}", target=target)))
        with anyio.move_on_after(after):
            while True:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    await anyio.sleep(after)  # the server hung up: wait out the delay anyway
    finally:
        await reset(stream)
    return bytes(answer)
