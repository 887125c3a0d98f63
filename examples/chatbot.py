"""A chat bot for ``examples/chat.py``: a worker on named channels, one member per room.

Run it beside the chat, on the same layer (the chat's SQLite file by default)::

    interlock worker chatbot:app chatbot.lobby chatbot.red --layer chatbot:layer   # from examples/

Each channel ``chatbot.<room>`` is served by one :class:`ChatBot` instance, which joins the
room's group ``chat.<room>`` as a member (the room listing counts it) and answers, in
the room:

* ``/help`` — what it can do;
* ``/who`` — who is in the room: the members come from the layer's ``group_members``
  (every process's, on the SQLite layer), and each is asked its name on a reply channel
  of the bot's own (``chat.whois`` → ``chat.iam``), waiting at most a second;
* ``/roll [NdM]`` — dice (``2d6``; 1 to 20 dice of 2 to 1000 faces; ``1d6`` by default).

Other messages are left alone. A message the bot cannot handle is logged and the bot goes
on (a worker's rule); SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import anyio
from chat import make_layer
from interlock.actors import Actor, Receive, Scope, Send, handler
from interlock.layers import ChannelFull, GroupLayer, ListableGroupLayer

NAME = "bot"
HELP = "I answer /who (who is here), /roll [NdM] (dice, e.g. /roll 2d6) and /help"
DICE = re.compile(r"(\d{1,2})d(\d{1,4})")
WHO_WAIT = 1.0  # seconds the bot waits for the members' names

layer: GroupLayer = make_layer()


def room_of(channel: str) -> str:
    """``chatbot.lobby`` → ``lobby``."""
    prefix, _, room = channel.partition(".")
    if prefix != "chatbot" or not room:
        msg = f"the bot serves channels named chatbot.<room>, not {channel!r}"
        raise ValueError(msg)
    return room


def roll(spec: str) -> str:
    """The answer to ``/roll spec``."""
    match = DICE.fullmatch(spec or "1d6")
    if match is None:
        return "usage: /roll NdM, e.g. /roll 2d6"
    count, faces = int(match[1]), int(match[2])
    if not (1 <= count <= 20 and 2 <= faces <= 1000):
        return "I roll 1 to 20 dice of 2 to 1000 faces"
    dice = [secrets.randbelow(faces) + 1 for _ in range(count)]
    return (
        f"{spec or '1d6'}: {' + '.join(map(str, dice))} = {sum(dice)}" if count > 1 else f"{spec or '1d6'}: {dice[0]}"
    )


class ChatBot(Actor):
    """One room's bot: reads the room's messages, answers the commands."""

    @property
    def room(self) -> str:
        """The room this instance serves (from its channel's name)."""
        return room_of(self.scope["channel"])

    async def say(self, text: str) -> None:
        """Post *text* to the room, as the bot."""
        await self.channel_layer.group_send(
            f"chat.{self.room}", {"type": "chat.message", "from": NAME, "message": text}
        )

    @handler
    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message in the room: answer it if it is a command for the bot."""
        text = event.get("message")
        if event.get("from") == NAME or not isinstance(text, str) or not text.startswith("/"):
            return
        command, _, rest = text.strip().partition(" ")
        if command == "/help":
            await self.say(HELP)
        elif command == "/roll":
            await self.say(roll(rest.strip()))
        elif command == "/who":
            await self.say(await self.who())

    @handler
    async def chat_whois(self, event: dict[str, Any]) -> None:
        """Another bot asks: answer for this one."""
        await self.channel_layer.send(event["reply_to"], {"type": "chat.iam", "name": NAME})

    async def who(self) -> str:
        """Who is in the room: the group's members, each asked its name on a reply channel."""
        layer = self.channel_layer
        if not isinstance(layer, ListableGroupLayer):
            return "this channel layer cannot list a room's members"
        members = await layer.group_members(f"chat.{self.room}")
        others = sorted(m for m in members if m != self.scope["channel"])
        reply = await layer.new_channel("who")
        asked = 0
        for member in others:
            try:
                await layer.send(member, {"type": "chat.whois", "reply_to": reply})
                asked += 1
            except ChannelFull:
                pass  # too busy to answer: counted as silent below
        names: list[str] = []
        readers = 0
        with anyio.move_on_after(WHO_WAIT):
            while len(names) + readers < asked:
                answer = await layer.receive(reply)
                if isinstance(answer.get("name"), str):
                    names.append(answer["name"])
                else:
                    readers += 1
        await layer.close_channel(reply)
        silent = len(others) - len(names) - readers
        text = f"in {self.room}: " + (", ".join(sorted(names)) or "nobody but me")
        if readers:
            text += f"; {readers} feed reader(s)"
        if silent:
            text += f"; {silent} not answering"
        return text


bot = ChatBot.as_asgi()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The worker app: join the room the channel names, then run its bot."""
    if scope["type"] == "channel":
        await scope["interlock.channel_layer"].group_add(f"chat.{room_of(scope['channel'])}", scope["channel"])
    await bot(scope, receive, send)
