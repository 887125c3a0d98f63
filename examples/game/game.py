"""Tic-tac-toe for two browsers: a turn-based game as a state machine (see README.md).

Run it with ``examples/game/game.sh`` (or ``python -m examples.game.game`` from the
repository) and open http://127.0.0.1:8002/ in two tabs. Each connection to
``/ws/game/`` is one :class:`Player`::

    lobby ─play─▶ matching (looking ⇄ proposing) ─▶ game
    lobby ─rejoin─▶ rejoining ─resume─▶ game
    game:  playing (judging ─always─▶ my_turn | their_turn | finished)
           playing ─opponent gone─▶ opponent_away ─back in time─▶ playing.history
           opponent_away ─grace period over─▶ finished

Players wait in the ``game.lobby`` group; one that finds another there (``group_members``)
proposes a game, and crossed proposals are settled by channel name. A dropped player's
new connection presents the game id and the token it got in ``matched``; the one who
stayed goes back to ``playing.history``. Moves out of turn or on a taken square get an
``error`` frame; a rejoin is refused with 4403 (wrong token), 4409 (still connected),
4410 (game over) or 4404 (nobody answers); other bad frames close with 1007/1008/1003.
Settings come from the environment (:func:`make_layer`, :func:`env_delays`) or
:func:`make_app`. Draw it with ``interlock diagram examples.game.game:Player``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from interlock.actors import (
    ASGIApp,
    JsonStateActor,
    ProtocolTypeRouter,
    Receive,
    Scope,
    Send,
    URLRouter,
    path,
)
from interlock.actors.security import SameOriginValidator
from interlock.dsl import Crossing, State, Timeout, on, to_message
from interlock.layers import (
    GroupLayer,
    InMemoryChannelLayer,
    ListableGroupLayer,
    PeerWatchingLayer,
    SQLiteChannelLayer,
)

from .messages import (
    Accept,
    Away,
    Cancel,
    Decline,
    Forfeit,
    Move,
    Moved,
    PeerGone,
    Play,
    Propose,
    Refused,
    Rejoin,
    RejoinRequest,
    Resume,
)

HERE = Path(__file__).resolve().parent
LOBBY = "game.lobby"
GAME_ID = re.compile(r"[0-9a-f]{16}")
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
EMPTY = "." * 9

MOVE_SECONDS = float(os.environ.get("INTERLOCK_GAME_MOVE", "30"))
GRACE_SECONDS = float(os.environ.get("INTERLOCK_GAME_GRACE", "30"))
SLACK = 5.0  # how much longer than a move the waiting side waits before calling the opponent gone


def token_hash(token: str) -> str:
    """What an actor keeps of its opponent's token: enough to check it, not to forge it."""
    return hashlib.sha256(token.encode()).hexdigest()


def winner(board: str) -> str:
    """``"X"`` or ``"O"`` if three in a row, else ``""``."""
    for a, b, c in LINES:
        if board[a] != "." and board[a] == board[b] == board[c]:
            return board[a]
    return ""


