"""Room chat: the seed's chat, as an interlock actor, with a page to try it in a browser.

Run it (the README's first command does the set-up too)::

    python examples/chat.py            # http://127.0.0.1:8000

* ``GET /`` serves ``chat.html``; ``GET /api/rooms`` lists rooms and how many are in
  them, as JSON, from an HTTP actor (:class:`RoomListing`).
* ``/ws/chat/<room>/?name=Ada`` joins a room. Send ``{"message": "..."}`` (with an
  ``"ack"`` id to hear ``{"ack": id, "result": true}`` back); every member of the room, sender
  included, receives ``{"room", "from", "message", "offset"}`` in order. A tab that loses its
  connection reconnects with its session token and last offset and gets what it missed
  (``examples/interlock.js``, served at ``/interlock.js``; docs/conversations.md).
* ``GET /api/rooms/<room>/events`` is a read-only feed of a room (a dashboard, a screen on
  the wall): server-sent events (:class:`RoomFeed`), one ``message`` event per message.
* ``nc 127.0.0.1 8001`` (or ``telnet``) joins the same rooms over plain TCP, a line at a
  time (:class:`ChatLine`): ``/join ROOM``, ``/name NAME``, ``/rooms``, ``/quit``; other
  lines are messages. ``--tcp-port`` moves it (0: off). The bot of ``examples/chatbot.py``
  answers ``/who``, ``/roll`` and ``/help`` in the rooms it serves.

The layer is chosen by ``INTERLOCK_CHAT_LAYER``: ``sqlite`` (the default: the file
``INTERLOCK_CHAT_DB``, else ``examples/chat.sqlite3``, so several server processes —
``uvicorn chat:app --app-dir examples --workers 4`` — share rooms, and the registry
outlives a restart), ``memory`` (one process) or a Redis URL (``--layer
redis://127.0.0.1:6379/0``: processes on several machines). ``INTERLOCK_CHAT_MAX_CONNECTIONS``
(10,000 by default) caps the members one process serves. The sockets check their
``Origin`` (same origin as the page; see docs/security.md). With
``INTERLOCK_INSPECTOR_TOKEN`` set (16 characters at least), ``/_interlock/`` serves the
live inspector to whoever holds that token (docs/inspector.md).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import uvicorn
from interlock.actors import (
    ASGIApp,
    HttpActor,
    JsonWebsocketActor,
    ProtocolTypeRouter,
    Receive,
    Recovered,
    Recovery,
    Scope,
    Send,
    SseActor,
    URLRouter,
    handler,
    path,
)
from interlock.actors.inspector import Inspector
from interlock.actors.security import SameOriginValidator
from interlock.actors.tcp import LineActor, TcpServer
from interlock.layers import (
    POSITION,
    GroupHistory,
    GroupLayer,
    InMemoryChannelLayer,
    ListableGroupLayer,
    RedisChannelLayer,
    SQLiteChannelLayer,
)

HERE = Path(__file__).resolve().parent
ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_LIMIT = 32
MAX_CONNECTIONS = int(os.environ.get("INTERLOCK_CHAT_MAX_CONNECTIONS", "10000"))
# Each room keeps its last 1,000 messages for 5 minutes: a tab away for less gets what it missed.
HISTORY = GroupHistory(count=1000, age=300.0, groups=("chat.*",))


def chat_secret() -> bytes:
    """The key recovery tokens are signed with: ``INTERLOCK_CHAT_SECRET``, else a file beside the layer's.

    Every server process must share it, so it is not made up per process.
    """
    if "INTERLOCK_CHAT_SECRET" in os.environ:
        return os.environ["INTERLOCK_CHAT_SECRET"].encode()
    where = Path(os.environ.get("INTERLOCK_CHAT_DB", str(HERE / "chat.sqlite3"))).with_suffix(".secret")
    if not where.exists():  # written whole, then linked in: worker processes starting together agree
        draft = where.with_name(f"{where.name}.{os.getpid()}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):
            os.link(draft, where)
        draft.unlink()
    return where.read_text().strip().encode()


def make_layer() -> GroupLayer:
    """The layer named by ``INTERLOCK_CHAT_LAYER``: ``sqlite`` (default), ``memory`` or a Redis URL."""
    kind = os.environ.get("INTERLOCK_CHAT_LAYER", "sqlite")
    if kind.startswith(("redis://", "rediss://", "unix://")):  # several machines
        return RedisChannelLayer(kind, prefix="interlock-chat", history=HISTORY)
    if kind == "sqlite":
        return SQLiteChannelLayer(os.environ.get("INTERLOCK_CHAT_DB", str(HERE / "chat.sqlite3")), history=HISTORY)
    if kind == "memory":
        return InMemoryChannelLayer(history=HISTORY)
    msg = f"INTERLOCK_CHAT_LAYER={kind!r}: expected 'sqlite', 'memory' or a redis:// URL"
    raise SystemExit(msg)


class ChatActor(JsonWebsocketActor):
    """One chat member: joins its room's group, relays messages to and from it."""

    acks = True  # {"message": ..., "ack": 7} is answered {"ack": 7, "result": true}
    recovery = Recovery(secret=chat_secret())  # reconnects get what they missed
    room: str
    group: str
    name: str
    session: Recovered

    async def connect(self) -> None:
        """Check the room and the name, join the room's group (recovering what a tab missed), accept."""
        room = self.scope["url_route"]["kwargs"]["room"]
        if not ROOM.fullmatch(room):
            await self.deny(400, "room names are 1 to 64 letters, digits, '-' or '_'")
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.name = (query.get("name", ["anonymous"])[0].strip() or "anonymous")[:NAME_LIMIT]
        self.room = room
        self.group = f"chat.{room}"
        # Joins the group, then accepts; a returning tab first gets what it missed, through chat_message.
        self.session = await self.join_recovering(self.group)
        if self.session.recovered is False:
            await self.send_json({"error": "you were away too long: some messages are missing"})

    async def receive_json(self, content: Any) -> bool:
        """Relay ``{"message": "..."}`` to the room (the ack's result: True); explain anything else."""
        message = content.get("message") if isinstance(content, dict) else None
        if not isinstance(message, str) or not message.strip():
            await self.send_json({"error": 'send {"message": "some text"}'})
            return False
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "from": self.name, "message": message})
        return True

    @handler
    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message for the room: pass it to this member's browser, with its offset."""
        offset = event[POSITION]["offset"] if POSITION in event else None
        await self.send_json({"room": self.room, "from": event["from"], "message": event["message"], "offset": offset})

    # Limits (docs/actors.md, "Limits"): off by default, on here.
    handshake_timeout = 10.0  # connect() must accept or refuse within 10 s, else 408
    idle_timeout = 300.0  # a member silent for 5 minutes is closed with 4000
    max_connections = MAX_CONNECTIONS  # per process; past it new members are refused with 503

    @handler
    async def chat_whois(self, event: dict[str, Any]) -> None:
        """The bot asks who is here (``/who``): answer with this member's name."""
        await self.channel_layer.send(event["reply_to"], {"type": "chat.iam", "name": self.name})


