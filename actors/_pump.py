"""The client pump on asyncio without a task of its own: the server's ``receive()``, driven by callbacks.

An actor in mailbox mode must hear its client while it waits on its mailbox, so something
awaits the server's ``receive()`` for it and posts each event.  A task does that on trio
(see :mod:`._taskset`); on asyncio a task, its coroutine frame and its entry in asyncio's
set of tasks cost about a kilobyte per connection, the largest part of what an idle actor
adds to a bare ASGI app.  :class:`ClientPump` does the same work with one small object:
it steps the coroutine ``receive()`` returns, as a task steps its coroutine, from the done
callback of the future it waits on.

Rules:

1. **Only a ``receive`` known to need no task.**  Code stepped here runs with no current
   task: ``asyncio.current_task()`` is None, so ``asyncio.timeout()`` or an anyio cancel
   scope inside ``receive()`` would fail.  :func:`steps_without_task` accepts the
   ``receive`` of uvicorn's protocols and an :class:`asyncio.Queue`'s ``get`` (Hypercorn,
   Daphne, asgiref's communicator), which only wait on asyncio futures; any other
   ``receive`` (a middleware's wrapper, a test harness) gets a task, as on trio.
2. **A task's semantics.**  Each step runs in a copy of the actor's context, a future
   yielded is waited on through its done callback, a bare ``yield`` steps again on the
   loop's next round, and :meth:`ClientPump.stop` cancels the future waited on, so the
   coroutine gets :class:`asyncio.CancelledError` at its ``await``, as ``Task.cancel()``
   would deliver it.
3. **Backpressure as before.**  An event that finds the mailbox full is held until the
   actor takes an item (the mailbox's ``on_room`` callback), then posted; nothing more is
   received meanwhile, so the server stops reading the socket.
4. **Events up to the last one.**  The pump stops after a terminal event
   (``websocket.disconnect`` …); the exception of a failing ``receive()`` is handed to
   ``on_error`` (the actor fails when its mailbox reaches it), like the task's would be.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from ._mailbox import CLIENT
from ._types import Message, Receive

if TYPE_CHECKING:
    from ._base import BaseActor

__all__ = ["ClientPump", "steps_without_task"]

# uvicorn's protocols, whose receive() waits on an asyncio.Event or asyncio.Queue only
_TASKLESS_MODULES: Final = frozenset(
    {
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "uvicorn.protocols.websockets.websockets_impl",
        "uvicorn.protocols.websockets.wsproto_impl",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.protocols.http.httptools_impl",
    }
)
_QUEUE_GET: Final = asyncio.Queue.get


def steps_without_task(receive: Callable[..., object]) -> bool:
    """Whether *receive* may be stepped by a :class:`ClientPump` (rule 1 of the module)."""
    func = getattr(receive, "__func__", None)
    if func is None:
        return False
    return func is _QUEUE_GET or getattr(func, "__module__", None) in _TASKLESS_MODULES


class ClientPump:
    """Posts the server's events into an actor's mailbox, stepping ``receive()`` from callbacks."""

    __slots__ = (
        "_actor",
        "_context",
        "_coro",
        "_held",
        "_must_cancel",
        "_receive",
        "_stopped",
        "_terminal",
        "_waiting",
    )

    def __init__(self, actor: BaseActor, receive: Receive, terminal: frozenset[str]) -> None:
        """Pump *receive*'s events into *actor*'s mailbox (it has one), up to a type in *terminal*."""
        self._actor = actor  # its mailbox and its _post_failure: no bound method kept per connection
        self._receive = receive
        self._terminal = terminal
        self._context = contextvars.copy_context()
        self._coro: Coroutine[Any, Any, Message] | None = None  # the receive() under way
        self._waiting: asyncio.Future[Any] | None = None  # what it waits on
        self._held: Message | None = None  # an event that found the mailbox full
        self._stopped = False
        self._must_cancel = False  # cancel the coroutine at its next step (stop() found no future to cancel)

    def start(self) -> None:
        """Begin receiving on the loop's next round (as a new task would)."""
        asyncio.get_running_loop().call_soon(self._step, context=self._context)

    def stop(self) -> None:
        """Receive nothing more: cancel the ``receive()`` under way (rule 2), drop a held event."""
        if self._stopped:
            return
        self._stopped = True
        if self._held is not None:
            self._held = None
            self._actor._mailbox.call_on_room(None)
        waiting, self._waiting = self._waiting, None
        if self._coro is not None and (waiting is None or not waiting.cancel()):
            # Stepped soon (a bare yield, or its future done already): it is cancelled then.
            self._must_cancel = True
        # Otherwise the cancelled future's callback steps it: its await raises CancelledError.

    def _wake(self, future: asyncio.Future[Any]) -> None:
        """The future the coroutine waits on is done: step it (its await returns or raises)."""
        if self._waiting is future:
            self._waiting = None
        self._step()

    def _resume(self) -> None:
        """The mailbox has room again (rule 3): post the held event on the loop's next round."""
        asyncio.get_running_loop().call_soon(self._post_held, context=self._context)

    def _post_held(self) -> None:
        held, self._held = self._held, None
        if held is None or self._stopped:
            return
        self._actor._mailbox.put_nowait((CLIENT, held))
        if held.get("type") in self._terminal:
            self._stopped = True
            return
        self._step()

    def _step(self) -> None:
        """Run the coroutine up to its next wait, posting each event it returns (rules 2 to 4)."""
        mailbox = self._actor._mailbox
        limit, terminal, receive = mailbox.limit, self._terminal, self._receive
        coro: Coroutine[Any, Any, Message] | None = self._coro
        error: BaseException | None = None
        while True:
            try:
                if coro is None:
                    if self._stopped:
                        return
                    fresh: Any = receive()  # a coroutine: steps_without_task() knows this receive
                    coro = fresh
                    yielded = fresh.send(None)
                elif self._must_cancel or error is not None:
                    if error is None:
                        self._must_cancel = False
                        error = asyncio.CancelledError()
                    thrown, error = error, None
                    yielded = coro.throw(thrown)
                else:
                    yielded = coro.send(None)
            except StopIteration as done:  # receive() returned: post the event, receive the next
                coro = self._coro = None
                if self._stopped:
                    return
                message: Message = done.value
                if len(mailbox) >= limit:  # rule 3: wait for the actor to take one
                    self._held = message
                    mailbox.call_on_room(self._resume)
                    return
                mailbox.put_nowait((CLIENT, message))
                if message.get("type") in terminal:
                    self._stopped = True
                    return
                continue
            except asyncio.CancelledError:
                self._coro = None
                self._stopped = True
                return
            except Exception as exc:  # noqa: BLE001 - the actor fails when the mailbox reaches it (rule 4)
                self._coro = None
                if not self._stopped:  # not while it is being stopped: the actor ends anyway
                    self._stopped = True
                    self._actor._post_failure(exc)
                return
            # The coroutine waits: on a future (through its callback), or for the loop's next round.
            self._coro = coro
            if yielded is None:
                asyncio.get_running_loop().call_soon(self._step, context=self._context)
                return
            if getattr(yielded, "_asyncio_future_blocking", False):
                yielded._asyncio_future_blocking = False
                self._waiting = yielded
                yielded.add_done_callback(self._wake, context=self._context)
                return
            error = RuntimeError(f"the server's receive() yielded {yielded!r}, not an asyncio future")
