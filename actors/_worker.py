"""Background workers: actors fed from named channels instead of client connections.

Theory of operation
-------------------
:func:`run_worker` starts one task per channel; each runs one instance of the app under a
``{"type": "channel", "channel": name}`` scope whose ``receive()`` reads that channel.

* **A message's failure is the message's.**  :class:`~interlock.actors.Actor` logs a
  handler's exception (ERROR on ``interlock.actors``: the actor, the message's type, the
  start of its repr, the traceback) and goes on with the next message.
* **A worker's end is the process's.**  An app that returns or raises while serving
  leaves its channel unserved: senders would block, then get ``ChannelFull``.  So the
  first one to end cancels the other channels and ``run_worker`` raises
  :class:`WorkerStopped` (its ``__cause__`` is the app's exception), and a process whose
  main is ``anyio.run(run_worker, ...)`` exits non-zero instead of lingering or exiting 0.
* **Cancellation is shutdown**: it propagates, and ``run_worker`` raises nothing else.

:func:`worker_main` is the process around it, shared by ``interlock worker`` and
``manage.py runworker``: SIGINT or SIGTERM cancels the worker and the process exits 0;
a :class:`WorkerStopped` is logged (ERROR, with its cause's traceback) and the process
exits 1, never 0: it cannot go on, and its supervisor should know.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskStatus
from interlock.layers import GroupLayer, require_channel_name

from ._errors import StopActor
from ._routing import ChannelNameRouter, ProtocolTypeRouter
from ._types import LAYER_KEY, ASGIApp, Message, Receive, Scope

__all__ = ["WorkerStopped", "check_worker_arguments", "run_worker", "serve_worker", "worker_main"]

logger = logging.getLogger("interlock.actors.worker")


class WorkerStopped(RuntimeError):
    """A worker's application ended while serving its channel; ``run_worker`` stopped them all.

    ``channel`` names the channel; ``__cause__`` is the application's exception (a
    handler's :class:`~interlock.actors.StopActor`, say), or None if it returned.
    """

    def __init__(self, channel: str, reason: str) -> None:
        self.channel = channel
        super().__init__(
            f"the worker for channel {channel!r} stopped: {reason}; a worker's application must "
            "serve its channel until run_worker() is cancelled, so the other channels were stopped too"
        )


async def _no_client(message: Message) -> None:
    msg = f"a worker has no client to send {message.get('type')!r} to; talk to other actors through self.channel_layer"
    raise RuntimeError(msg)


def _stopped(channel: str, reason: str, cause: BaseException | None) -> WorkerStopped:
    error = WorkerStopped(channel, reason)
    error.__cause__ = cause
    return error


async def _serve(application: ASGIApp, scope: Scope, receive: Receive, stop: Callable[[WorkerStopped], None]) -> None:
    """Serve one channel until cancelled; if its application ends, *stop* the worker with why."""
    channel = scope["channel"]
    try:
        await application(scope, receive, _no_client)
    except StopActor as exc:
        stop(_stopped(channel, f"a handler raised {exc!r}", exc))
    except Exception as exc:  # noqa: BLE001 - run_worker raises it, as the cause
        stop(_stopped(channel, f"its application raised {type(exc).__name__}: {exc}", exc))
    else:
        stop(_stopped(channel, "its application returned", None))


def check_worker_arguments(application: ASGIApp, channels: Sequence[str]) -> list[str]:
    """The channel names, checked: a list of valid names, each routed if *application* is a router.

    Raises ``TypeError`` (a single str) or ``ValueError`` (no names, an invalid or unrouted one).
    """
    if isinstance(channels, str):
        msg = f"run_worker() takes a list of channel names, not the str {channels!r}"
        raise TypeError(msg)
    names = [require_channel_name(name) for name in channels]
    if not names:
        msg = "run_worker() needs at least one channel name"
        raise ValueError(msg)
    router: ASGIApp | None = application
    if isinstance(application, ProtocolTypeRouter):
        router = application.application_mapping.get("channel")
        if router is None:
            msg = (
                "run_worker(): the ProtocolTypeRouter has no 'channel' application to serve worker channels; "
                f'it routes {sorted(application.application_mapping)!r}: add "channel": ChannelNameRouter({{...}})'
            )
            raise ValueError(msg)
    if isinstance(router, ChannelNameRouter):
        missing = [name for name in names if name not in router.application_mapping]
        if missing:
            msg = (
                f"run_worker(): the ChannelNameRouter has no application for {missing!r}; "
                f"it routes {sorted(router.application_mapping)!r}"
            )
            raise ValueError(msg)
    return names


async def run_worker(application: ASGIApp, channels: Sequence[str], channel_layer: GroupLayer) -> None:
    """Serve each named channel with one long-lived instance of *application*.

    Every message sent to ``channels[i]`` reaches that instance as an event, as with
    Channels' ``runworker``; route several channels with
    :class:`~interlock.actors.ChannelNameRouter`. Runs until cancelled.

    An :class:`~interlock.actors.Actor`'s handler that raises is logged and the worker
    goes on with the next message.  If an application returns or raises (an Actor's
    handler raised ``StopActor``, its channel's ``receive()`` failed), the other channels
    are cancelled and :class:`WorkerStopped` is raised, with the application's exception
    as its ``__cause__``: ``run_worker`` never returns.
    """
    names = check_worker_arguments(application, channels)
    stopped: list[WorkerStopped] = []
    async with anyio.create_task_group() as tasks:

        def stop(error: WorkerStopped) -> None:
            stopped.append(error)  # the first is the one raised; the others end by cancellation
            tasks.cancel_scope.cancel()

        for name in names:
            scope: Scope = {"type": "channel", "channel": name, LAYER_KEY: channel_layer}
            receive: Receive = functools.partial(channel_layer.receive, name)
            tasks.start_soon(_serve, application, scope, receive, stop)
    # Only a stop ends the group without raising: a cancellation from outside propagates.
    raise stopped[0]


async def _until_signalled(
    scope: anyio.CancelScope, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()  # from here on a signal stops the worker cleanly
        async for received in signals:
            logger.info("worker: %s received, stopping", signal.Signals(received).name)
            scope.cancel()
            return


async def serve_worker(
    application: ASGIApp, channels: Sequence[str], channel_layer: GroupLayer, *, backend: str | None = None
) -> WorkerStopped | None:
    """Run :func:`run_worker` until SIGINT or SIGTERM (None) or until it stops (its :class:`WorkerStopped`).

    The layer is closed either way, if it can be. "serving" is logged once a signal
    would stop the worker cleanly.
    """
    stopped: WorkerStopped | None = None
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(_until_signalled, tasks.cancel_scope)
            where = f" ({backend})" if backend else ""
            logger.info("worker: serving channel(s) %s on %r%s", ", ".join(channels), channel_layer, where)
            try:
                await run_worker(application, channels, channel_layer)
            except WorkerStopped as exc:
                stopped = exc
                tasks.cancel_scope.cancel()
    finally:
        close = getattr(channel_layer, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await close()
    return stopped


def worker_main(
    application: ASGIApp, channels: Sequence[str], channel_layer: GroupLayer, *, backend: str = "asyncio"
) -> int:
    """Serve *channels* in this process until a signal (exit status 0) or a stop (logged, status 1)."""
    stopped = anyio.run(
        functools.partial(serve_worker, application, channels, channel_layer, backend=backend), backend=backend
    )
    if stopped is None:
        return 0
    logger.error("worker: %s", stopped, exc_info=stopped.__cause__ or stopped)
    return 1
