"""An app of misbehaving actors and bad input, served by real servers in ``test_bad_input_e2e``.

Every WebSocket route ends in a ``<tag>/`` the test makes unique, so the actor's
identity in the server log (``path=/ws/boom/sync/<tag>/``) points at one connection.

WebSocket routes:

* ``ws/echo/<tag>/`` - JSON echo, in no group: proves the server still serves.
* ``ws/json/<tag>/`` - JSON echo in group ``probe``: malformed JSON, binary frames.
* ``ws/boom/sync/<tag>/``, ``ws/boom/async/<tag>/`` - in ``probe``; a ``def`` /
  ``async def`` ``receive`` raises on the text ``"boom"`` and echoes anything else.
* ``ws/connect-boom/sync/<tag>/``, ``ws/connect-boom/async/<tag>/`` - in ``probe``;
  ``connect`` raises.
* ``ws/probe/<tag>/`` (``unhandled="raise"``, the default), ``ws/probe/log/<tag>/``,
  ``ws/probe/ignore/<tag>/`` - in ``probe``, with a ``relay`` handler that sends the
  layer message's ``text`` to the client; client text is answered ``"pong: <text>"``.
* ``ws/poke/<tag>/`` - performs the layer operation each JSON message asks for and
  answers ``{"ok": true}`` or ``{"error": "<ExceptionType>: <message>"}``; see
  :class:`PokeActor`. Its ``relay`` handler sends ``{"relayed": <message>}``.
* ``ws/subprotocol/<tag>/`` - accepts ``v2.interlock`` or ``v1.interlock`` (preferring v2)
  if offered, else no subprotocol; ``ws/subprotocol/wrong/<tag>/`` accepts a
  subprotocol the client never offered (a ``ValueError``: the handshake is refused).
* ``ws/deny/<tag>/`` - ``deny(status=401, body="who are you?")``.
* ``ws/stream/<tag>/`` - in group ``stream``, ``send_timeout = 1``: the text ``"<n>"``
  is answered with *n* binary frames of 64 KiB (a client that stops reading is given up).

HTTP: ``GET /groups/<name>`` answers ``{"group": name, "members": count}`` (400 with
``{"error": ...}`` for an invalid group name).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from interlock.actors import (
    JsonWebsocketActor,
    ProtocolTypeRouter,
    Receive,
    Scope,
    Send,
    UnhandledPolicy,
    URLRouter,
    WebsocketActor,
    handler,
    path,
)
from interlock.layers import ChannelLayerError, InMemoryChannelLayer, InvalidGroupName

PROBE = "probe"

layer = InMemoryChannelLayer()


class EchoActor(JsonWebsocketActor):
    """Echo every JSON message as ``{"echo": content}``."""

    async def receive_json(self, content: Any) -> None:
        """Send the content back."""
        await self.send_json({"echo": content})


class JsonProbeActor(EchoActor):
    """The JSON echo, as a member of ``probe``."""

    groups = (PROBE,)


class SyncBoomActor(WebsocketActor):
    """A ``def`` receive handler (run in a worker thread) that raises on ``"boom"``."""

    groups = (PROBE,)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Raise on ``"boom"``, echo anything else."""
        if text_data == "boom":
            msg = "boom in a sync handler"
            raise RuntimeError(msg)
        self.send(text_data=f"echo: {text_data}")


class AsyncBoomActor(WebsocketActor):
    """An ``async def`` receive handler that raises on ``"boom"``."""

    groups = (PROBE,)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Raise on ``"boom"``, echo anything else."""
        if text_data == "boom":
            msg = "boom in an async handler"
            raise RuntimeError(msg)
        await self.send(text_data=f"echo: {text_data}")


class SyncConnectBoomActor(WebsocketActor):
    """A ``def`` connect that raises before accepting."""

    groups = (PROBE,)

    def connect(self) -> None:
        """Fail the handshake."""
        msg = "connect exploded (sync)"
        raise RuntimeError(msg)


class AsyncConnectBoomActor(WebsocketActor):
    """An ``async def`` connect that raises before accepting."""

    groups = (PROBE,)

    async def connect(self) -> None:
        """Fail the handshake."""
        msg = "connect exploded (async)"
        raise RuntimeError(msg)


class ProbeActor(WebsocketActor):
    """A member of ``probe`` with one layer handler, ``relay``, failing on any other type."""

    groups = (PROBE,)
    unhandled: ClassVar[UnhandledPolicy] = "raise"

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Answer client text with ``pong: <text>``."""
        await self.send(text_data=f"pong: {text_data}")

    @handler
    async def relay(self, event: dict[str, Any]) -> None:
        """Pass a layer message's ``text`` to the client."""
        await self.send(text_data=str(event.get("text")))


class LoggingProbeActor(ProbeActor):
    """A probe that logs layer messages it cannot handle and goes on."""

    unhandled: ClassVar[UnhandledPolicy] = "log"


class IgnoringProbeActor(ProbeActor):
    """A probe that drops layer messages it cannot handle, silently."""

    unhandled: ClassVar[UnhandledPolicy] = "ignore"


