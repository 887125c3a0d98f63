"""Refusing a scope before any actor runs: the answer security middleware gives.

An HTTP request gets a plain-text response of the status. A WebSocket handshake is
refused with an HTTP response of the status where the server offers ASGI's denial
extension and takes it without logging an error, else with ``websocket.close`` before
accept, which servers answer with 403 (see :func:`~interlock.actors._asgi.denial_messages`).
"""

from __future__ import annotations

import anyio
import anyio.lowlevel

from ._asgi import Headers, denial_messages, encode_headers
from ._types import Receive, Scope, Send

__all__ = ["refuse"]

# How long a refusal waits for the server to report the connection gone after a denial.
_DISCONNECT_WAIT = 1.0
# Loop turns given to the server's close callback after it (measured: 0 turns, uvicorn
# logged the error on 100 of 100 refusals behind Starlette's middleware; 3 turns, none).
_SETTLE_TURNS = 3


async def _until_disconnected(receive: Receive) -> None:
    """Wait (briefly) for ``websocket.disconnect`` after a denial response, then let the server settle.

    uvicorn's websockets-sansio protocol logs "ASGI callable returned without completing
    handshake" if the app returns before it has seen its own transport close
    (Kludex/uvicorn#3138); an actor's denial never shows this because its teardown takes
    a few loop turns. Behind host middleware that wraps ``send`` (Starlette's sessions),
    the protocol cannot be recognised, so every denial from here ends like an actor's:
    the disconnect event, then a few checkpoints for the server's close callback.
    """
    with anyio.move_on_after(_DISCONNECT_WAIT):
        while (await receive())["type"] != "websocket.disconnect":
            pass
    for _ in range(_SETTLE_TURNS):
        await anyio.lowlevel.checkpoint()


async def refuse(
    scope: Scope, receive: Receive, send: Send, status: int, reason: str, *, headers: Headers | None = None
) -> None:
    """Answer *scope* (``http`` or ``websocket``) with *status* and *reason* as its body.

    For a WebSocket the handshake event is read first, as ASGI requires; a client that
    left before it (``websocket.disconnect``) gets nothing.
    """
    body = reason.encode()
    if scope["type"] == "websocket":
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        messages = denial_messages(scope, status, body, headers, send=send)
        for message in messages:
            await send(message)
        if messages[0]["type"] != "websocket.close":
            await _until_disconnected(receive)
        return
    encoded = encode_headers(headers)
    encoded += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body, "more_body": False})
