"""Room chat as a state machine: log in, pick a room, talk.

    connecting → open.authenticating → open.lobby → open.in_room

* ``authenticating``: send ``{"type": "login", "name": "ada", "token": "..."}`` within
  ``AUTH_TIMEOUT`` seconds or the server closes with 4001. Announcements that arrive
  meanwhile are deferred and delivered right after the login succeeds.
* ``lobby``: ``{"type": "join", "room": "red"}``; the join is guarded: a bad room name
  gets ``{"type": "error", ...}`` and the actor stays in the lobby.
* ``in_room``: ``{"type": "say", "text": "..."}`` reaches every member of the room;
  ``{"type": "leave"}`` goes back to the lobby.
* Anywhere: after ``IDLE_TIMEOUT`` seconds without an event the server closes with 4000.
* A browser page may open the socket only from the server's own origin (or one of
  ``STATECHAT_ALLOWED_ORIGINS``): a page on another site is refused with 403 before the
  actor starts. Clients that send no ``Origin`` (not browsers) are let in.

Run it with ``python examples/statechat.py`` (ws://127.0.0.1:8001/ws/); draw it with
``interlock diagram statechat:StateChat`` (from ``examples/``).
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, ClassVar

import attrs
import uvicorn
from interlock.actors import JsonStateActor, ProtocolTypeRouter, URLRouter, path
from interlock.actors.security import SameOriginValidator
from interlock.dsl import State, Timeout, on, to_message
from interlock.layers import GroupLayer, InMemoryChannelLayer

AUTH_TIMEOUT = float(os.environ.get("STATECHAT_AUTH_TIMEOUT", "10"))
IDLE_TIMEOUT = float(os.environ.get("STATECHAT_IDLE_TIMEOUT", "300"))
TOKEN = os.environ.get("STATECHAT_TOKEN", "letmein")
# Browsers may open the socket only from the server's own origin, plus these patterns
# (comma-separated, e.g. "http://localhost:*,https://*.example.com"); see docs/security.md.
ALLOWED_ORIGINS = [o.strip() for o in os.environ.get("STATECHAT_ALLOWED_ORIGINS", "").split(",") if o.strip()]
ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")
EVERYONE = "statechat.everyone"


@attrs.frozen
class Login:
    """Client → server: who I am."""

    type: ClassVar[str] = "login"
    name: str
    token: str


@attrs.frozen
class Join:
    """Client → server: put me in a room."""

    type: ClassVar[str] = "join"
    room: str


@attrs.frozen
class Say:
    """Client → server: a line for my room."""

    type: ClassVar[str] = "say"
    text: str


@attrs.frozen
class ChatMessage:
    """Layer message: a line for everyone in a group."""

    type: ClassVar[str] = "chat.message"
    room: str
    sender: str
    text: str


class StateChat(JsonStateActor):
    """One chat client, as a state machine."""

    groups = (EVERYONE,)
    idle_timeout = IDLE_TIMEOUT

    authenticating = State(initial=True, timeout=AUTH_TIMEOUT, defer=["chat.message"])
    lobby = State(tags=["authenticated"])
    in_room = State(tags=["authenticated"])

    name: str = ""
    room: str = ""

    # -- authenticating -------------------------------------------------------------------

    def token_ok(self, event: Login) -> bool:
        """Guard: the shared token is right and the name is usable."""
        return event.token == TOKEN and 0 < len(event.name) <= 32

    @on.client(Login, source=authenticating, target=lobby, guard=token_ok)
    async def login(self, event: Login) -> None:
        """Welcome a client whose token is right."""
        self.name = event.name
        await self.send_json({"type": "welcome", "name": self.name})

    @on.client(Login, source=authenticating)
    async def login_refused(self, event: Login) -> None:
        """A wrong token: say so and stay."""
        await self.send_json({"type": "error", "error": "wrong token or name"})

    @on.timeout(authenticating)
    async def too_slow(self, event: Timeout) -> None:
        """No login in time."""
        await self.close(4001, f"log in within {event.seconds:g} s")

    # -- lobby ----------------------------------------------------------------------------

    def room_ok(self, event: Join) -> bool:
        """Guard: the room name can be a group name."""
        return ROOM.fullmatch(event.room) is not None

    @on.client(Join, source=lobby, target=in_room, guard=room_ok)
    async def join(self, event: Join) -> None:
        """Enter a room (the enter hook joins its group)."""
        self.room = event.room

    @on.client(Join, source=lobby)
    async def join_refused(self, event: Join) -> None:
        """A bad room name: explain, stay in the lobby."""
        await self.send_json({"type": "error", "error": "room names are 1 to 64 letters, digits, '-' or '_'"})

    @in_room.enter
    async def entered_room(self) -> None:
        """Join the room's group and tell everyone."""
        await self.channel_layer.group_add(f"statechat.room.{self.room}", self.channel_name or "")
        await self.send_json({"type": "joined", "room": self.room})
        news = ChatMessage(room="*", sender="server", text=f"{self.name} joined {self.room}")
        await self.channel_layer.group_send(EVERYONE, to_message(news))

    @in_room.exit
    async def left_room(self) -> None:
        """Leave the room's group (also on close and disconnect)."""
        await self.channel_layer.group_discard(f"statechat.room.{self.room}", self.channel_name or "")

    # -- in_room --------------------------------------------------------------------------

    @on.client(Say, source=in_room)
    async def say(self, event: Say) -> None:
        """Send a line to the room."""
        line = ChatMessage(room=self.room, sender=self.name, text=event.text)
        await self.channel_layer.group_send(f"statechat.room.{self.room}", to_message(line))

    @on.client("leave", source=in_room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None:
        """Back to the lobby."""
        await self.send_json({"type": "left", "room": self.room})

    # -- anywhere once logged in ------------------------------------------------------------

    @on.message(ChatMessage, source=[lobby, in_room])
    async def relay(self, event: ChatMessage) -> None:
        """A line for a group this client is in: pass it on."""
        await self.send_json({"type": "message", "room": event.room, "from": event.sender, "text": event.text})

    @on.idle()
    async def idle(self, event: Timeout) -> None:
        """Nothing happened for too long."""
        await self.close(4000, "idle")


def make_app(layer: GroupLayer | None = None) -> ProtocolTypeRouter:
    """The state chat on *layer* (a new in-memory layer by default), for same-origin pages."""
    return ProtocolTypeRouter(
        {"websocket": SameOriginValidator(URLRouter([path("ws/", StateChat.as_asgi())]), ALLOWED_ORIGINS)},
        channel_layer=InMemoryChannelLayer() if layer is None else layer,
    )


app = make_app()


def main() -> None:
    """Serve the state chat with uvicorn."""
    parser = argparse.ArgumentParser(description="interlock state-machine chat")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