def _materialise(value: Any) -> Any:
    """Turn ``{"$py": kind}`` markers into Python values JSON cannot express.

    ``set`` (``{1, 2}``), ``object`` (an ``object()``), ``complex`` (``1+2j``),
    ``int-key`` (``{1: "one"}``) and ``deep`` (lists nested ``depth`` levels).
    """
    if isinstance(value, list):
        return [_materialise(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("$py")
    if kind is None:
        return {key: _materialise(item) for key, item in value.items()}
    if kind == "set":
        return {1, 2}
    if kind == "object":
        return object()
    if kind == "complex":
        return complex(1, 2)
    if kind == "int-key":
        return {1: "one"}
    if kind == "deep":
        nested: Any = "bottom"
        for _ in range(int(value["depth"])):
            nested = [nested]
        return nested
    msg = f"unknown $py marker {kind!r}"
    raise ValueError(msg)


class PokeActor(JsonWebsocketActor):
    """Performs the layer operation the client asks for and reports how it went.

    Operations (values pass through :func:`_materialise` first):

    * ``{"op": "group_send", "group": g, "message": m}``
    * ``{"op": "group_add", "group": g}`` / ``{"op": "group_discard", "group": g}``
      (with this actor's channel)
    * ``{"op": "send", "channel": c, "message": m}``
    * ``{"op": "send_self", "message": m}`` (to this actor's own channel)

    The answer is ``{"ok": true}`` or, for a layer error,
    ``{"error": "<ExceptionType>: <message>"}``. Anything else a layer raises is a
    bug and fails the actor.
    """

    unhandled: ClassVar[UnhandledPolicy] = "raise"  # a layer message of an unknown type fails it

    async def receive_json(self, content: Any) -> None:
        """Run one operation and report its outcome."""
        request = _materialise(content)
        try:
            await self._perform(request)
        except ChannelLayerError as exc:
            await self.send_json({"error": f"{type(exc).__name__}: {exc}"})
        else:
            await self.send_json({"ok": True})

    async def _perform(self, request: dict[str, Any]) -> None:
        op = request["op"]
        if op == "group_send":
            await self.channel_layer.group_send(request["group"], request["message"])
        elif op == "group_add":
            await self.channel_layer.group_add(request["group"], self.channel_name)
        elif op == "group_discard":
            await self.channel_layer.group_discard(request["group"], self.channel_name)
        elif op == "send":
            await self.channel_layer.send(request["channel"], request["message"])
        elif op == "send_self":
            await self.channel_layer.send(self.channel_name, request["message"])
        else:
            msg = f"unknown op {op!r}"
            raise ValueError(msg)

    @handler
    async def relay(self, event: dict[str, Any]) -> None:
        """Report a layer message that reached this actor."""
        await self.send_json({"relayed": event})


class SubprotocolActor(WebsocketActor):
    """Chooses its preferred subprotocol among those the client offers."""

    preferred: ClassVar[tuple[str, ...]] = ("v2.interlock", "v1.interlock")
    chosen: str | None = None

    async def connect(self) -> None:
        """Accept with the best subprotocol both sides speak, or none."""
        offered = self.scope.get("subprotocols") or []
        self.chosen = next((name for name in self.preferred if name in offered), None)
        await self.accept(self.chosen)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Say which subprotocol was chosen."""
        await self.send(text_data=f"speaking {self.chosen}")


class WrongSubprotocolActor(WebsocketActor):
    """Accepts a subprotocol the client did not offer: an application error."""

    async def connect(self) -> None:
        """Choose ``not-offered`` (``accept`` raises ``ValueError``)."""
        await self.accept("not-offered")


class DenyActor(WebsocketActor):
    """Refuses every handshake with 401 and a body."""

    async def connect(self) -> None:
        """Deny."""
        await self.deny(status=401, body="who are you?")


async def _respond_json(send: Send, status: int, content: Any) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def group_count(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /groups/<name>``: the group's member count."""
    name = scope["url_route"]["kwargs"]["name"]
    try:
        members = await layer.group_members(name)
    except InvalidGroupName as exc:
        await _respond_json(send, 400, {"error": f"{type(exc).__name__}: {exc}"})
    else:
        await _respond_json(send, 200, {"group": name, "members": len(members)})


class StreamActor(WebsocketActor):
    """Streams what it is asked for, with a send deadline."""

    groups: ClassVar[list[str]] = ["stream"]
    send_timeout = 1.0

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        chunk = bytes(64 * 1024)
        for _ in range(int(text_data or "0")):
            await self.send(bytes_data=chunk)


app = ProtocolTypeRouter(
    {
        "http": URLRouter([path("groups/<str:name>", group_count)]),
        "websocket": URLRouter(
            [
                path("ws/echo/<str:tag>/", EchoActor.as_asgi()),
                path("ws/json/<str:tag>/", JsonProbeActor.as_asgi()),
                path("ws/boom/sync/<str:tag>/", SyncBoomActor.as_asgi()),
                path("ws/boom/async/<str:tag>/", AsyncBoomActor.as_asgi()),
                path("ws/connect-boom/sync/<str:tag>/", SyncConnectBoomActor.as_asgi()),
                path("ws/connect-boom/async/<str:tag>/", AsyncConnectBoomActor.as_asgi()),
                path("ws/probe/<str:tag>/", ProbeActor.as_asgi()),
                path("ws/probe/log/<str:tag>/", LoggingProbeActor.as_asgi()),
                path("ws/probe/ignore/<str:tag>/", IgnoringProbeActor.as_asgi()),
                path("ws/poke/<str:tag>/", PokeActor.as_asgi()),
                path("ws/subprotocol/<str:tag>/", SubprotocolActor.as_asgi()),
                path("ws/subprotocol/wrong/<str:tag>/", WrongSubprotocolActor.as_asgi()),
                path("ws/deny/<str:tag>/", DenyActor.as_asgi()),
                path("ws/stream/<str:tag>/", StreamActor.as_asgi()),
            ]
        ),
    },
    channel_layer=layer,
)