class Player(JsonStateActor):
    """One player's connection: matched through the lobby group, then one game."""

    lobby = State(initial=True)
    matching = State()
    looking = State(parent=matching, after={"look": 5.0})  # look again now and then (lost proposals)
    proposing = State(parent=matching, after={"answer": 2.0})
    rejoining = State(timeout=2.0)
    game = State()
    playing = State(parent=game)
    judging = State(parent=playing, initial=True)
    my_turn = State(parent=playing, after={"move": MOVE_SECONDS})
    their_turn = State(parent=playing, after={"wait": MOVE_SECONDS + SLACK})
    opponent_away = State(parent=game, after={"grace": GRACE_SECONDS})
    finished = State(parent=game, terminal=True)

    name: str = ""
    game_id: str = ""
    token: str = ""
    mark: str = ""
    board: str = EMPTY
    turn: str = "X"
    result: str = ""
    reason: str = ""
    opponent: str = ""  # the opponent's channel
    opponent_name: str = ""
    opponent_hash: str = ""  # sha256 of the opponent's token, to check its rejoin
    candidate: str = ""  # whom this player proposed to, in matching
    tried: frozenset[str] = frozenset()  # lobby members that did not answer

    @property
    def me(self) -> str:
        """This actor's channel (set once the connection is open)."""
        return self.channel_name or ""

    @property
    def their_mark(self) -> str:
        """The opponent's mark."""
        return "O" if self.mark == "X" else "X"

    def seconds(self, key: str, default: float) -> float:
        """A delay as configured for this instance (``as_asgi(delays=...)``)."""
        return float(self.delays.get(key, default))

    async def tell(self, channel: str, message: Any) -> None:
        """Send an attrs layer message to *channel*."""
        await self.channel_layer.send(channel, to_message(message))

    def _new_game(self, game_id: str, mark: str, opponent: str, name: str, their_hash: str) -> None:
        self.game_id, self.mark, self.opponent, self.opponent_name = game_id, mark, opponent, name
        self.opponent_hash, self.board, self.turn, self.result = their_hash, EMPTY, "X", ""

    # -- lobby -----------------------------------------------------------------------------

    @on.client(Play, source=lobby, target=matching)
    async def play(self, event: Play) -> None:
        """Look for an opponent under *name*."""
        self.name = event.name.strip()[:32] or "anonymous"

    def rejoin_ok(self, event: RejoinRequest) -> bool:
        """Guard: the game id looks like one (the token is checked by the opponent)."""
        return GAME_ID.fullmatch(event.game) is not None and 0 < len(event.token) <= 64

    @on.client(RejoinRequest, source=lobby, target=rejoining, guard=rejoin_ok)
    async def rejoin(self, event: RejoinRequest) -> None:
        """Ask the game's group to take this connection back."""
        self.game_id, self.token = event.game, event.token

    @on.client(RejoinRequest, source=lobby)
    async def rejoin_malformed(self, event: RejoinRequest) -> None:
        """Not a game id: say so, stay in the lobby."""
        await self.send_json({"type": "error", "error": "rejoin needs the 16-hex-digit game id and its token"})

    # -- matching ----------------------------------------------------------------------------

    @matching.enter
    async def entered_matching(self) -> None:
        """Wait in the lobby group."""
        self.tried = frozenset()
        await self.channel_layer.group_add(LOBBY, self.me)
        await self.send_json({"type": "waiting"})

    @matching.exit
    async def left_matching(self) -> None:
        """Leave the lobby group (also when the connection ends)."""
        await self.channel_layer.group_discard(LOBBY, self.me)

    @looking.enter
    async def look(self) -> None:
        """Pick the first other member of the lobby group not tried yet."""
        layer = self.channel_layer
        members = await layer.group_members(LOBBY) if isinstance(layer, ListableGroupLayer) else frozenset()
        others = sorted(members - {self.me} - self.tried)
        self.candidate = others[0] if others else ""

    def has_candidate(self, event: None) -> bool:
        """Guard: someone else is waiting."""
        return bool(self.candidate)

    @on.always(source=looking, target=proposing, guard=has_candidate)
    async def propose(self, event: None) -> None:
        """Propose a game to the candidate (the proposer plays X)."""
        self.game_id, self.token = secrets.token_hex(8), secrets.token_urlsafe(16)
        offer = Propose(self.me, self.name, self.game_id, token_hash(self.token))
        await self.tell(self.candidate, offer)

    @on.after("look", source=looking, target=looking)
    async def look_again(self, event: Timeout) -> None:
        """Nobody was there a moment ago: look again."""

    def from_candidate(self, event: Accept | Decline | Propose) -> bool:
        """Guard: the message comes from the player this one proposed to."""
        return event.channel == self.candidate

    def they_propose_first(self, event: Propose) -> bool:
        """Guard: two players proposed to each other; the smaller channel's proposal wins."""
        return event.channel == self.candidate and event.channel < self.me

    @on.message(Propose, source=looking, target=game)
    async def accept_proposal(self, event: Propose) -> None:
        """Someone proposes a game while this player looks: accept, play O."""
        await self._accept(event)

    @on.message(Propose, source=proposing, target=game, guard=they_propose_first)
    async def accept_crossed(self, event: Propose) -> None:
        """Crossed proposals, and theirs wins: accept it (they will ignore ours)."""
        await self._accept(event)

    @on.message(Propose, source=proposing, guard=from_candidate)
    async def ignore_crossed(self, event: Propose) -> None:
        """Crossed proposals, and ours wins: they will accept it."""

    async def _accept(self, event: Propose) -> None:
        self.token = secrets.token_urlsafe(16)
        self._new_game(event.game, "O", event.channel, event.name, event.token_hash)
        await self.tell(event.channel, Accept(self.me, self.name, token_hash(self.token)))

    @on.message(Propose)
    async def decline(self, event: Propose) -> None:
        """Busy (proposing to someone else, or not matching): no."""
        await self.tell(event.channel, Decline(self.me))

    @on.message(Accept, source=proposing, target=game, guard=from_candidate)
    async def accepted(self, event: Accept) -> None:
        """The candidate accepted: play X."""
        self._new_game(self.game_id, "X", event.channel, event.name, event.token_hash)

    @on.message(Accept)
    async def accepted_too_late(self, event: Accept) -> None:
        """An accept for a proposal this player gave up on: tell them to look again."""
        await self.tell(event.channel, Cancel(self.me))

    @on.message(Decline, source=proposing, target=looking, guard=from_candidate)
    async def declined(self, event: Decline) -> None:
        """The candidate is busy: try the next one."""
        self.tried |= {event.channel}

    @on.message(Decline)
    async def declined_late(self, event: Decline) -> None:
        """A decline this player no longer waits for."""

    @on.after("answer", source=proposing, target=looking)
    async def no_answer(self, event: Timeout) -> None:
        """The candidate did not answer (gone?): try the next one."""
        self.tried |= {self.candidate}

    # -- rejoining ---------------------------------------------------------------------------

    @rejoining.enter
    async def ask_to_rejoin(self) -> None:
        """Ask whoever is left in the game to take this connection back."""
        await self.channel_layer.group_send(f"game.{self.game_id}", to_message(Rejoin(self.me, self.token)))

    @on.message(Resume, source=rejoining, target=game)
    async def resumed(self, event: Resume) -> None:
        """Back in the game, as it stands."""
        self.mark, self.opponent, self.opponent_name, self.opponent_hash = (
            event.mark,
            event.channel,
            event.name,
            event.token_hash,
        )
        self.board, self.turn, self.result = event.board, event.turn, ""
        await self.send_json({"type": "resumed", **self._summary()})

    @on.message(Refused, source=rejoining)
    async def refused(self, event: Refused) -> None:
        """The game will not have this connection back."""
        await self.close(event.code, event.reason)

    @on.timeout(rejoining)
    async def nobody_answered(self, event: Timeout) -> None:
        """No player of that game is connected any more (or there never was one)."""
        await self.close(4404, f"no game {self.game_id} is waiting for you: unknown, or its players left")

    # -- the game ------------------------------------------------------------------------------

    def _summary(self) -> dict[str, Any]:
        return {
            "game": self.game_id,
            "mark": self.mark,
            "opponent": self.opponent_name,
            "board": self.board,
            "turn": self.turn,
        }

    def watch_opponent(self, channel: str) -> None:
        """Be told when the opponent's channel is gone, where the layer can tell (``peer.gone``)."""
        if self.opponent and self.opponent != channel:
            self.unwatch(self.opponent)
        self.opponent = channel
        if isinstance(self.channel_layer, PeerWatchingLayer):
            self.watch(channel)

    @game.enter
    async def entered_game(self, crossing: Crossing) -> None:
        """Join the game's group (a rejoining connection finds the game through it)."""
        await self.channel_layer.group_add(f"game.{self.game_id}", self.me)
        self.watch_opponent(self.opponent)
        if crossing.event != Resume.type:
            await self.send_json({"type": "matched", "token": self.token, **self._summary()})

    @game.exit
    async def left_game(self, crossing: Crossing) -> None:
        """Leave the group; a connection ending mid-game tells the opponent."""
        await self.channel_layer.group_discard(f"game.{self.game_id}", self.me)
        self.unwatch(self.opponent)
        if crossing.teardown and crossing.source.startswith("open.game.playing"):
            await self.tell(self.opponent, Away(self.me))

    def game_over(self, event: None) -> bool:
        """Guard: three in a row, or no square left."""
        return bool(winner(self.board)) or "." not in self.board

    def my_move(self, event: None) -> bool:
        """Guard: it is this player's turn."""
        return self.turn == self.mark

    @on.always(source=judging, target=finished, guard=game_over)
    async def game_decided(self, event: None) -> None:
        """Won, lost or drawn on the board."""
        mark = winner(self.board)
        self.result = "draw" if not mark else ("won" if mark == self.mark else "lost")
        self.reason = "three in a row" if mark else "the board is full"

    @on.always(source=judging, target=my_turn, guard=my_move)
    async def to_me(self, event: None) -> None:
        """This player moves next."""

    @on.always(source=judging, target=their_turn)
    async def to_them(self, event: None) -> None:
        """The opponent moves next."""

    @my_turn.enter
    async def your_turn(self) -> None:
        """Tell the client it may move, and for how long."""
        seconds = self.seconds("my_turn:move", MOVE_SECONDS)
        await self.send_json({"type": "turn", "yours": True, "seconds": seconds, **self._summary()})

    @their_turn.enter
    async def their_move(self) -> None:
        """Tell the client to wait."""
        await self.send_json({"type": "turn", "yours": False, **self._summary()})

    def legal(self, event: Move) -> bool:
        """Guard: a square on the board, and free."""
        return 0 <= event.square < 9 and self.board[event.square] == "."

    async def _place(self, mark: str, square: int) -> None:
        self.board = self.board[:square] + mark + self.board[square + 1 :]
        self.turn = "O" if mark == "X" else "X"
        await self.send_json({"type": "moved", "mark": mark, "square": square, "board": self.board})

    @on.client(Move, source=my_turn, target=judging, guard=legal)
    async def move(self, event: Move) -> None:
        """Place this player's mark and tell the opponent."""
        await self._place(self.mark, event.square)
        await self.tell(self.opponent, Moved(self.me, event.square))

    @on.client(Move, source=my_turn)
    async def illegal_move(self, event: Move) -> None:
        """Off the board or taken: explain, keep the turn (and its clock)."""
        await self.send_json(
            {"type": "error", "error": f"square {event.square} is not free: pick one of 0-8 showing '.'"}
        )

    @on.client(Move)
    async def out_of_turn(self, event: Move) -> None:
        """A move when it is not this player's turn."""
        if self.state.endswith("their_turn"):
            await self.send_json({"type": "error", "error": "it is your opponent's turn"})
        else:
            await self._not_now("move")

    def from_opponent(self, event: Moved | Forfeit | Away | Cancel) -> bool:
        """Guard: the message comes from this game's opponent."""
        return event.channel == self.opponent

    @on.message(Moved, source=their_turn, target=judging, guard=from_opponent)
    async def opponent_moved(self, event: Moved) -> None:
        """The opponent's mark (checked by its own actor)."""
        await self._place(self.their_mark, event.square)

    @on.after("move", source=my_turn, target=finished)
    async def out_of_time(self, event: Timeout) -> None:
        """No move in time: this player loses."""
        self.result, self.reason = "lost", f"no move within {event.seconds:g} s"
        await self.tell(self.opponent, Forfeit(self.me, self.reason))

    @on.after("wait", source=their_turn, target=finished)
    async def opponent_silent(self, event: Timeout) -> None:
        """The opponent neither moved nor forfeited (its server may be gone): a win."""
        self.result, self.reason = "won", "your opponent went silent"

    @on.client("resign", source=[playing, opponent_away], target=finished)
    async def resign(self, event: dict[str, Any]) -> None:
        """Give up."""
        self.result, self.reason = "lost", "you resigned"
        await self.tell(self.opponent, Forfeit(self.me, "resigned"))

    @on.message(Forfeit, source=playing, target=finished, guard=from_opponent)
    async def opponent_forfeits(self, event: Forfeit) -> None:
        """The opponent lost: out of time, or resigned."""
        self.result, self.reason = "won", f"your opponent forfeits: {event.reason}"

    @on.message(Cancel, source=playing, target=matching, guard=from_opponent)
    async def match_cancelled(self, event: Cancel) -> None:
        """The proposer gave up before this player's accept arrived: look again."""
        await self.send_json({"type": "cancelled"})

    # -- the opponent away and back --------------------------------------------------------

    @on.message(Away, source=playing, target=opponent_away, guard=from_opponent)
    async def opponent_left(self, event: Away) -> None:
        """The opponent's connection dropped: wait for it, for the grace period."""
        await self._wait_for_opponent()

    async def _wait_for_opponent(self) -> None:
        grace = self.seconds("opponent_away:grace", GRACE_SECONDS)
        await self.send_json({"type": "opponent_away", "seconds": grace})

    def opponent_gone_now(self, event: PeerGone) -> bool:
        """Guard: the watched channel is the opponent's (its server may have died)."""
        return event.channel == self.opponent

    @on.message(PeerGone, source=playing, target=opponent_away, guard=opponent_gone_now)
    async def opponent_lost(self, event: PeerGone) -> None:
        """The layer says the opponent's channel is gone (closed, or its process's lease ended)."""
        await self._wait_for_opponent()

    @on.message(PeerGone)
    async def peer_gone_ignored(self, event: PeerGone) -> None:
        """Already away (game.away came first), or decided: nothing to do."""

    def token_ok(self, event: Rejoin) -> bool:
        """Guard: the rejoining connection has the opponent's token."""
        return hmac.compare_digest(token_hash(event.token), self.opponent_hash)

    @on.message(Rejoin, source=opponent_away, target=playing.history, guard=token_ok)
    async def opponent_back(self, event: Rejoin) -> None:
        """The opponent is back within the grace period: resume where the game was."""
        self.watch_opponent(event.channel)
        resume = Resume(self.me, self.name, token_hash(self.token), self.board, self.turn, self.their_mark)
        await self.tell(event.channel, resume)
        await self.send_json({"type": "opponent_back"})

    @on.message(Rejoin, source=playing, guard=token_ok)
    async def rejoin_while_connected(self, event: Rejoin) -> None:
        """The right token, but that player's connection is still here."""
        await self.tell(event.channel, Refused(4409, f"you are still connected to game {self.game_id}"))

    def own_token(self, event: Rejoin) -> bool:
        """Guard: the rejoining connection has this player's own token (every member hears a rejoin)."""
        return hmac.compare_digest(event.token, self.token)

    @on.message(Rejoin, source=game, guard=own_token)
    async def rejoin_as_me(self, event: Rejoin) -> None:
        """This player's own token: its connection is this one, still here."""
        await self.tell(event.channel, Refused(4409, f"you are still connected to game {self.game_id}"))

    @on.message(Rejoin, source=finished)
    async def rejoin_too_late(self, event: Rejoin) -> None:
        """The game is over (the grace period passed, or it was decided)."""
        await self.tell(event.channel, Refused(4410, f"game {self.game_id} is over: {self.reason}"))

    @on.message(Rejoin)
    async def rejoin_forged(self, event: Rejoin) -> None:
        """A token of neither player (both members answer so: the first answer counts)."""
        await self.tell(event.channel, Refused(4403, f"that token does not belong to game {self.game_id}"))

    @on.after("grace", source=opponent_away, target=finished)
    async def opponent_gone(self, event: Timeout) -> None:
        """The opponent did not come back in time: a win by forfeit."""
        self.result, self.reason = "won", f"your opponent did not come back within {event.seconds:g} s"

    @on.message(Away)
    async def away_ignored(self, event: Away) -> None:
        """A departure after the game was decided (or from a stale opponent): nothing to do."""

    @on.message(Moved)
    async def stale_move(self, event: Moved) -> None:
        """A move that does not belong to this game's turn: dropped."""

    @on.message(Forfeit)
    async def stale_forfeit(self, event: Forfeit) -> None:
        """A forfeit after the game was decided: dropped."""

    @on.message(Cancel)
    async def stale_cancel(self, event: Cancel) -> None:
        """A cancel for a game this player is no longer in."""

    # -- finished ----------------------------------------------------------------------------

    @finished.enter
    async def announce(self) -> None:
        """The result, to the client."""
        await self.send_json({"type": "over", "result": self.result, "reason": self.reason, **self._summary()})

    @on.client("again", source=finished, target=matching)
    async def again(self, event: dict[str, Any]) -> None:
        """Another game, against whoever waits."""

    # -- known requests at the wrong time: the client's mistake, explained ------------------

    async def _not_now(self, what: str) -> None:
        where = self.state.removeprefix("open.").replace(".", " / ")
        await self.send_json({"type": "error", "error": f"{what} is not possible now (you are in {where})"})

    @on.client(Play)
    async def play_not_now(self, event: Play) -> None:
        """``play`` outside the lobby."""
        await self._not_now("play")

    @on.client(RejoinRequest)
    async def rejoin_not_now(self, event: RejoinRequest) -> None:
        """``rejoin`` outside the lobby (a connection rejoins once, first thing)."""
        await self._not_now("rejoin")

    @on.client("resign")
    async def resign_not_now(self, event: dict[str, Any]) -> None:
        """``resign`` with no game in progress."""
        await self._not_now("resign")

    @on.client("again")
    async def again_not_now(self, event: dict[str, Any]) -> None:
        """``again`` before the game is over."""
        await self._not_now("again")


