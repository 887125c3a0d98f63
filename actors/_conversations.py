"""Conversations with clients: acknowledgements both ways, and reconnects that recover what was missed.

Rules:

1. **Acks from the server** (``acks = True`` on a :class:`~interlock.actors.JsonWebsocketActor`):
   a client frame that is a JSON object with an ``"ack"`` id (an int, or a str of at most
   64 characters) is handled by ``receive_json`` like any other, and what the handler
   returns goes back as ``{"ack": id, "result": value}``.  A result whose frame is over the
   actor's ``max_message_size`` is refused like any message: the client gets
   ``{"ack": id, "error": {"type": "ReplyTooLarge", ...}}`` and the server logs it.
2. **Acks from the client**: ``await self.ask_client(data, timeout=...)`` sends
   ``{"ask": id, "data": data}`` and returns the ``result`` of the client's
   ``{"reply": id, "result": ...}``; no reply in time is :class:`~interlock.actors.AskTimeout`,
   an ``"error"`` in the reply :class:`~interlock.actors.AskFailed`, the client leaving
   :class:`~interlock.actors.ClientGone`.  Meanwhile, as with ``ask()``, the actor's other
   events wait in its mailbox, in order.  A reply no ask waits for (late, unknown) is dropped.
3. **Recovery** (``recovery = Recovery(secret=...)``; the layer keeps the group's history,
   see :class:`~interlock.layers.GroupHistory`): ``await self.join_recovering(group)``
   joins the group, then accepts the connection if ``connect()`` has not (so a member
   misses nothing sent once its handshake is done).  A client that asks for a session
   (query parameter ``recover``, empty the first time) is sent ``{"interlock": "session", "group", "token", "offset",
   "recovered"}`` to present next time; one that presents a token and the last offset it
   saw (``recover=TOKEN&offset=N``) is first handed every message it missed, through the
   message's handler, in order, before any live one; live messages it has already had
   that way are dropped, so each arrives once.  It returns a :class:`Recovered` saying what
   happened (``recovered`` is None for a new session, False when the history no longer
   holds what was missed: the application must resync).  A client that does not ask
   (no ``recover`` parameter) just joins: old clients see nothing new.
4. **A token proves the session, not the position**: it is an HMAC over the group and its
   epoch, with its issue time; a forged or mangled token (or another group's) closes the
   connection with 4401, an expired one (older than ``Recovery.max_age``) with 4408, an
   offset that is not an integer or is ahead of the group with 4400, each with a reason
   and no traceback: the client's mistake, not the server's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

import anyio
import attrs
from interlock.dsl import CONNECTING
from interlock.layers import POSITION, HistoryLayer, InvalidHistoryPosition

from ._errors import AskFailed, AskTimeout, ClientGone, MalformedMessage
from ._mailbox import CLIENT

if TYPE_CHECKING:
    from ._base import BaseActor
    from ._websocket import JsonWebsocketActor

__all__ = ["Recovered", "Recovery", "RecoveryRefused"]

logger = logging.getLogger("interlock.actors")

ACK: Final = "ack"
ASK: Final = "ask"
REPLY: Final = "reply"
_MAX_ID: Final = 64
INVALID_TOKEN: Final = 4401
EXPIRED_TOKEN: Final = 4408
BAD_OFFSET: Final = 4400


class RecoveryRefused(MalformedMessage):
    """A reconnect presented a recovery token or offset that cannot be honoured (rule 4)."""


def valid_id(value: object) -> bool:
    """Whether *value* may be an ack or reply id."""
    if type(value) is int:
        return True
    return type(value) is str and 0 < len(value) <= _MAX_ID


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(value: object) -> bytes:
    return value.encode() if isinstance(value, str) else value  # type: ignore[return-value]  # checked after


@attrs.frozen
class Recovery:
    """How a WebSocket actor's sessions recover what they missed (rules 3 and 4).

    :param secret: the key tokens are signed with (16 bytes at least); every process
        serving the same clients must share it.
    :param max_age: seconds a token stays valid after it was issued (each reconnect
        issues a new one).
    :param token_param: the query parameter the client's token comes in.
    :param offset_param: the query parameter the last offset the client saw comes in.
    """

    secret: bytes = attrs.field(converter=_secret)
    max_age: float = 86400.0
    token_param: str = "recover"  # noqa: S105 - a parameter's name, not a password
    offset_param: str = "offset"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < 16:
            msg = "Recovery(secret=...) needs a secret of 16 bytes or more (shared by every server process)"
            raise ValueError(msg)
        if not isinstance(self.max_age, int | float) or not self.max_age > 0:
            msg = f"Recovery max_age must be a positive number of seconds, got {self.max_age!r}"
            raise ValueError(msg)

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self.secret, body, hashlib.sha256).digest()[:18]

    def issue(self, group: str, epoch: str, now: float | None = None) -> str:
        """A token for a session in *group*, whose history is in *epoch*."""
        issued = int(time.time() if now is None else now)
        body = json.dumps([group, epoch, issued], separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}"

    def verify(self, token: str, group: str, now: float | None = None) -> str:
        """The epoch *token* was issued for, in *group*; :class:`RecoveryRefused` otherwise."""
        try:
            encoded, _, signature = token.partition(".")
            body = _unb64(encoded)
            good = hmac.compare_digest(_unb64(signature), self._sign(body))
            token_group, epoch, issued = json.loads(body) if good else (None, None, None)
        except (ValueError, TypeError, binascii.Error):
            good = False
        if not good or token_group != group or not isinstance(epoch, str) or not isinstance(issued, int):
            msg = f"recovery token invalid for group {group!r}: not one this server issued"
            raise RecoveryRefused(msg, close_code=INVALID_TOKEN)
        age = (time.time() if now is None else now) - issued
        if age > self.max_age:
            msg = f"recovery token expired: issued {age:.0f} s ago, tokens last {self.max_age:g} s; reconnect afresh"
            raise RecoveryRefused(msg, close_code=EXPIRED_TOKEN)
        return epoch


@attrs.frozen
class Recovered:
    """What :meth:`~interlock.actors.JsonWebsocketActor.join_recovering` did.

    :ivar group: the group joined.
    :ivar recovered: None for a new session (no token), True when every missed message
        was handed over, False when the history no longer held them (resync).
    :ivar missed: how many missed messages were handed over.
    :ivar epoch: the group's history epoch.
    :ivar offset: the latest offset the client has now been given (or could have been).
    """

    group: str
    recovered: bool | None
    missed: int
    epoch: str
    offset: int


async def _accepted(actor: JsonWebsocketActor) -> None:
    """Accept the connection if ``connect()`` has not (joined first: no message is missed)."""
    if actor.state == CONNECTING:
        await actor.accept()


def _query(actor: JsonWebsocketActor) -> dict[str, list[str]]:
    raw = actor.scope.get("query_string", b"")
    return parse_qs(raw.decode("latin-1") if isinstance(raw, bytes) else str(raw), keep_blank_values=True)


def _offset(text: str | None, group: str) -> int:
    if text is None or not text.isdigit() or len(text) > 18:
        msg = f"recovery offset for group {group!r} must be a non-negative integer, got {text!r}"
        raise RecoveryRefused(msg, close_code=BAD_OFFSET)
    return int(text)


async def join_recovering(actor: JsonWebsocketActor, group: str, recovery: Recovery | None) -> Recovered:
    """Join *group*, hand over what the client missed, tell it its session (rule 3)."""
    policy = recovery if recovery is not None else actor.recovery
    if policy is None:
        msg = f"{type(actor).__qualname__}.join_recovering() needs a Recovery: set recovery = Recovery(secret=...)"
        raise TypeError(msg)
    layer = actor.channel_layer
    if not isinstance(layer, HistoryLayer) or layer.history is None or not layer.history.keeps(group):
        msg = (
            f"{type(actor).__qualname__}.join_recovering({group!r}): the channel layer keeps no history of "
            f"this group; build it with history=GroupHistory(groups=...) matching {group!r}"
        )
        raise TypeError(msg)
    query = _query(actor)
    tokens, offsets = query.get(policy.token_param), query.get(policy.offset_param)
    if not tokens or not tokens[0]:
        await layer.group_add(group, actor.channel_name)
        page = await layer.group_history(group, since=0, limit=1)
        await _accepted(actor)
        outcome = Recovered(group, None, 0, page.epoch, page.offset)
        if not tokens:  # a client that never asked for a session gets no session frame
            return outcome
    else:
        try:
            epoch = policy.verify(tokens[0], group)
            since = _offset(offsets[0] if offsets else None, group)
            await layer.group_add(group, actor.channel_name)
            try:
                page = await layer.group_history(group, since=since, epoch=epoch)
            except InvalidHistoryPosition as exc:
                raise RecoveryRefused(str(exc), close_code=BAD_OFFSET) from exc
        except RecoveryRefused:
            await _accepted(actor)  # so that the close code and its reason reach the client
            raise
        await _accepted(actor)
        if page.complete:
            last = since
            for message in page.messages:
                last = message[POSITION]["offset"]
                floors = actor._floors
                if floors is None:
                    floors = actor._floors = {}
                floors[group] = last
                await actor.dispatch(message)
            outcome = Recovered(group, True, len(page.messages), page.epoch, max(last, since))
        else:
            outcome = Recovered(group, False, 0, page.epoch, page.offset)
    session = {
        "interlock": "session",
        "group": group,
        "token": policy.issue(group, outcome.epoch),
        "offset": outcome.offset,
        "recovered": outcome.recovered,
    }
    await actor.send_json(session)
    return outcome


def replayed(actor: BaseActor, message: dict[str, Any]) -> bool:
    """Whether a live *message* was handed over already by a recovery (rule 3)."""
    floors = actor._floors
    position = message.get(POSITION)
    if floors is None or type(position) is not dict:
        return False
    group = position.get("group")
    floor = floors.get(group)  # type: ignore[arg-type]
    if floor is None:
        return False
    offset = position.get("offset")
    # Kept for the actor's life: live copies from several processes arrive interleaved, so
    # one past the floor does not mean every later one is.
    return type(offset) is int and offset <= floor


def answer_frame(actor: JsonWebsocketActor, ack: object, result: Any) -> str:
    """The text of the ack frame for *result*, or of its refusal when too large (rule 1)."""
    try:
        text = actor.encode_json({ACK: ack, "result": result})
    except (TypeError, ValueError) as exc:
        logger.warning("%r: the answer to ack %r cannot be encoded: %s", actor, ack, exc)
        return actor.encode_json({ACK: ack, "error": {"type": "UnencodableReply", "message": str(exc)[:200]}})
    limit = actor.max_message_size
    if limit is not None and len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
        logger.warning("%r: the answer to ack %r is %d characters, over max_message_size", actor, ack, len(text))
        error = {"type": "ReplyTooLarge", "message": f"the reply is over the limit of {limit:,} bytes"}
        return actor.encode_json({ACK: ack, "error": error})
    return text


async def ask_client(actor: JsonWebsocketActor, data: Any, timeout: float) -> Any:
    """Send ``{"ask": id, "data": data}`` and wait for the client's reply (rule 2)."""
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        msg = f"ask_client(..., timeout={timeout!r}): expected a positive number of seconds"
        raise ValueError(msg)
    mailbox = getattr(actor, "_mailbox", None)
    if not actor._in_loop() or (mailbox is None and getattr(actor, "_asgi_send", None) is None):
        msg = f"{type(actor).__qualname__}.ask_client() is for async handlers: call it from the actor's own events"
        raise RuntimeError(msg)
    if mailbox is None:
        msg = (
            f"{type(actor).__qualname__}.ask_client() waits in the actor's mailbox, which an actor served "
            "without a channel layer has only with acks = True: set acks = True on the class"
        )
        raise RuntimeError(msg)
    actor._client_asks += 1
    ask_id = actor._client_asks
    who = type(actor).__qualname__
    await actor.send_json({ASK: ask_id, "data": data})
    deadline = anyio.current_time() + timeout
    stash: list[tuple[int, Any]] = []
    try:
        while True:
            item = await mailbox.get(deadline)
            if item is None:
                msg = f"{who} asked its client (ask {ask_id}) and got no reply within {timeout:g} s"
                raise AskTimeout(msg)
            source, payload = item
            if source == CLIENT and isinstance(payload, dict):
                kind = payload.get("type")
                if kind == "websocket.receive" and isinstance(payload.get("text"), str):
                    reply = _reply_in(actor, payload["text"])
                    if reply is not None and reply.get(REPLY) == ask_id:
                        if "error" in reply:
                            text = str(reply["error"])[:200]
                            raise AskFailed(f"{who}'s client refused ask {ask_id}: {text}", "ClientError", text)
                        return reply.get("result")
                elif kind in actor._terminal_events:
                    stash.append(item)
                    msg = f"{who} asked its client (ask {ask_id}); the client left meanwhile"
                    raise ClientGone(msg)
            stash.append(item)
    finally:
        mailbox.push_front(stash)


def _reply_in(actor: JsonWebsocketActor, text: str) -> dict[str, Any] | None:
    if '"reply"' not in text:
        return None
    try:
        content = actor.decode_json(text)
    except MalformedMessage:
        return None
    return content if type(content) is dict and valid_id(content.get(REPLY)) else None
