"""Giving up a client that stopped reading, in process, with a server whose send never returns.

The actor waits on a send to its client while its channel overflows: :data:`_STUCK_SEND`
later it is given up (on trio by cancelling a scope around its loop, on asyncio by
cancelling its own task, then uncancelling it). Whatever the server's send does with the
cancellation, the actor ends once, as the client's fault, and its teardown runs
uncancelled; a cancellation of the server's own still goes through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from interlock.actors import WebsocketActor, _base, handler
from interlock.layers import InMemoryChannelLayer

GROUP = "room"


class Member(WebsocketActor):
    groups = (GROUP,)
    ended: list[tuple[str | None, int, bool]]

    @handler
    async def say(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])

    async def disconnect(self, code: int) -> None:
        await anyio.sleep(0.01)  # the teardown may wait: it runs uncancelled
        ending = self.ending
        self.ended.append((ending.cause if ending else None, code, _still_cancelled()))


def _still_cancelled() -> bool:
    """Whether the running asyncio task still counts a cancellation (never on trio)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0


def connect_then_wait(gone: anyio.Event | None = None) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A server's ``receive()`` that gives ``websocket.connect``, then waits: for ever, or
    until *gone* is set, to give ``websocket.disconnect`` (1006)."""
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        if gone is None:
            await anyio.sleep_forever()
        else:
            await gone.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    return receive


async def overflow(layer: InMemoryChannelLayer) -> None:
    """Send the group ten messages: the member's first send sticks, the rest overflow its channel."""
    for n in range(10):
        await layer.group_send(GROUP, {"type": "say", "text": str(n)})
        await anyio.lowlevel.checkpoint()


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "_STUCK_SEND", 0.05)
    monkeypatch.setattr(_base, "_SLOW_DETACH", 0.2)


async def serve_stuck(swallow: bool) -> tuple[list[tuple[str | None, int, bool]], list[str]]:
    """Run one member whose server never finishes a ``websocket.send``; flood its channel."""
    layer = InMemoryChannelLayer(capacity=2)
    ended: list[tuple[str | None, int, bool]] = []
    sent: list[str] = []
    app = Member.as_asgi(channel_layer=layer)
    joined = anyio.Event()
    gone = anyio.Event()
    receive = connect_then_wait(gone)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "websocket.accept":
            joined.set()
        elif message["type"] == "websocket.send":
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                if not swallow:
                    raise
        elif message["type"] == "websocket.close":
            gone.set()

    Member.ended = ended
    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app, scope, receive, send)
            await joined.wait()
            await anyio.wait_all_tasks_blocked()
            await overflow(layer)
    return ended, sent


@pytest.mark.parametrize("swallow", [False, True], ids=["send-cancelled", "send-swallows-cancellation"])
async def test_a_stuck_send_is_given_up_once_and_the_teardown_runs_uncancelled(
    swallow: bool, anyio_backend: str
) -> None:
    ended, sent = await serve_stuck(swallow)
    assert ended == [("client_error", 4008, False)]  # the close 4008 is tried last
    if anyio_backend == "asyncio" or not swallow:
        # Nothing handled after the give-up but the teardown. (On trio a send that swallows
        # the cancellation returns at once each time, until a checkpoint outside it raises.)
        assert sent.count("websocket.send") == 1
    if swallow:
        assert not _still_cancelled()


async def test_the_servers_own_cancellation_still_goes_through(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("on trio the give-up cancels the nursery's scope: no task count to share with the server")
    layer = InMemoryChannelLayer(capacity=2)
    Member.ended = []
    joined = anyio.Event()
    receive = connect_then_wait()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            joined.set()
        elif message["type"] == "websocket.send":
            task = asyncio.current_task()
            assert task is not None
            try:
                await anyio.sleep_forever()
            except asyncio.CancelledError:
                task.cancel()  # the server shuts down at that very moment
                raise

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    app = Member.as_asgi(channel_layer=layer)
    runner = asyncio.ensure_future(app(scope, receive, send))
    with anyio.fail_after(5):
        await joined.wait()
        await overflow(layer)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.shield(runner)
    assert runner.cancelled()
    assert len(Member.ended) == 1


async def test_a_send_the_server_shields_is_left_and_the_channel_closed_meanwhile(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Hypercorn shields its writes: the give-up cannot cut the send, so it closes the channel first."""
    if anyio_backend == "asyncio":
        pytest.skip("asyncio has no shield a task's cancellation cannot cross (asyncio.shield() leaves the write)")
    layer = InMemoryChannelLayer(capacity=2)
    Member.ended = []
    joined, stuck, detached = anyio.Event(), anyio.Event(), anyio.Event()
    members_while_stuck: list[int] = []

    receive = connect_then_wait()

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            joined.set()
        elif message["type"] == "websocket.send" and not stuck.is_set():
            stuck.set()
            with anyio.CancelScope(shield=True):  # the write goes on, cancelled or not
                with anyio.move_on_after(2):
                    await detached.wait()
                members_while_stuck.append(len(await layer.group_members(GROUP)))

    def on_warning() -> None:
        if any("does not let a send" in record.getMessage() for record in caplog.records):
            detached.set()

    scope = {"type": "websocket", "path": "/", "headers": [], "subprotocols": [], "client": ("127.0.0.1", 1)}
    app = Member.as_asgi(channel_layer=layer)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(app, scope, receive, send)
            await joined.wait()
            await anyio.wait_all_tasks_blocked()
            await overflow(layer)
            while not detached.is_set():
                on_warning()
                await anyio.sleep(0.01)
    assert members_while_stuck == [0]  # out of its group while its send still waited
    assert [ending[:2] for ending in Member.ended] == [("client_error", 4008)]
