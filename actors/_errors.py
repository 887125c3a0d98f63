"""Errors of the actor runtime, sorted by whose fault they are.

* The application's: :class:`~interlock.dsl.IllegalTransition` (an operation the
  lifecycle state forbids), :class:`UnknownMessageType`, ``TypeError``/``ValueError``
  for bad arguments.
* The peer's: :class:`MalformedMessage` (the client sent data the actor cannot read);
  the runtime closes the connection with the error's close code.
* Nobody's: :class:`ClientGone` (a send found the client gone), which ends the actor
  as a disconnect does, not as a failure.
* Control flow: :class:`StopActor` and :class:`DenyConnection`, raised by handlers.
* Conversations: :class:`AskError` and its kinds, raised by ``ask()`` when no reply comes.
"""

from __future__ import annotations

__all__ = [
    "AskDeadlock",
    "AskError",
    "AskFailed",
    "AskTimeout",
    "ClientGone",
    "ClientTooSlow",
    "DenyConnection",
    "MalformedMessage",
    "NoChannelLayer",
    "PeerGone",
    "RouteNotFound",
    "StopActor",
    "UnknownMessageType",
]


class StopActor(Exception):
    """Raise from a handler to stop the actor cleanly (Channels' ``StopConsumer``)."""


class DenyConnection(Exception):
    """Raise from ``connect()`` to refuse the WebSocket handshake with HTTP 403."""


class UnknownMessageType(ValueError):
    """A message's ``type`` names no handler of the actor, or names a private one."""

    def __init__(self, actor: str, message_type: object, reason: str) -> None:
        self.message_type = message_type
        super().__init__(f"{actor} cannot handle message type {message_type!r}: {reason}")


class MalformedMessage(ValueError):
    """The peer sent data the actor cannot read; the connection closes with ``close_code``."""

    def __init__(self, text: str, close_code: int = 1007) -> None:
        self.close_code = close_code
        super().__init__(text)


class RouteNotFound(ValueError):
    """No route of a :class:`~interlock.actors.URLRouter` matched the path."""

    def __init__(self, path: str, tried: list[str]) -> None:
        self.path = path
        self.tried = tried
        listed = ", ".join(repr(t) for t in tried) or "no routes"
        super().__init__(f"no route matches path {path!r} (tried {listed})")


class ClientGone(ConnectionError):
    """A send found the connection already gone (the server raised an ``OSError``).

    The ASGI spec has servers raise an ``OSError`` subclass (uvicorn's
    ``ClientDisconnected``) when an app sends to a client that left; interlock raises
    this instead, with the server's error as ``__cause__``.  Left uncaught, it ends the
    actor the way a disconnect does: exit hooks, ``disconnect(1006)``, groups left,
    nothing logged as a failure.
    """


class ClientTooSlow(ClientGone):
    """The client stopped taking what the actor sends: the connection is given up.

    Raised by a send that waited longer than the actor's ``send_timeout``, and the
    reason in ``self.ending.error`` when the actor's channel overflowed while it waited
    for the client to take a send.  Left uncaught, it ends the actor as the client's
    fault (``Ending.cause == "client_error"``); a WebSocket actor tries to close with
    ``overflow_close_code`` (4008) first, briefly, since the client is not reading.
    """


class NoChannelLayer(AttributeError):
    """``channel_layer`` or ``channel_name`` was read on an actor that runs without a layer."""

    def __init__(self, actor: str, attribute: str) -> None:
        self.attribute = attribute
        super().__init__(
            f"{actor} has no {attribute}: it runs without a channel layer; pass channel_layer= to "
            "ProtocolTypeRouter(...) or to as_asgi(...), or check with getattr(self, "
            f"{attribute!r}, None)"
        )


class AskError(Exception):
    """An ``ask()`` got no reply: the subclass says why."""


class AskTimeout(AskError, TimeoutError):
    """No reply came within the ask's timeout."""


class PeerGone(AskError):
    """The asked channel is gone (closed, unknown, or its process's lease ended) before it replied."""

    def __init__(self, text: str, reason: str) -> None:
        self.reason = reason
        super().__init__(text)


class AskFailed(AskError):
    """The asked actor's handler failed (or it has none for the message): ``error_type`` names it."""

    def __init__(self, text: str, error_type: str, error_message: str) -> None:
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(text)


class AskDeadlock(AskError):
    """The asked actor was itself waiting for a reply from the asker: both would wait for ever."""
