"""``spawn_system_task``: a background task that outlives its caller and ends with the loop."""

from __future__ import annotations

import anyio
import pytest
from interlock.layers import spawn_system_task

BACKENDS = ["asyncio", "trio"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_task_outlives_its_caller_and_the_loop_cancels_it(backend: str) -> None:
    events: list[str] = []

    async def forever() -> None:
        events.append("started")
        try:
            await anyio.sleep_forever()
        finally:
            events.append("cancelled")

    async def caller() -> None:
        spawn_system_task(forever, "test-forever")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(caller)
        # The caller's task has ended; the background task goes on running.
        for _ in range(100):
            if events:
                break
            await anyio.sleep(0.01)
        assert events == ["started"]

    anyio.run(main, backend=backend)
    assert events == ["started", "cancelled"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_task_is_named(backend: str) -> None:
    names: list[str | None] = []

    async def record() -> None:
        names.append(anyio.get_current_task().name)

    async def main() -> None:
        spawn_system_task(record, "interlock-test-named")
        for _ in range(100):
            if names:
                break
            await anyio.sleep(0.01)

    anyio.run(main, backend=backend)
    assert names == ["interlock-test-named"]


def test_outside_an_event_loop_it_says_so() -> None:
    async def nothing() -> None:
        return None

    with pytest.raises(
        RuntimeError, match=r"spawn_system_task\('never'\) needs a running event loop \(asyncio or trio\)"
    ):
        spawn_system_task(nothing, "never")