TCP_HELP = "commands: /join ROOM, /name NAME, /rooms, /quit; anything else is a message to the room"


class ChatLine(LineActor):
    """One chat member over plain TCP (``nc``, ``telnet``): the same rooms as the browsers."""

    name: str
    room: str

    async def connect(self) -> None:
        """Greet, name the member ``guest-XXXX`` and put them in the ``lobby``."""
        self.name = f"guest-{secrets.token_hex(2)}"
        await self.send_line(f"welcome to interlock chat, {self.name}. {TCP_HELP}")
        await self._join("lobby")

    async def _join(self, room: str) -> None:
        if getattr(self, "room", None) is not None:
            await self.channel_layer.group_discard(f"chat.{self.room}", self.channel_name)
        self.room = room
        await self.channel_layer.group_add(f"chat.{room}", self.channel_name)
        await self.send_line(f"* you are {self.name} in {room}")

    async def receive_line(self, line: str) -> None:
        """A command, or a message for the room."""
        command, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if command == "/join":
            if not ROOM.fullmatch(rest):
                await self.send_line("* room names are 1 to 64 letters, digits, '-' or '_': /join ROOM")
                return
            await self._join(rest)
        elif command == "/name":
            if not rest or len(rest) > NAME_LIMIT:
                await self.send_line(f"* a name is 1 to {NAME_LIMIT} characters: /name NAME")
                return
            self.name = rest
            await self.send_line(f"* you are {self.name}")
        elif command == "/rooms":
            layer = self.channel_layer
            groups = await layer.groups() if isinstance(layer, ListableGroupLayer) else {}
            rooms = {g.removeprefix("chat."): n for g, n in groups.items() if g.startswith("chat.")}
            await self.send_line("* rooms: " + (", ".join(f"{r} ({n})" for r, n in sorted(rooms.items())) or "none"))
        elif command == "/quit":
            await self.close("* bye")
        elif command == "/help":
            await self.send_line(f"* {TCP_HELP}")
        elif line.strip():
            message = {"type": "chat.message", "from": self.name, "message": line.strip()}
            await self.channel_layer.group_send(f"chat.{self.room}", message)

    @handler
    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message for the room: one line, ``[room] name: text``."""
        await self.send_line(f"[{self.room}] {event['from']}: {event['message']}")

    @handler
    async def chat_whois(self, event: dict[str, Any]) -> None:
        """The bot asks who is here: answer with this member's name."""
        await self.channel_layer.send(event["reply_to"], {"type": "chat.iam", "name": self.name})


