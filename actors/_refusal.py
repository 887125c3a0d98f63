"""Refusing a scope before any actor runs: the answer security middleware gives.

An HTTP request gets a plain-text response of the status. A WebSocket handshake is
refused with an HTTP response of the status where the server offers ASGI's denial
extension and takes it without logging an error, else with ``websocket.close`` before
accept, which servers answer with 403 (see :func:`~interlock.actors._asgi.denial_messages`).
"""

from __future__ import annotations

from ._asgi import Headers, denial_messages, encode_headers
from ._types import Receive, Scope, Send

__all__ = ["refuse"]


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
        for message in denial_messages(scope, status, body, headers, send=send):
            await send(message)
        return
    encoded = encode_headers(headers)
    encoded += [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body, "more_body": False})
