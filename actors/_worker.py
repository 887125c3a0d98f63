"""Background workers: actors fed from named channels instead of client connections."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import anyio
from interlock.layers import GroupLayer, require_channel_name

from ._routing import ChannelNameRouter
from ._types import LAYER_KEY, ASGIApp, Message, Receive, Scope

__all__ = ["run_worker"]


async def _no_client(message: Message) -> None:
    msg = f"a worker has no client to send {message.get('type')!r} to; talk to other actors through self.channel_layer"
    raise RuntimeError(msg)


async def _serve(application: ASGIApp, scope: Scope, receive: Receive) -> None:
    await application(scope, receive, _no_client)


async def run_worker(application: ASGIApp, channels: Sequence[str], channel_layer: GroupLayer) -> None:
    """Serve each named channel with one long-lived instance of *application*.

    Every message sent to ``channels[i]`` reaches that instance as an event, as with
    Channels' ``runworker``; route several channels with
    :class:`~interlock.actors.ChannelNameRouter`. Runs until cancelled.
    """
    if isinstance(channels, str):
        msg = f"run_worker() takes a list of channel names, not the str {channels!r}"
        raise TypeError(msg)
    names = [require_channel_name(name) for name in channels]
    if not names:
        msg = "run_worker() needs at least one channel name"
        raise ValueError(msg)
    if isinstance(application, ChannelNameRouter):
        missing = [name for name in names if name not in application.application_mapping]
        if missing:
            msg = (
                f"run_worker(): the ChannelNameRouter has no application for {missing!r}; "
                f"it routes {sorted(application.application_mapping)!r}"
            )
            raise ValueError(msg)
    async with anyio.create_task_group() as tasks:
        for name in names:
            scope: Scope = {"type": "channel", "channel": name, LAYER_KEY: channel_layer}
            receive: Receive = functools.partial(channel_layer.receive, name)
            tasks.start_soon(_serve, application, scope, receive)