class RoomListing(HttpActor):
    """``GET /api/rooms``: every room and how many are in it (members and feed readers), as JSON."""

    methods = frozenset({"GET"})  # others: 405 Method Not Allowed

    async def handle(self, body: bytes) -> None:
        """Answer from the layer's group registry (every process's members, on the SQLite layer)."""
        layer = self.channel_layer
        if not isinstance(layer, ListableGroupLayer):
            await self.send_json({"error": "this channel layer cannot list its groups"}, status=501)
            return
        groups = await layer.groups()
        await self.send_json({g.removeprefix("chat."): n for g, n in groups.items() if g.startswith("chat.")})


class RoomFeed(SseActor):
    """``GET /api/rooms/<room>/events``: a room's messages as server-sent events, read-only."""

    heartbeat = 15.0  # a comment line when the room is quiet, so proxies keep the stream
    methods = frozenset({"GET"})
    room: str

    async def handle(self, body: bytes) -> None:
        """Check the room, join its group, start the stream."""
        room = self.scope["url_route"]["kwargs"]["room"]
        if not ROOM.fullmatch(room):
            await self.send_response(400, b"room names are 1 to 64 letters, digits, '-' or '_'\n")
            return
        self.room = room
        await self.channel_layer.group_add(f"chat.{room}", self.channel_name)
        await self.start_stream()
        await self.send_event({"room": room}, event="joined")

    @handler
    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message for the room: one ``message`` event."""
        await self.send_event({"room": self.room, "from": event["from"], "message": event["message"]}, event="message")

    @handler
    async def chat_whois(self, event: dict[str, Any]) -> None:
        """The bot asks who is here: a feed reader answers without a name."""
        await self.channel_layer.send(event["reply_to"], {"type": "chat.iam", "name": None})


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_http(layer: GroupLayer) -> ASGIApp:
    """The page, the room listing and the rooms' feeds."""
    page = (HERE / "chat.html").read_bytes()
    helper = (HERE / "interlock.js").read_bytes()

    async def page_or_404(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/":
            await _respond(send, 200, page, b"text/html; charset=utf-8")
        elif scope["path"] == "/interlock.js":
            await _respond(send, 200, helper, b"text/javascript; charset=utf-8")
        else:
            await _respond(send, 404, b"Not Found", b"text/plain")

    # The live inspector, at /_interlock/, only for whoever holds the token the
    # environment names (``INTERLOCK_INSPECTOR_TOKEN``, 16 characters at least): off without it.
    token = os.environ.get("INTERLOCK_INSPECTOR_TOKEN")
    inspector = Inspector(token=token).routes("_interlock/") if token else []
    return URLRouter(
        [
            *inspector,
            path("api/rooms", RoomListing.as_asgi()),
            path("api/rooms/<str:room>/events", RoomFeed.as_asgi()),
            path("<path:rest>", page_or_404),
            path("", page_or_404),
        ]
    )


def make_app(layer: GroupLayer | None = None) -> ProtocolTypeRouter:
    """The whole chat app on *layer* (by default the one the environment names)."""
    layer = make_layer() if layer is None else layer
    return ProtocolTypeRouter(
        {
            "http": make_http(layer),
            # A page on another site cannot open a socket with this site's cookies.
            "websocket": SameOriginValidator(URLRouter([path("ws/chat/<str:room>/", ChatActor.as_asgi())])),
        },
        channel_layer=layer,
    )


app = make_app()


def make_tcp(layer: GroupLayer, host: str, port: int) -> TcpServer:
    """The chat's plain TCP port (``nc HOST PORT``), on *layer*."""
    return TcpServer(ChatLine.as_asgi(), host, port, channel_layer=layer)


async def _serve(application: ProtocolTypeRouter, host: str, port: int, tcp_port: int) -> None:
    """uvicorn and the TCP port in one event loop; the TCP port closes when uvicorn stops."""
    server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="info"))
    async with anyio.create_task_group() as tasks:
        if tcp_port:
            layer = application.channel_layer
            assert layer is not None
            try:
                await tasks.start(make_tcp(layer, host, tcp_port).serve)
            except OSError as exc:  # the page matters more than the nc port: say so, go on
                print(f"chat: no TCP port: {host}:{tcp_port}: {exc.strerror or exc} (move it with --tcp-port)")  # noqa: T201
        await server.serve()
        tasks.cancel_scope.cancel()


