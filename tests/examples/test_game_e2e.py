"""The tic-tac-toe example under real servers (uvicorn; hypercorn -k trio) on the SQLite layer.

Two WebSocket clients are matched through the lobby group and play; moves out of turn,
illegal squares and malformed frames are refused; a move timeout forfeits; a dropped
connection rejoins within the grace period (history) or is refused after it, or with a
wrong token; two server processes on one SQLite file match and serve one game, and when
one of them is SIGKILLed its players' opponents win by the ``their_turn`` wait delay.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from interlock.layers import PeerWatchingLayer, SQLiteChannelLayer

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.e2e


def _serve(
    db: Path,
    anyio_backend: str,
    *,
    move: float,
    grace: float,
    wait: float | None = None,
    layer: str = "sqlite",
    lease: float | None = None,
) -> Any:
    env = {
        "INTERLOCK_GAME_LAYER": layer,
        "INTERLOCK_GAME_DB": str(db),
        "INTERLOCK_GAME_MOVE": str(move),
        "INTERLOCK_GAME_GRACE": str(grace),
        "INTERLOCK_GAME_REJOIN_WAIT": "1",
    }
    if wait is not None:
        env["INTERLOCK_GAME_WAIT"] = str(wait)
    if lease is not None:
        env["INTERLOCK_GAME_LEASE"] = str(lease)
    return serve("game.game:app", backend=anyio_backend, app_dir=str(EXAMPLES), env=env)


@pytest.fixture(scope="module")
def server(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Moves and the grace period long enough not to interfere."""
    with _serve(tmp_path_factory.mktemp("game") / "game.sqlite3", anyio_backend, move=20, grace=20) as running:
        yield running
        assert "Traceback" not in running.logs()


