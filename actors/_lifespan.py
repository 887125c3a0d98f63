"""ASGI lifespan, and scopes an app does not serve, answered the same way everywhere.

Servers send a ``lifespan`` scope first (uvicorn and hypercorn by default): an app that
ignores it keeps the server from listening.  :func:`serve_lifespan` answers it for
routers and for bare actor apps (``uvicorn module:app`` on ``Echo.as_asgi()``): startup
starts the channel layer, shutdown closes it (which, on the SQLite layer, ends the
process's lease so other processes see its channels gone at once); the inspectors
mounted in a router start answering for the process on that layer, and stop before it
closes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ._types import Receive, Scope, Send

__all__ = ["refuse_scope", "serve_lifespan"]

logger = logging.getLogger("interlock.actors")

_STEPS = {"lifespan.startup": ("startup", "start"), "lifespan.shutdown": ("shutdown", "close")}


async def serve_lifespan(receive: Receive, send: Send, layer: Any = None, services: Iterable[Any] = ()) -> None:
    """Answer ``lifespan.startup`` and ``lifespan.shutdown``, starting and closing *layer*.

    *services* (the inspectors mounted in the app) are started with the layer once it is
    started (``await service.start(layer)``) and stopped before it closes; one that fails
    is logged, and the app serves without it.
    """
    services = list(services)
    while True:
        step = _STEPS.get((await receive())["type"])
        if step is None:
            continue
        phase, method = step
        try:
            if phase == "shutdown":
                await _each(services, "stop")
            action = getattr(layer, method, None) if layer is not None else None
            if action is not None:
                await action()
            if phase == "startup":
                await _each(services, "start", layer)
        except Exception as exc:
            logger.exception("channel layer failed to %s", method)
            message = f"channel layer failed to {method}: {exc}"
            await send({"type": f"lifespan.{phase}.failed", "message": message})
            return
        await send({"type": f"lifespan.{phase}.complete"})
        if phase == "shutdown":
            return


async def _each(services: list[Any], method: str, *args: Any) -> None:
    for service in services:
        try:
            await getattr(service, method)(*args)
        except Exception:
            logger.exception("%r failed to %s; the app serves without it", service, method)


async def refuse_scope(app: str, accepted: Iterable[str], scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a scope of a type *app* does not serve: 426 for plain HTTP, else raise."""
    kinds = sorted(accepted)
    if scope["type"] == "http" and "websocket" in kinds:
        body = f"{app} serves WebSocket connections only; connect with a WebSocket client\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
        ]
        await send({"type": "http.response.start", "status": 426, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    msg = (
        f"{app} serves {kinds!r} scopes, not {scope['type']!r}; route other scope types elsewhere (ProtocolTypeRouter)"
    )
    raise ValueError(msg)
