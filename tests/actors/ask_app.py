"""An actor to be asked, in a server process of its own: ``test_ask_sigkill`` kills that process.

``ASK_LAYER`` is ``sqlite`` (the file ``ASK_DB``) or ``redis`` (127.0.0.1:6379 under
``ASK_PREFIX``), both with a lease of 0.3 s and a grace of 0.3 s. A client frame is
answered with the actor's channel name; a ``slow`` ask sleeps ``seconds`` before answering.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from interlock.actors import JsonWebsocketActor, ProtocolTypeRouter, handler
from interlock.layers import GroupLayer, RedisChannelLayer, SQLiteChannelLayer


def make_layer() -> GroupLayer:
    """The layer the environment names, with a short lease."""
    if os.environ["ASK_LAYER"] == "redis":
        return RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=os.environ["ASK_PREFIX"], lease=0.3, grace=0.3)
    return SQLiteChannelLayer(os.environ["ASK_DB"], lease=0.3, grace=0.3)


class Slow(JsonWebsocketActor):
    """Says its channel; answers a ``slow`` ask late."""

    async def receive_json(self, content: Any) -> None:
        """Tell the client this actor's channel."""
        await self.send_json({"channel": self.channel_name})

    @handler
    async def slow(self, event: dict[str, Any]) -> str:
        """Answer after ``seconds``."""
        await anyio.sleep(event["seconds"])
        return "late"


app = ProtocolTypeRouter({"websocket": Slow.as_asgi()}, channel_layer=make_layer())
