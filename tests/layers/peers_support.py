"""What the peer-watching tests of every layer share: a recorder of ``on_gone`` calls."""

from __future__ import annotations

import anyio


class Told:
    """Collects on_gone calls and lets a test wait for them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._event = anyio.Event()

    def __call__(self, channel: str, reason: str) -> None:
        self.calls.append((channel, reason))
        self._event.set()

    async def wait(self, timeout: float = 10.0) -> list[tuple[str, str]]:
        with anyio.fail_after(timeout):
            while not self.calls:
                await self._event.wait()
                self._event = anyio.Event()
        return self.calls
