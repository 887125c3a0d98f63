"""Ask and reply between actors: ``await self.ask(channel, message)`` returns the answer.

Rules:

1. **An ask is a layer message** with two more keys, ``ask_id`` and ``reply_to`` (the
   asker's channel), sent like any other: in process or across processes, on every layer.
   The receiver's handler for its ``type`` runs as usual, in turn with its other events;
   what it returns (or passes to ``await self.reply(value)`` first) goes back as the layer
   message ``{"type": "interlock.reply", "ask_id": ..., "result": value}``.
2. **A failure is the asker's error, and stays the receiver's.** If the handler raises,
   the asker gets :class:`~interlock.actors.AskFailed` naming the exception, and the
   receiver's own failure policy applies (a WebSocket actor closes with 1011); a message
   the receiver has no handler for is an ``AskFailed`` too (``UnknownMessageType``), the
   receiver's ``unhandled`` policy applies.
3. **Errors come as soon as the layer can know.** No reply within *timeout*:
   :class:`~interlock.actors.AskTimeout`. The asked channel closed, unknown, or owned by a
   process whose lease ended: :class:`~interlock.actors.PeerGone`, at once, on layers that
   watch peers (:class:`~interlock.layers.PeerWatchingLayer`: in memory and SQLite); on
   others, the timeout.
4. **While an actor awaits a reply, its other events wait.** The asker keeps handling one
   event at a time: it takes from its mailbox only the reply and the notice that the peer
   is gone; everything else (client frames, layer messages, timers due) stays queued, in
   order, and is handled once the ask returns. An ask from the actor being asked is
   answered at once with :class:`~interlock.actors.AskDeadlock` (each waiting for the
   other would only end at both timeouts); other asks wait their turn.
5. ``ask()`` is for handlers (the actor's own loop); an invoked task or another task
   must use the layer directly.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, Final

import anyio
from interlock.layers import PeerWatchingLayer, WatchableLayer, require_channel_name

from ._errors import AskDeadlock, AskFailed, AskTimeout, ClientGone, PeerGone
from ._mailbox import CLIENT, LAYER

if TYPE_CHECKING:
    from ._base import BaseActor

Message = dict[str, Any]  # a layer message

__all__ = [
    "ASK_ID",
    "CONVERSATION",
    "GONE",
    "REPLY",
    "REPLY_TO",
    "ask",
    "error_of",
    "is_ask",
    "is_conversation",
    "reply_for",
]

logger = logging.getLogger("interlock.actors")

ASK_ID: Final = "ask_id"
REPLY_TO: Final = "reply_to"
REPLY: Final = "interlock.reply"
GONE: Final = "interlock.ask.gone"  # posted to the asker's own mailbox by the peer watch
CONVERSATION: Final = frozenset({REPLY, GONE})  # the types an ask's answer comes as

_ERRORS: Final[dict[str, type[AskFailed] | type[AskDeadlock]]] = {"AskDeadlock": AskDeadlock}


def is_ask(message: Message) -> bool:
    """Whether *message* is an ask (it carries ``ask_id`` and ``reply_to``)."""
    return ASK_ID in message and REPLY_TO in message and message.get("type") not in CONVERSATION


def is_conversation(message: Message) -> bool:
    """Whether *message* is a reply or a gone notice (never a handler's business)."""
    return message.get("type") in CONVERSATION


def reply_for(ask_message: Message, result: Any = None, error: BaseException | None = None) -> Message:
    """The reply message to *ask_message*: its result, or the error's type and text."""
    reply: Message = {"type": REPLY, ASK_ID: ask_message[ASK_ID]}
    if error is not None:
        reply["error"] = {"type": type(error).__name__, "message": str(error)[:1000]}
    else:
        reply["result"] = result
    return reply


def error_of(actor: str, channel: str, kind: str, reply: Message) -> Exception:
    """The exception an asker raises for an error reply."""
    error = reply.get("error")
    error_type = str(error.get("type", "Exception")) if isinstance(error, dict) else "Exception"
    text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if error_type == "AskDeadlock":
        return AskDeadlock(f"{actor} asked {channel!r} ({kind!r}), which was waiting for {actor}'s reply: {text}")
    return AskFailed(f"{channel!r} failed to answer {kind!r}: {error_type}: {text}", error_type, text)


def _checked(actor: BaseActor, channel: str, message: Message, timeout: float) -> str:
    """The ask's message type, once its arguments and caller are checked."""
    require_channel_name(channel)
    kind = message.get("type") if isinstance(message, dict) else None
    if not isinstance(kind, str) or not kind:
        msg = f"ask({channel!r}, {message!r}): the message must be a dict with a str 'type'"
        raise TypeError(msg)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        msg = f"ask(..., timeout={timeout!r}): expected a positive number of seconds"
        raise ValueError(msg)
    if getattr(actor, "_mailbox", None) is None or not actor._in_loop():
        msg = f"{type(actor).__qualname__}.ask() is for async handlers: call it from the actor's own events"
        raise RuntimeError(msg)
    return kind


async def ask(actor: BaseActor, channel: str, message: Message, timeout: float) -> Any:
    """Send *message* to *channel* as an ask and wait for the reply (rules 1 to 4)."""
    layer = actor.channel_layer
    kind = _checked(actor, channel, message, timeout)
    mailbox = actor._mailbox
    ask_id = secrets.token_hex(8)
    cancel = None
    if isinstance(layer, PeerWatchingLayer):

        def gone(watched: str, reason: str) -> None:
            mailbox.put_nowait((LAYER, {"type": GONE, ASK_ID: ask_id, "channel": watched, "reason": reason}))

        cancel = layer.watch_peer(channel, gone)
    waiting = _Waiting(actor, channel, kind, ask_id)
    deadline = anyio.current_time() + timeout
    try:
        await layer.send(channel, {**message, ASK_ID: ask_id, REPLY_TO: actor.channel_name})
        while True:
            item = await mailbox.get(deadline)
            if item is None:
                msg = f"{waiting.who} asked {channel!r} ({kind!r}) and got no reply within {timeout:g} s"
                raise AskTimeout(msg)
            if await waiting.take(item):
                return waiting.result
    finally:
        if cancel is not None:
            cancel()
        mailbox.push_front(waiting.stash)


class _Waiting:
    """One ask's wait: what its mailbox items mean, and the ones it keeps for later (rule 4)."""

    def __init__(self, actor: BaseActor, channel: str, kind: str, ask_id: str) -> None:
        self.actor = actor
        self.channel = channel
        self.kind = kind
        self.ask_id = ask_id
        self.who = type(actor).__qualname__
        self.stash: list[tuple[int, Any]] = []
        self.result: Any = None

    async def take(self, item: tuple[int, Any]) -> bool:
        """Look at one mailbox item: True when it is the reply (then ``result`` holds it)."""
        source, payload = item
        actor = self.actor
        layer = actor.channel_layer
        if source == LAYER and payload is None and isinstance(layer, WatchableLayer):
            payload = layer.take_message(actor.channel_name)  # a token: the message waits in the channel
            if payload is None:
                return False  # expired meanwhile
            item = (LAYER, payload)
        if source == LAYER and isinstance(payload, dict) and self._answers(payload):
            return True
        if source == LAYER and isinstance(payload, dict) and is_ask(payload) and payload[REPLY_TO] == self.channel:
            deadlock = AskDeadlock(f"{self.who} is waiting for your reply to {self.kind!r}")  # rule 4
            await layer.send(payload[REPLY_TO], reply_for(payload, error=deadlock))
            return False
        self.stash.append(item)
        if source == CLIENT and isinstance(payload, dict) and payload.get("type") in actor._terminal_events:
            msg = f"{self.who} asked {self.channel!r} ({self.kind!r}); its client left meanwhile"
            raise ClientGone(msg)
        return False

    def _answers(self, payload: Message) -> bool:
        if payload.get(ASK_ID) != self.ask_id:
            return False
        if payload.get("type") == REPLY:
            if "error" in payload:
                raise error_of(self.who, self.channel, self.kind, payload)
            self.result = payload.get("result")
            return True
        if payload.get("type") == GONE:
            reason = str(payload.get("reason"))
            msg = f"{self.who} asked {self.channel!r} ({self.kind!r}), which is gone ({reason}) without replying"
            raise PeerGone(msg, reason)
        return False