def make_layer() -> GroupLayer:
    """The layer named by ``INTERLOCK_GAME_LAYER``: ``sqlite`` (the default) or ``memory``."""
    kind = os.environ.get("INTERLOCK_GAME_LAYER", "sqlite")
    if kind == "sqlite":
        path = os.environ.get("INTERLOCK_GAME_DB", str(HERE.parent / "game.sqlite3"))
        lease = os.environ.get("INTERLOCK_GAME_LEASE")  # how soon a dead process's players count as gone
        if lease is None:
            return SQLiteChannelLayer(path)
        return SQLiteChannelLayer(path, lease=float(lease), grace=float(lease))
    if kind == "memory":
        return InMemoryChannelLayer()
    msg = f"INTERLOCK_GAME_LAYER={kind!r}: expected 'sqlite' or 'memory'"
    raise SystemExit(msg)


def env_delays() -> dict[str, float]:
    """The delays the environment sets: ``INTERLOCK_GAME_MOVE``, ``INTERLOCK_GAME_GRACE``,
    ``INTERLOCK_GAME_WAIT`` (how long ``their_turn`` waits; 5 s more than a move) and
    ``INTERLOCK_GAME_REJOIN_WAIT`` (how long a rejoin waits for an answer; 2 s)."""
    wait = float(os.environ.get("INTERLOCK_GAME_WAIT", MOVE_SECONDS + SLACK))
    delays = {"my_turn:move": MOVE_SECONDS, "their_turn:wait": wait, "opponent_away:grace": GRACE_SECONDS}
    if "INTERLOCK_GAME_REJOIN_WAIT" in os.environ:
        delays["rejoining"] = float(os.environ["INTERLOCK_GAME_REJOIN_WAIT"])
    return delays


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def make_app(layer: GroupLayer | None = None, delays: Mapping[str, float] | None = None) -> ProtocolTypeRouter:
    """The page at ``/`` and the players at ``/ws/game/``, on *layer* with *delays*."""
    page = (HERE / "game.html").read_bytes()

    async def page_or_404(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/":
            await _respond(send, 200, page, b"text/html; charset=utf-8")
        else:
            await _respond(send, 404, b"Not Found", b"text/plain")

    http: ASGIApp = page_or_404
    player = Player.as_asgi(delays=dict(env_delays() if delays is None else delays))
    return ProtocolTypeRouter(
        {"http": http, "websocket": SameOriginValidator(URLRouter([path("ws/game/", player)]))},
        channel_layer=make_layer() if layer is None else layer,
    )


app = make_app()


def main() -> None:
    """Serve the game with uvicorn."""
    parser = argparse.ArgumentParser(description="interlock tic-tac-toe")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--workers", type=int, default=1, help="server processes (they share the SQLite layer)")
    args = parser.parse_args()
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port)
    else:  # workers import the app by name
        uvicorn.run("game.game:app", app_dir=str(HERE.parent), host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
