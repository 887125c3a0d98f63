"""The generic actor: every event goes to the handler its ``type`` names.

This is the shape of Channels' ``AsyncConsumer``/``SyncConsumer`` and of background
workers served by :class:`~interlock.actors.ChannelNameRouter`: the server's event
``websocket.connect`` calls ``websocket_connect``, a layer message ``thumbnail.make``
calls ``thumbnail_make`` if it is marked :func:`~interlock.actors.handler`, and
``send()`` takes raw ASGI messages.

In a worker (a ``channel`` scope, see :func:`~interlock.actors.run_worker`) a handler's
exception is logged and the actor goes on with the next message: one bad message must
not leave the channel unserved.  What does end a worker — ``StopActor``, its channel's
``receive()`` failing — is raised out of the app, so ``run_worker`` can say so.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ._base import BaseActor, Flush, library_class, logger
from ._errors import StopActor
from ._mailbox import CLIENT, LAYER
from ._types import Message, Receive, Scope, Send

__all__ = ["Actor"]

_SHOWN_CHARS = 200  # of a failed message's repr in the log: enough to recognise it, never a whole payload


def _short_repr(message: object) -> str:
    text = repr(message)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}… ({len(text)} chars)"


@library_class
class Actor(BaseActor):
    """An actor that dispatches every event by type and sends raw ASGI messages.

    The actor stops after handling ``websocket.disconnect`` or ``http.disconnect``, or
    when a handler raises :class:`~interlock.actors.StopActor`.  Served by
    :func:`~interlock.actors.run_worker`, a handler's exception is logged and the worker
    goes on serving; ``StopActor`` stops the worker, and ``run_worker`` raises
    :class:`~interlock.actors.WorkerStopped`.
    """

    _stop_request: StopActor | None = None

    def send(self, message: Mapping[str, Any]) -> Flush:
        """Send a raw ASGI message (``{"type": "websocket.accept"}`` …) to the server."""
        if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
            msg = f"send() takes an ASGI message: a mapping with a str 'type', not {message!r}"
            raise TypeError(msg)
        return self._emit(dict(message))

    async def _started(self) -> None:
        await self._join_groups()

    async def _on_client_event(self, message: Message) -> bool:
        if self._serves_worker():  # a worker's events are its channel's messages
            await self.dispatch(message)
        else:  # the server's own events: websocket.connect calls websocket_connect
            name = self._handler_for(message.get("type"), self._methods)
            if name is not None:
                await self._call(name, message)
        # A worker's "client" is its channel: a message typed "websocket.disconnect" is
        # just a message there, and must not end the worker.
        return message.get("type") in self._terminal_events and not self._serves_worker()

    # -- as a worker ---------------------------------------------------------------------

    def _serves_worker(self) -> bool:
        return self.scope.get("type") == "channel"

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super()._run(scope, receive, send)
        if scope.get("type") != "channel":
            return
        # A worker serves until cancelled (a cancellation propagated above): it ended, say why.
        if self._stop_request is not None:
            raise self._stop_request
        ending = self.ending
        if ending is not None and ending.error is not None:
            raise ending.error

    async def _handler_failed(self, exc: Exception, kind: int, payload: Any) -> bool:
        """In a worker, log a message's failure and go on serving (False); else fail the actor."""
        if kind not in (CLIENT, LAYER) or not self._serves_worker():
            return await super()._handler_failed(exc, kind, payload)
        self._outbox.clear()  # what the failed handler recorded must not go out with the next message
        message_type = payload.get("type") if isinstance(payload, Mapping) else None
        channel = self.scope.get("channel") if kind == CLIENT else self.channel_name
        logger.error(
            "%r failed on a %r message from channel %r and goes on serving: %s: %s; the message: %s",
            self,
            message_type,
            channel,
            type(exc).__name__,
            exc,
            _short_repr(payload),
            exc_info=exc,
        )
        return False

    async def _stopped(self) -> None:
        if self._serves_worker():  # called while _handle catches the handler's StopActor
            raised = sys.exc_info()[1]
            self._stop_request = raised if isinstance(raised, StopActor) else StopActor()
        await super()._stopped()
