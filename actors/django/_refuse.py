"""Answering a connection the server cannot serve because a dependency (the database) failed.

The failure is the server's, so it is reported as one: an HTTP request gets 500, a
WebSocket handshake gets a 500 response where the server offers the denial extension
(and takes it quietly), else it is accepted and closed at once with 1011. Only this
connection is refused; the actor app and the process go on.
"""

from __future__ import annotations

from interlock.actors._asgi import supports_denial
from interlock.actors._types import Receive, Scope, Send

__all__ = ["refuse_with_server_error"]

_BODY = b"Internal Server Error"


async def refuse_with_server_error(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    """Answer *scope* with 500 (HTTP, or a WebSocket denial) or 1011 (a WebSocket close).

    *reason* (at most 123 bytes are sent) goes in the close frame; the log line is the caller's.
    """
    kind = scope.get("type")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(_BODY)).encode())]
    if kind == "http":
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})
        return
    if kind != "websocket":
        return
    first = await receive()
    if first.get("type") != "websocket.connect":
        return  # the client left before its handshake
    if supports_denial(scope, send):
        await send({"type": "websocket.http.response.start", "status": 500, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": _BODY, "more_body": False})
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1011, "reason": reason.encode()[:123].decode(errors="ignore")})
