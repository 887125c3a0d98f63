"""Why a connection ended: what exit hooks and ``disconnect()`` can read in ``self.ending``.

An actor's ``ending`` is None while its connection is live.  It is set once, when the
connection starts ending — before any exit hook of a user state runs — and never changes
afterwards, so a hook tells a teardown from an ordinary transition with
``if self.ending is not None``.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

__all__ = ["SHUTDOWN_CODES", "EndCause", "Ending"]

EndCause = Literal["client", "actor", "lost", "client_error", "error", "shutdown"]
"""``client``: the client closed the connection. ``actor``: the actor called ``close()``
or ``deny()``. ``lost``: a send found the client gone (TCP reset, vanished client).
``client_error``: the client sent data the actor cannot read (``MalformedMessage``).
``error``: a handler raised. ``shutdown``: the server is shutting down."""

SHUTDOWN_CODES: Final = frozenset({1012})
"""Close codes a server reports for its own restart (uvicorn's 1012 on SIGTERM)."""


@attrs.frozen
class Ending:
    """Why and how an actor's connection ended."""

    cause: EndCause
    """Who or what ended it (see :data:`EndCause`)."""
    code: int
    """The close code sent or received (1006 when the connection dropped without one)."""
    error: BaseException | None = attrs.field(default=None, eq=False)
    """The exception, for ``error`` and ``client_error``."""

    @property
    def by_client(self) -> bool:
        """Whether the client ended it: it closed, vanished, or sent what cannot be read."""
        return self.cause in ("client", "lost", "client_error")
