"""Actors shared by the host apps of these integration tests.

:class:`EchoActor` is routed by an interlock :class:`~interlock.actors.URLRouter`
(``ws/echo/<str:name>/``); :class:`DirectActor` is routed by the host framework itself,
so it reads its name from Starlette's ``scope["path_params"]`` instead of
``scope["url_route"]``.

Both greet the client with what they saw of the scope, join the group named by the
``?group=`` query parameter, and understand two JSON messages:

* ``{"say": text}`` - ``group_send`` it to the group; every member (sender included)
  receives ``{"from": name, "said": text}``;
* anything else - echoed back as ``{"echo": content, "name": name}``.

A layer message ``{"type": "host.notify", "text": ...}`` (sent by the hosts' HTTP
handlers) reaches the client as ``{"notified": text}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from interlock.actors import JsonWebsocketActor, handler


def query_param(scope: dict[str, Any] | Any, key: str, default: str) -> str:
    """Return the first value of *key* in the scope's query string."""
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    return query.get(key, [default])[0]


class EchoActor(JsonWebsocketActor):
    """Echo JSON, relay ``say`` messages through the channel layer to its group."""

    name: str
    group: str

    def route_name(self) -> str:
        """The connection's name, from the URL."""
        return str(self.scope["url_route"]["kwargs"]["name"])

    async def connect(self) -> None:
        """Join the ``?group=`` group, accept, and report the scope as seen here."""
        self.name = self.route_name()
        self.group = query_param(self.scope, "group", "lobby")
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        route = self.scope.get("url_route") or {"args": (), "kwargs": {}}
        await self.send_json(
            {
                "hello": self.name,
                "group": self.group,
                "actor": type(self).__name__,
                "path": self.scope.get("path"),
                "root_path": self.scope.get("root_path", ""),
                "url_route": {"args": list(route["args"]), "kwargs": {k: str(v) for k, v in route["kwargs"].items()}},
                "path_params": {k: str(v) for k, v in dict(self.scope.get("path_params") or {}).items()},
            }
        )

    async def receive_json(self, content: Any) -> None:
        """Relay ``{"say": ...}`` to the group; echo anything else."""
        if isinstance(content, dict) and "say" in content:
            await self.channel_layer.group_send(
                self.group, {"type": "room.say", "from": self.name, "text": content["say"]}
            )
        else:
            await self.send_json({"echo": content, "name": self.name})

    @handler
    async def room_say(self, event: dict[str, Any]) -> None:
        """A group member said something (type ``room.say``)."""
        await self.send_json({"from": event["from"], "said": event["text"]})

    @handler
    async def host_notify(self, event: dict[str, Any]) -> None:
        """The host's HTTP code sent a notification through the layer (type ``host.notify``)."""
        await self.send_json({"notified": event["text"]})


class DirectActor(EchoActor):
    """:class:`EchoActor` routed by the host's router: its name is in ``path_params``."""

    def route_name(self) -> str:
        """The connection's name, from Starlette's path parameters."""
        return str(self.scope["path_params"]["name"])