def _serve_tcp_only(host: str, tcp_port: int) -> None:
    """The TCP port in a process of its own, beside uvicorn's workers (``--workers N``)."""
    anyio.run(make_tcp(make_layer(), host, tcp_port).serve)


def main() -> None:
    """Serve the chat with uvicorn, and its TCP port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tcp-port", type=int, default=8001, help="plain TCP chat port, for nc/telnet (0: off)")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the layer")
    parser.add_argument("--layer", help="sqlite (the default), memory, or a redis:// URL (INTERLOCK_CHAT_LAYER)")
    args = parser.parse_args()
    if args.layer is not None:
        os.environ["INTERLOCK_CHAT_LAYER"] = args.layer  # read by make_layer(), in worker processes too

    print(f"chat: open http://{args.host}:{args.port}/ in two browser tabs")  # noqa: T201
    if args.tcp_port:
        print(f"chat: or nc {args.host} {args.tcp_port}")  # noqa: T201
    if args.workers > 1:
        tcp = None
        if args.tcp_port:
            tcp = multiprocessing.Process(target=_serve_tcp_only, args=(args.host, args.tcp_port), daemon=True)
            tcp.start()
        uvicorn.run("chat:app", app_dir=str(HERE), host=args.host, port=args.port, workers=args.workers)
        if tcp is not None:
            tcp.terminate()
    else:
        application = app if args.layer is None else make_app()
        # uvicorn raises the SIGINT it caught again once it stopped: the shutdown was clean already.
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, application, args.host, args.port, args.tcp_port)


if __name__ == "__main__":
    main()
