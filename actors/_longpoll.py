"""Long-polling: hold a request until a layer message arrives or ``poll_timeout`` passes.

Theory of operation
-------------------
``handle(body)`` runs first (join a group there, or list ``groups``; answer an error with
``send_response`` or :class:`~interlock.actors.HttpError`). If it left the response
unstarted, the actor waits in ``responding``: the wait is a deadline of the actor's own
loop, so no task or sleep is involved.

* A layer message is collected (``poll_item(message)`` turns it into what the client
  gets, by default the message itself). The answer goes out once the mailbox holds
  nothing more, so a burst that arrived together is answered together (at most
  ``max_messages``): ``200`` with ``{"messages": [...]}``.
* Nothing by ``poll_timeout``: ``204 No Content``; the client polls again.
* The client leaving during the wait ends the actor at once (``gone``): ``disconnect()``
  runs, its groups are left — what Channels' long-poll consumers never notice.

Messages sent while no request of a client is waiting reach nobody: a client that must not
miss any asks with a cursor (``?since=<id>``) that ``handle()`` answers from storage first.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable
from typing import Any, ClassVar

import anyio
from interlock.dsl.http import RESPONDING

from ._base import Flush, inline, library_class
from ._http import HttpActor
from ._types import Message

__all__ = ["LongPollActor"]


@library_class
class LongPollActor(HttpActor):
    """An HTTP actor that answers with the next layer messages, or 204 after ``poll_timeout``."""

    watch_client: ClassVar[bool] = True

    poll_timeout: ClassVar[float] = 30.0
    """Seconds a request waits for a message before it is answered 204 No Content."""

    max_messages: ClassVar[int] = 100
    """The most messages one answer carries; the rest wait for the next poll (in the channel)."""

    _poll_due: float = math.inf

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        timeout = self.poll_timeout
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            msg = f"{type(self).__qualname__}.poll_timeout = {timeout!r}: expected a positive number of seconds"
            raise ValueError(msg)
        self.messages: list[Any] = []
        """What the answer will carry, collected so far."""

    @inline
    def handle(self, body: bytes) -> Awaitable[None] | None:
        """Called before the wait (join a group here); answering here ends the poll at once."""
        return None

    def poll_item(self, message: Message) -> Any:
        """What the client gets for a layer *message* (by default the message, as JSON).

        ``def`` (run on the event loop: keep it quick) or ``async def``.
        """
        return dict(message)

    async def _poll_item(self, message: Message) -> Any:
        item = self.poll_item(message)
        return await item if inspect.isawaitable(item) else item

    async def _request_handled(self) -> None:
        if self.response_state == RESPONDING:
            self._poll_due = anyio.current_time() + self.poll_timeout

    def _next_deadline(self) -> float:
        return self._poll_due if self.response_state == RESPONDING else math.inf

    async def _on_internal(self, payload: Any) -> bool:
        if payload is None and self.response_state == RESPONDING and anyio.current_time() >= self._poll_due:
            await self._reply()
        return False

    def _reply(self) -> Flush:
        messages, self.messages = self.messages, []
        if not messages:
            return self.send_response(204, b"")
        return self.send_json({"messages": messages})

    async def dispatch(self, message: Message) -> None:
        """Collect a layer message for the answer (before ``handle()`` ran: held until then)."""
        if not self._handled:
            await super().dispatch(message)
            return
        if self.response_state != RESPONDING:
            return  # answered already: the message waits for nobody
        self.messages.append(await self._poll_item(message))
        if not len(self._mailbox) or len(self.messages) >= self.max_messages:
            await self._reply()  # else more is queued: the burst is answered together
