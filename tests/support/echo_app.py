"""A tiny raw ASGI WebSocket echo app for testing the client against real servers.

Behaviour by path:

* ``/deny`` - rejects the handshake by sending ``websocket.close`` before accepting
  (servers answer HTTP 403).
* ``/teapot`` - rejects with a custom HTTP response (418, a header and a body)
  through the ``websocket.http.response`` extension, when the server offers it.
* ``/headers`` - accepts, then sends the request headers as a JSON object.
* anything else - accepts (with the first offered subprotocol, if any) and echoes
  every text/binary message; on the text ``"close"`` it closes with code 4000,
  reason ``"bye"``.

Plain HTTP requests get a 404; lifespan events are acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI 3 connection (lifespan, http or websocket)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _not_found(receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _not_found(receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body", False):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"not found"})


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/teapot" and "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 418,
                "headers": [(b"content-type", b"text/plain"), (b"x-echo", b"teapot")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"short and stout"})
        return
    subprotocols: list[str] = scope.get("subprotocols") or []
    accept: Message = {"type": "websocket.accept"}
    if subprotocols:
        accept["subprotocol"] = subprotocols[0]
    await send(accept)
    if path == "/headers":
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        await send({"type": "websocket.send", "text": json.dumps(headers)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            if text == "close":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                return
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