@pytest.fixture(scope="module")
def hasty(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Moves and the grace period short enough to run out in a test."""
    with _serve(tmp_path_factory.mktemp("game") / "game.sqlite3", anyio_backend, move=1.5, grace=0.5) as running:
        yield running
        assert "Traceback" not in running.logs()


@pytest.fixture(scope="module")
def pair_of_servers(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    """Two server processes on one layer file."""
    db = tmp_path_factory.mktemp("game") / "game.sqlite3"
    with (
        _serve(db, anyio_backend, move=20, grace=20) as one,
        _serve(db, anyio_backend, move=20, grace=20) as two,
    ):
        yield [one, two]
        for running in (one, two):
            assert "Traceback" not in running.logs()


async def until(client: WSClient, kind: str, timeout: float = 5) -> dict[str, Any]:
    """The next frame of type *kind*, skipping others (at most 20)."""
    for _ in range(20):
        frame: dict[str, Any] = await client.receive_json(timeout)
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind!r} frame")


@attrs.define
class Seat:
    """A matched player: its socket and what ``matched`` told it."""

    client: WSClient
    mark: str
    game: str
    token: str


async def connect(server: RunningServer) -> WSClient:
    return await WSClient.connect(server.host, server.port, "/ws/game/")


@pytest.fixture
async def players(server: RunningServer) -> AsyncIterator[tuple[Seat, Seat]]:
    async with await connect(server) as one, await connect(server) as two:
        yield await match(one, two)


async def match(one: WSClient, two: WSClient) -> tuple[Seat, Seat]:
    """Match *one* (waits first) with *two*; return (X, O).

    The second to come usually proposes (it finds the first in the lobby) and plays X, but
    crossed proposals may swap them: the seats are told apart by their marks.
    """
    await one.send_json({"type": "play", "name": "ada"})
    assert (await one.receive_json())["type"] == "waiting"
    await two.send_json({"type": "play", "name": "bob"})
    first, second = await until(one, "matched"), await until(two, "matched")
    assert first["game"] == second["game"]
    assert (first["opponent"], second["opponent"]) == ("bob", "ada")
    assert {first["mark"], second["mark"]} == {"X", "O"}
    assert first["token"] != second["token"]
    seats = [
        Seat(one, first["mark"], first["game"], first["token"]),
        Seat(two, second["mark"], second["game"], second["token"]),
    ]
    x, o = sorted(seats, key=lambda seat: seat.mark != "X")
    assert (await until(x.client, "turn"))["yours"] is True
    assert (await until(o.client, "turn"))["yours"] is False
    return x, o


async def move(mover: Seat, other: Seat, square: int) -> str:
    """*mover* plays *square*; both see it; returns the board."""
    await mover.client.send_json({"type": "move", "square": square})
    mine, theirs = await until(mover.client, "moved"), await until(other.client, "moved")
    assert mine == theirs
    assert (mine["square"], mine["mark"]) == (square, mover.mark)
    board: str = mine["board"]
    return board


async def test_a_full_game_to_a_win(players: tuple[Seat, Seat]) -> None:
    x, o = players
    for square_x, square_o in ((0, 3), (1, 4)):
        await move(x, o, square_x)
        assert (await until(o.client, "turn"))["yours"] is True
        await move(o, x, square_o)
        assert (await until(x.client, "turn"))["yours"] is True
    assert await move(x, o, 2) == "XXXOO...."
    won, lost = await until(x.client, "over"), await until(o.client, "over")
    assert (won["result"], won["reason"]) == ("won", "three in a row")
    assert (lost["result"], lost["reason"]) == ("lost", "three in a row")
    await x.client.send_json({"type": "move", "square": 8})  # the game is over: refused, not fatal
    assert (await x.client.receive_json())["error"] == "move is not possible now (you are in game / finished)"


async def test_after_a_game_both_play_again_in_a_new_game(players: tuple[Seat, Seat]) -> None:
    x, o = players
    await x.client.send_json({"type": "resign"})
    assert (await until(x.client, "over"))["reason"] == "you resigned"
    assert (await until(o.client, "over"))["reason"] == "your opponent forfeits: resigned"
    await o.client.send_json({"type": "again"})
    assert (await until(o.client, "waiting"))["type"] == "waiting"
    await x.client.send_json({"type": "again"})
    first, second = await until(o.client, "matched"), await until(x.client, "matched")
    assert first["game"] == second["game"] != x.game
    assert first["token"] != o.token
    assert first["board"] == "........."


async def test_a_draw(players: tuple[Seat, Seat]) -> None:
    x, o = players
    order = [0, 1, 2, 4, 3, 5, 7, 6, 8]  # X O X / X O O / O X X
    for n, square in enumerate(order):
        mover, other = (x, o) if n % 2 == 0 else (o, x)
        await move(mover, other, square)
    assert [(await until(seat.client, "over"))["result"] for seat in (x, o)] == ["draw", "draw"]


async def test_known_requests_at_the_wrong_time_get_an_error_frame(
    players: tuple[Seat, Seat], server: RunningServer
) -> None:
    x, o = players
    for request in (
        {"type": "play", "name": "again"},
        {"type": "again"},
        {"type": "rejoin", "game": x.game, "token": "t"},
    ):
        await x.client.send_json(request)
        error = (await x.client.receive_json())["error"]
        assert error == f"{request['type']} is not possible now (you are in game / playing / my_turn)"
    async with await connect(server) as idle:
        await idle.send_json({"type": "resign"})
        assert (await idle.receive_json())["error"] == "resign is not possible now (you are in lobby)"
    await move(x, o, 4)  # the game went on


async def test_moves_out_of_turn_and_illegal_squares_are_refused_and_the_game_goes_on(
    players: tuple[Seat, Seat],
) -> None:
    x, o = players
    await o.client.send_json({"type": "move", "square": 4})
    assert (await o.client.receive_json()) == {"type": "error", "error": "it is your opponent's turn"}
    for square in (9, -1):
        await x.client.send_json({"type": "move", "square": square})
        assert "is not free" in (await x.client.receive_json())["error"]
    await move(x, o, 4)
    assert (await until(x.client, "turn"))["yours"] is False
    assert (await until(o.client, "turn"))["yours"] is True
    await o.client.send_json({"type": "move", "square": 4})  # taken
    assert "square 4 is not free" in (await o.client.receive_json())["error"]
    await x.client.receive_nothing(0.2)  # the opponent hears nothing of refused moves
    await move(o, x, 0)


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [
        pytest.param("{not json", 1007, "", id="malformed-json"),
        pytest.param('{"square": 1}', 1007, "'type'", id="no-type"),
        pytest.param('{"type": "move", "square": "middle"}', 1007, "Move", id="square-not-int"),
        pytest.param('{"type": "dance"}', 1008, "dance", id="unknown-type"),
    ],
)
async def test_bad_frames_close_with_a_code_and_tell_the_opponent(
    players: tuple[Seat, Seat], server: RunningServer, frame: str, code: int, reason: str
) -> None:
    x, o = players
    await x.client.send_text(frame)
    closed = await x.client.wait_closed()
    assert closed[0] == code
    assert reason in closed[1]
    assert (await until(o.client, "opponent_away"))["seconds"] == 20
    assert "Traceback" not in server.logs()


@pytest.mark.parametrize("dropper", ["on-turn", "waiting"])
async def test_a_dropped_player_rejoins_within_the_grace_period_and_the_turn_resumes(
    server: RunningServer, dropper: str
) -> None:
    async with await connect(server) as one, await connect(server) as two:
        x, o = await match(one, two)
        await move(x, o, 4)
        assert (await until(o.client, "turn"))["yours"] is True  # O to move
        gone, stays = (o, x) if dropper == "on-turn" else (x, o)
        await gone.client.abort()
        assert (await until(stays.client, "opponent_away"))["seconds"] == 20
        async with await connect(server) as back:
            await back.send_json({"type": "rejoin", "game": gone.game, "token": gone.token})
            resumed = await until(back, "resumed")
            assert (resumed["board"], resumed["mark"], resumed["turn"]) == ("....X....", gone.mark, "O")
            assert await stays.client.receive_json() == {"type": "opponent_back"}
            # the one who stayed is back in the turn it was in (playing.history): O's turn
            turn = await until(stays.client, "turn")
            assert turn["yours"] is (stays is o)
            assert (await until(back, "turn"))["yours"] is (gone is o)
            returned = Seat(back, gone.mark, gone.game, gone.token)
            new_o = returned if gone is o else o
            new_x = returned if gone is x else x
            await move(new_o, new_x, 0)  # the game goes on, with the new connection
            assert (await until(new_x.client, "turn"))["yours"] is True


async def test_a_rejoin_with_a_wrong_token_is_refused_and_the_right_one_still_works(server: RunningServer) -> None:
    async with await connect(server) as one, await connect(server) as two:
        x, o = await match(one, two)
        await x.client.abort()
        await until(o.client, "opponent_away")
        async with await connect(server) as forger:
            await forger.send_json({"type": "rejoin", "game": x.game, "token": x.token[::-1]})
            assert await forger.wait_closed() == (4403, f"that token does not belong to game {x.game}")
        async with await connect(server) as other_seat:  # O's token: O is connected
            await other_seat.send_json({"type": "rejoin", "game": x.game, "token": o.token})
            assert await other_seat.wait_closed() == (4409, f"you are still connected to game {x.game}")
        async with await connect(server) as back:
            await back.send_json({"type": "rejoin", "game": x.game, "token": x.token})
            assert (await until(back, "resumed"))["mark"] == "X"
        # and the same token while that player is connected:
        await until(o.client, "opponent_away")  # `back` closed cleanly: away again
        async with await connect(server) as back, await connect(server) as twin:
            await back.send_json({"type": "rejoin", "game": x.game, "token": x.token})
            await until(back, "resumed")
            await twin.send_json({"type": "rejoin", "game": x.game, "token": x.token})
            assert await twin.wait_closed() == (4409, f"you are still connected to game {x.game}")


async def test_a_rejoin_to_an_unknown_game_is_refused(server: RunningServer) -> None:
    async with await connect(server) as client:
        await client.send_json({"type": "rejoin", "game": "not-hex", "token": "t"})
        assert "16-hex-digit game id" in (await client.receive_json())["error"]
        await client.send_json({"type": "rejoin", "game": "0123456789abcdef", "token": "t"})
        code, reason = await client.wait_closed()
        assert (code, reason) == (4404, "no game 0123456789abcdef is waiting for you: unknown, or its players left")


async def test_a_move_timeout_forfeits(hasty: RunningServer) -> None:
    async with await connect(hasty) as one, await connect(hasty) as two:
        x, o = await match(one, two)
        lost, won = await until(x.client, "over"), await until(o.client, "over")
        assert (lost["result"], lost["reason"]) == ("lost", "no move within 1.5 s")
        assert (won["result"], won["reason"]) == ("won", "your opponent forfeits: no move within 1.5 s")


async def test_a_rejoin_after_the_grace_period_is_refused(hasty: RunningServer) -> None:
    async with await connect(hasty) as one, await connect(hasty) as two:
        x, o = await match(one, two)
        await o.client.abort()  # X is on turn (1.5 s), O gone: the grace period (0.5 s) decides first
        assert (await until(x.client, "opponent_away"))["seconds"] == 0.5
        won = await until(x.client, "over")
        assert (won["result"], won["reason"]) == ("won", "your opponent did not come back within 0.5 s")
        async with await connect(hasty) as late:
            await late.send_json({"type": "rejoin", "game": o.game, "token": o.token})
            code, reason = await late.wait_closed()
            assert code == 4410
            assert reason == f"game {o.game} is over: your opponent did not come back within 0.5 s"


async def test_players_on_two_processes_match_play_and_rejoin_across_them(pair_of_servers: list[RunningServer]) -> None:
    one, two = pair_of_servers
    async with await connect(one) as first, await connect(two) as second:
        x, o = await match(first, second)
        await move(x, o, 0)
        await move(o, x, 3)
        gone = x
        await gone.client.abort()
        await until(o.client, "opponent_away")
        other = two if gone.client is first else one  # rejoin through the other process
        async with await connect(other) as back:
            await back.send_json({"type": "rejoin", "game": gone.game, "token": gone.token})
            assert (await until(back, "resumed"))["board"] == "X..O....."
            x = Seat(back, "X", gone.game, gone.token)
            await until(x.client, "turn")
            await move(x, o, 1)
            await move(o, x, 4)
            await move(x, o, 2)
            assert (await until(x.client, "over"))["result"] == "won"
            assert (await until(o.client, "over"))["result"] == "lost"


async def test_three_players_two_match_one_waits(server: RunningServer) -> None:
    async with await connect(server) as a, await connect(server) as b, await connect(server) as c:
        await a.send_json({"type": "play", "name": "a"})
        await until(a, "waiting")
        await b.send_json({"type": "play", "name": "b"})
        await c.send_json({"type": "play", "name": "c"})
        matched = []
        for client in (a, b, c):
            with anyio.move_on_after(4):
                matched.append((await until(client, "matched"))["game"])
        assert len(matched) == 2
        assert matched[0] == matched[1]


async def test_a_player_whose_server_process_is_killed_loses_by_the_wait_delay(
    anyio_backend: str, tmp_path: Path
) -> None:
    db = tmp_path / "game.sqlite3"
    with (
        _serve(db, anyio_backend, move=20, grace=20, wait=1.5) as one,
        _serve(db, anyio_backend, move=20, grace=20, wait=1.5) as two,
    ):
        async with await connect(one) as first, await connect(two) as second:
            x, o = await match(first, second)
            victim = one if x.client is first else two
            os.killpg(victim.process.pid, signal.SIGKILL)  # X's process dies: no close, no away
            won = await until(o.client, "over", timeout=10)
            assert (won["result"], won["reason"]) == ("won", "your opponent went silent")
            survivor = two if victim is one else one
            async with await connect(survivor) as late:  # X's player, back through the other process
                await late.send_json({"type": "rejoin", "game": x.game, "token": x.token})
                assert await late.wait_closed() == (4410, f"game {x.game} is over: your opponent went silent")
        assert "Traceback" not in survivor.logs()


@pytest.fixture(scope="module")
def memory_server(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One process on the in-memory layer, which watches peers: ``peer.gone`` comes too."""
    db = tmp_path_factory.mktemp("game") / "unused.sqlite3"
    with _serve(db, anyio_backend, move=20, grace=20, layer="memory") as running:
        yield running
        assert "Traceback" not in running.logs()


async def test_on_a_layer_that_watches_peers_the_opponent_is_told_once(memory_server: RunningServer) -> None:
    async with await connect(memory_server) as one, await connect(memory_server) as two:
        x, o = await match(one, two)
        await x.client.abort()  # game.away and peer.gone (closed) both reach O: one opponent_away
        assert (await until(o.client, "opponent_away"))["seconds"] == 20
        await o.client.receive_nothing(0.3)
        async with await connect(memory_server) as back:
            await back.send_json({"type": "rejoin", "game": x.game, "token": x.token})
            await until(back, "resumed")
            assert await o.client.receive_json() == {"type": "opponent_back"}
            x = Seat(back, "X", x.game, x.token)
            assert (await until(x.client, "turn"))["yours"] is True  # X was on turn: history
            await move(x, o, 4)
            await back.abort()  # the watch follows the new connection
            await until(o.client, "opponent_away")
            await o.client.receive_nothing(0.3)


@pytest.mark.skipif(
    not issubclass(SQLiteChannelLayer, PeerWatchingLayer),
    reason="the SQLite layer cannot watch peers (no watch_peer): the opponent is told by the wait delay only",
)
async def test_a_player_whose_server_process_is_killed_is_away_and_rejoins_through_another(
    anyio_backend: str, tmp_path: Path
) -> None:
    db = tmp_path / "game.sqlite3"
    with (
        _serve(db, anyio_backend, move=20, grace=20, lease=0.6) as one,
        _serve(db, anyio_backend, move=20, grace=20, lease=0.6) as two,
    ):
        async with await connect(one) as first, await connect(two) as second:
            x, o = await match(first, second)
            victim, survivor = (one, two) if x.client is first else (two, one)
            os.killpg(victim.process.pid, signal.SIGKILL)  # no close, no game.away: the lease ends
            with anyio.fail_after(10):  # lease and grace (1.2 s), a beat of the keeper, the pump
                assert (await until(o.client, "opponent_away", timeout=10))["seconds"] == 20
            async with await connect(survivor) as back:
                await back.send_json({"type": "rejoin", "game": x.game, "token": x.token})
                assert (await until(back, "resumed"))["mark"] == "X"
                assert await o.client.receive_json() == {"type": "opponent_back"}
                x = Seat(back, "X", x.game, x.token)
                assert (await until(x.client, "turn"))["yours"] is True  # X was on turn: history
                await move(x, o, 4)
        assert "Traceback" not in survivor.logs()


async def test_six_players_at_once_on_two_processes_make_three_games(pair_of_servers: list[RunningServer]) -> None:
    one, two = pair_of_servers
    names = [f"p{n}" for n in range(6)]
    clients = [await connect(one if n % 2 else two) for n in range(6)]
    frames: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    async def collect(client: WSClient, name: str) -> None:
        # Bounded: quiet for 6 s ends it, longer than the lobby's look-again delay (5 s), which
        # is when a player whose proposals all crossed or went unanswered tries again.
        with anyio.move_on_after(30):
            while True:
                try:
                    frames[name].append(await client.receive_json(timeout=6))
                except TimeoutError:
                    return

    try:
        async with anyio.create_task_group() as tasks:
            for client, name in zip(clients, names, strict=True):
                tasks.start_soon(collect, client, name)
                await client.send_json({"type": "play", "name": name})
    finally:
        for client in clients:
            await client.close()
    games: dict[str, list[tuple[str, str, str]]] = {}
    for name, got in frames.items():
        kinds = [frame["type"] for frame in got]
        assert "matched" in kinds, (name, got)
        last = max(i for i, kind in enumerate(kinds) if kind == "matched")  # cancelled ones came before
        assert "cancelled" not in kinds[last:], (name, kinds)
        matched = got[last]
        games.setdefault(matched["game"], []).append((name, matched["mark"], matched["opponent"]))
    assert len(games) == 3, games
    for seats in games.values():
        (a, mark_a, opponent_a), (b, mark_b, opponent_b) = seats
        assert {mark_a, mark_b} == {"X", "O"}
        assert (opponent_a, opponent_b) == (b, a)
