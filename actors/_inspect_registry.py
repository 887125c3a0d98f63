"""The process-wide registry of live actors, and the tap the inspector opens while watched.

Theory of operation
-------------------
What every actor pays, inspector or not: one dict insert when its ``_run`` starts and
one pop when it ends (:data:`LIVE`, keyed by ``id()`` so that an actor class defining
``__eq__`` without ``__hash__`` still registers), and, per mailbox item, one attribute
read of :data:`TAP` (``TAP.watching``) — a few tens of nanoseconds against the
microseconds a handler takes. ``bench/inspector.py`` measures both.

While at least one inspector page or ``interlock inspect --watch`` is connected,
``TAP.watching`` is True and the runtime reports to the tap:

* every mailbox item an actor handles (:meth:`Tap.event`), counted per class and kind
  (client event, layer message) for the message rates;
* every transition record of a state actor (:meth:`Tap.transition`), kept in a bounded
  ring per actor (:data:`RECENT` records, the newest last), dropped at the next summary
  once the actor has left :data:`LIVE`.

When the last watcher leaves, the counts and rings are cleared: nothing is recorded
while nobody watches. This module imports nothing of interlock's, so ``_base`` and
``_machine`` can import it without a cycle.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

__all__ = ["LIVE", "RECENT", "TAP", "Tap"]

LIVE: Final[dict[int, Any]] = {}
"""Every running actor of this process, by ``id()``."""

RECENT: Final = 50
"""Transition records kept per actor while watched."""

# Mailbox item kinds, as _base numbers them (CLIENT, LAYER); the rest count as "other".
_KINDS: Final = ("client", "layer")


class Tap:
    """Where the runtime reports while an inspector watches (one per process: :data:`TAP`)."""

    __slots__ = ("counts", "transitions", "watchers", "watching")

    def __init__(self) -> None:
        self.watching = False
        self.watchers = 0
        self.counts: dict[tuple[str, str], int] = {}
        self.transitions: dict[int, deque[Any]] = {}

    def event(self, actor: object, kind: int) -> None:
        """An actor took one mailbox item of *kind* (0: client event, 1: layer message)."""
        key = (type(actor).__qualname__, _KINDS[kind] if 0 <= kind < len(_KINDS) else "other")
        self.counts[key] = self.counts.get(key, 0) + 1

    def transition(self, actor: object, record: Any) -> None:
        """A state actor's :class:`~interlock.actors.TransitionRecord`."""
        ring = self.transitions.get(id(actor))
        if ring is None:
            ring = self.transitions[id(actor)] = deque(maxlen=RECENT)
        ring.append(record)

    def watch(self) -> None:
        """One more watcher: start recording."""
        self.watchers += 1
        self.watching = True

    def unwatch(self) -> None:
        """One watcher less: the last one stops the recording and clears what it kept."""
        self.watchers = max(self.watchers - 1, 0)
        if self.watchers == 0:
            self.watching = False
            self.counts.clear()
            self.transitions.clear()


TAP: Final = Tap()
"""The tap of this process."""
