"""HTTP state actors: the DSL's states, timeouts, timers and invoked tasks for one request.

Theory of operation
-------------------
An :class:`HttpStateActor` has two machines, each a table:

* **The response** (:data:`interlock.dsl.http.HTTP_LIFECYCLE`, ``self.response_state``):
  ``receiving → responding → streaming → done`` (or ``gone``), checked by every
  ``send_*`` call exactly as on an :class:`~interlock.actors.HttpActor`.
* **The actor's own states** (``self.state``), declared with :mod:`interlock.dsl` and run
  by the same executor as :class:`~interlock.actors.StateActor`'s (``_MachineActor``):
  the request being read is the built-in ``connecting``; once the body is in, the actor
  enters ``open`` and its initial state (enter hooks run, state timeouts are armed,
  invoked tasks start); then the request is the client event ``"request"`` (its payload
  the body) if a handler takes it, else ``handle(body)`` runs. Layer messages are
  ``message`` events; ``@on.timeout``, ``@on.timer``, ``@on.idle``, ``@on.done`` and
  ``@on.error`` work as on WebSocket state actors. Layer messages that arrive while the
  request is being read are deferred, as in ``connecting``.
* **The end.** A finished response (``done``), the client leaving (``gone``), a failure or
  a shutdown ends the actor: every state it is in is exited (innermost first, each exit
  hook once), groups are left and ``disconnect(code)`` runs once, with the status sent
  (0 if none was; ``self.ending`` says why).

A long-poll is the textbook case: a state with a timeout, left by the first message.
Its diagram (Mermaid, DOT or SVG) draws the states inside ``serving``, between the HTTP
lifecycle's ``receiving`` and ``done``/``gone``; in code (``self.state``) the built-in
states keep the WebSocket lifecycle's names (``connecting`` is the request being read,
``open`` the request being answered, ``closed`` the end).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from interlock.dsl.http import LIVE, STREAMING, render_machine

from ._asgi import Headers
from ._base import Flush, inline, library_class
from ._http import HttpExchange
from ._machine import _MachineActor

__all__ = ["HttpStateActor"]


class _Diagram:
    """``Actor.diagram(fmt)``: the states inside ``serving``, the HTTP lifecycle around them."""

    def __get__(self, actor: HttpStateActor | None, owner: type[HttpStateActor]) -> Callable[..., str]:
        spec = owner.machine_spec()
        highlight = actor.state if actor is not None else None

        def diagram(fmt: str = "mermaid") -> str:
            """Render the machine as ``"mermaid"``, ``"dot"`` or ``"svg"`` text."""
            return render_machine(spec, fmt, highlight)

        return diagram


@library_class
class HttpStateActor(HttpExchange, _MachineActor):
    """An HTTP actor whose behaviour is a declared state machine (see :mod:`interlock.dsl`).

    Answer with the same operations as :class:`~interlock.actors.HttpActor`
    (``send_response``, ``send_json``, ``send_headers``, ``send_body``); the request is
    the client event ``"request"`` (or ``handle(body)`` when no handler takes it).
    """

    _takes_request: ClassVar[bool] = False  # a transition handles the client event "request"

    diagram = _Diagram()
    """Draw the machine: its states inside ``serving``, between ``receiving`` and ``done``/``gone``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._needs_mailbox = cls.watch_client or cls.machine.uses_clock
        cls._takes_request = any(t.kind == "client" and t.event == "request" for t in cls.machine.transitions)

    @inline
    def handle(self, body: bytes) -> Awaitable[None] | None:
        """Called with the body once the actor entered its initial state, unless a handler
        takes the client event ``"request"``; by default it does nothing (the states answer)."""
        return None

    @inline
    def disconnect(self, code: int | None = None) -> Awaitable[None] | None:
        """Called once at the end, after the exit hooks, with the status sent (0 if none).

        Override it with this signature: it is both an HTTP actor's ``disconnect()`` and a
        state actor's ``disconnect(code)``.
        """
        return None

    async def _answer(self, body: bytes) -> None:
        self._move("accept")  # the machine: the request is in, enter the initial state
        await self._settle()
        if self.response_state not in LIVE:
            return  # an enter hook answered already
        if self._takes_request:
            await self._event("client", "request", body)
        else:
            await self._call("handle", body)

    async def _finish_teardown(self, ending: Any) -> None:
        await _MachineActor._teardown(self, ending)  # exit hooks, groups, disconnect(code)

    # -- the WebSocket operations an HTTP actor has no use for ---------------------------------------

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> Flush:
        """Not for HTTP: the runtime enters the states once the request is in."""
        msg = f"{type(self).__qualname__} serves HTTP: it has no handshake to accept; answer with send_response()"
        raise TypeError(msg)

    def deny(self, status: int = 403, body: bytes | str = b"", headers: Headers | None = None) -> Flush:
        """Not for HTTP: answer with ``send_response(status, body)``."""
        msg = f"{type(self).__qualname__} serves HTTP: answer with send_response(status, body) instead of deny()"
        raise TypeError(msg)

    def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool | int = False) -> Flush:
        """Not for HTTP: use ``send_body()`` or ``send_response()``."""
        msg = f"{type(self).__qualname__} serves HTTP: send with send_headers()/send_body() or send_response()"
        raise TypeError(msg)

    def close(self, code: int | None = None, reason: str | None = None) -> Flush:
        """End the request now: a stream is finished; an unstarted response is answered 503
        (400 for the client's mistakes, codes 1007-1009), with *reason* as its body.

        The runtime calls it for what closes a WebSocket actor (a client flood, an
        unhandled client event, the channel overflowing).
        """
        state = self.response_state
        if state == STREAMING:
            return self.send_body(b"", more_body=False)
        if state in LIVE:
            status = 400 if code in (1007, 1008, 1009) else 503
            text = f"{reason or 'the request ended'}\n".encode()
            return self.send_response(status, text, {"content-type": "text/plain; charset=utf-8"})
        return Flush(None)
