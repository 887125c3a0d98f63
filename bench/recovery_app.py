"""The app bench/recovery.py serves: a group member that recovers what it missed.

``RECOVERY_LAYER`` picks the layer (``memory``, ``sqlite`` at ``RECOVERY_DB``, ``redis``
on 127.0.0.1:6379 under ``RECOVERY_PREFIX``); each keeps the group's last 5,000 messages.
A frame ``{"burst": N}`` makes the server ``group_send`` N messages to the group.
"""

from __future__ import annotations

import os
from typing import Any

from interlock.actors import JsonWebsocketActor, ProtocolTypeRouter, Recovery, handler
from interlock.layers import POSITION, GroupHistory, GroupLayer, InMemoryChannelLayer

GROUP = "bench.recovery"
HISTORY = GroupHistory(count=5000, age=600.0, groups=("bench.*",))


def make_layer() -> GroupLayer:
    """The layer ``RECOVERY_LAYER`` names, keeping the group's history."""
    kind = os.environ.get("RECOVERY_LAYER", "memory")
    if kind == "sqlite":
        from interlock.layers import SQLiteChannelLayer  # noqa: PLC0415

        return SQLiteChannelLayer(os.environ["RECOVERY_DB"], history=HISTORY, capacity=10_000)
    if kind == "redis":
        from interlock.layers import RedisChannelLayer  # noqa: PLC0415

        prefix = os.environ.get("RECOVERY_PREFIX", "bench-recovery")
        return RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=prefix, history=HISTORY, capacity=10_000)
    return InMemoryChannelLayer(history=HISTORY, capacity=10_000)


class Member(JsonWebsocketActor):
    """Joins GROUP recovering; a ``{"burst": N}`` frame sends N messages to the group."""

    recovery = Recovery(secret=b"bench secret, 16 bytes or more")
    max_message_size = None

    async def connect(self) -> None:
        """Accept, then join (recovering what a returning client missed)."""
        await self.accept()
        await self.join_recovering(GROUP)

    async def receive_json(self, content: Any) -> None:
        """Send the burst asked for."""
        for n in range(int(content["burst"])):
            await self.channel_layer.group_send(GROUP, {"type": "bench.message", "n": n})

    @handler
    async def bench_message(self, event: dict[str, Any]) -> None:
        """Pass a group message on, with its offset."""
        await self.send_json({"n": event["n"], "offset": event[POSITION]["offset"]})


app = ProtocolTypeRouter({"websocket": Member.as_asgi()}, channel_layer=make_layer())
