"""An app for the inspector across processes: members of one room, the inspector mounted.

Served by ``tests/inspector/test_inspector_processes.py`` in several server processes on
one layer: ``INSPECT_LAYER`` is a SQLite file path or a ``redis://`` URL (with
``INSPECT_PREFIX`` as the Redis key prefix); leases are short (1 s, grace 1 s) so that a
killed process is pruned within seconds.

* ``/ws/member/``: a :class:`Member`, in the group ``room.red``;
* ``/_interlock/``: the inspector, with the token :data:`TOKEN`.
"""

from __future__ import annotations

import os

from interlock.actors import JsonWebsocketActor, ProtocolTypeRouter, URLRouter, path
from interlock.actors.inspector import Inspector
from interlock.layers import GroupLayer, RedisChannelLayer, SQLiteChannelLayer

TOKEN = "test-inspector-token-0123456789"


def make_layer() -> GroupLayer:
    """The layer ``INSPECT_LAYER`` names, with short leases."""
    where = os.environ["INSPECT_LAYER"]
    if where.startswith("redis://"):
        return RedisChannelLayer(where, prefix=os.environ["INSPECT_PREFIX"], lease=1.0, grace=1.0)
    return SQLiteChannelLayer(where, lease=1.0, grace=1.0)


class Member(JsonWebsocketActor):
    """A room member: joins ``room.red``, echoes what it gets."""

    async def connect(self) -> None:
        """Join the room, then accept."""
        await self.channel_layer.group_add("room.red", self.channel_name)
        await self.accept()

    async def receive_json(self, content: object) -> None:
        """Echo."""
        await self.send_json(content)


layer = make_layer()
inspector = Inspector(token=TOKEN, interval=0.25)

app = ProtocolTypeRouter(
    {
        "http": URLRouter(inspector.routes("_interlock/")),
        "websocket": URLRouter([path("ws/member/", Member.as_asgi())]),
    },
    channel_layer=layer,
)
