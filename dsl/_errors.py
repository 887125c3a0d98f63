"""Errors of the state-machine core (pure: no I/O, no event loop)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["IllegalTransition"]


class IllegalTransition(RuntimeError):
    """The application asked for an operation its actor's current state does not allow.

    This is the caller's mistake (send before accept, accept twice, send after close),
    never the peer's. The message names the operation, the state, what the state allows
    and, where one exists, the usual fix.
    """

    def __init__(self, operation: str, state: str, allowed: Iterable[str], hint: str | None = None) -> None:
        self.operation = operation
        self.state = state
        self.allowed = tuple(sorted(allowed))
        listed = ", ".join(f"{name}()" for name in self.allowed) or "nothing"
        text = f"{operation}() is not allowed in state {state!r}"
        if hint:
            text += f": {hint}"
        text += f" (allowed in {state!r}: {listed})"
        super().__init__(text)
