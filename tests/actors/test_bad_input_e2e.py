"""Bad input and failing actors under real servers (uvicorn on asyncio, hypercorn on trio).

Each case checks what the client sees (close code, refused handshake, a precise error)
and what the server log says (the actor's identity, a traceback), then that the server
still serves a fresh connection and that failed actors left group ``probe``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.support.servers import RunningServer, serve
from tests.support.wsclient import WSClient, try_connect

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e

GROUP_RULES = "group names are 1 to 100 ASCII letters, digits, '-', '_' and '.'"
CARRIABLE = "which a channel layer cannot carry; use None, bool, int, float, str, bytes, list, tuple or dict"


@pytest.fixture(scope="module")
def server(anyio_backend: str) -> Iterator[RunningServer]:
    with serve("e2e_app:app", backend=anyio_backend, app_dir=str(HERE)) as running:
        yield running


# -- helpers ---------------------------------------------------------------------------------


def url(route: str) -> str:
    """A path on *route* with a fresh tag, so log lines name exactly one connection."""
    return f"/ws/{route}/{uuid.uuid4().hex[:12]}/"


async def connect(server: RunningServer, path: str, **kwargs: Any) -> WSClient:
    return await WSClient.connect(server.host, server.port, path, **kwargs)


async def group_count(server: RunningServer, group: str = "probe") -> int:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http_url(f"/groups/{group}"))
    assert response.status_code == 200, response.text
    count: int = response.json()["members"]
    return count


async def wait_group_count(server: RunningServer, expected: int, group: str = "probe") -> None:
    """Poll ``GET /groups/<group>`` until it counts *expected* members (cleanup is async)."""
    count = await group_count(server, group)
    with anyio.move_on_after(5):
        while count != expected:
            await anyio.sleep(0.02)
            count = await group_count(server, group)
    assert count == expected, f"group {group!r} has {count} members, expected {expected}"


def log_entry(logs: str, path: str) -> str:
    """The log record naming *path*: its first line and what follows up to the next record."""
    lines = logs.splitlines()
    for index, line in enumerate(lines):
        if f"path={path} " in line:
            entry = [line]
            for follower in lines[index + 1 :]:
                if follower.startswith(("<", "[")):
                    break
                entry.append(follower)
            return "\n".join(entry)
    return ""


async def wait_log_entry(server: RunningServer, path: str, *needles: str) -> str:
    """Wait until the log record for *path* holds every needle; return the record."""
    entry = log_entry(server.logs(), path)
    with anyio.move_on_after(5):
        while not all(needle in entry for needle in needles):
            await anyio.sleep(0.02)
            entry = log_entry(server.logs(), path)
    missing = [needle for needle in needles if needle not in entry]
    assert not missing, f"log record for {path} lacks {missing}:\n{entry or server.logs()}"
    return entry


async def assert_still_serving(server: RunningServer, probe_members: int = 0) -> None:
    """A fresh connection round-trips a message, and ``probe`` has *probe_members* members."""
    async with await connect(server, url("echo")) as fresh:
        await fresh.send_json({"still": "serving"})
        assert await fresh.receive_json() == {"echo": {"still": "serving"}}
    await wait_group_count(server, probe_members)


async def poke(client: WSClient, request: dict[str, Any]) -> Any:
    await client.send_json(request)
    return await client.receive_json()


# -- malformed client data ---------------------------------------------------------------------


async def test_malformed_json_closes_with_1007(server: RunningServer) -> None:
    path = url("json")
    async with await connect(server, path) as client:
        await client.send_json({"first": "fine"})
        assert await client.receive_json() == {"echo": {"first": "fine"}}
        assert await group_count(server) == 1
        await client.send_text("{not json")
        code, reason = await client.wait_closed()
    assert code == 1007
    assert reason.startswith("malformed JSON: ")
    entry = await wait_log_entry(server, path, "JsonProbeActor", "the client sent malformed data")
    assert "Traceback" not in entry  # the client's fault: a warning, not a crash
    await assert_still_serving(server)


async def test_binary_frame_to_json_actor_closes_with_1003(server: RunningServer) -> None:
    path = url("json")
    async with await connect(server, path) as client:
        assert await group_count(server) == 1
        await client.send_bytes(b"\x00\x01\x02")
        code, reason = await client.wait_closed()
    assert code == 1003
    assert reason == "expected a text frame holding JSON, got a binary frame of 3 bytes"
    await wait_log_entry(server, path, "JsonProbeActor", "malformed data", "binary frame of 3 bytes")
    await assert_still_serving(server)


# -- handlers that raise -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "actor", "error"),
    [
        ("boom/sync", "SyncBoomActor", "RuntimeError: boom in a sync handler"),
        ("boom/async", "AsyncBoomActor", "RuntimeError: boom in an async handler"),
    ],
)
async def test_handler_exception_closes_with_1011(server: RunningServer, route: str, actor: str, error: str) -> None:
    path = url(route)
    async with await connect(server, path) as client:
        await client.send_text("hello")
        assert await client.receive_text() == "echo: hello"
        assert await group_count(server) == 1
        await client.send_text("boom")
        assert await client.wait_closed() == (1011, "internal error")
    entry = await wait_log_entry(server, path, f"<{actor} ", f"failed: {error}", "Traceback", f"\n{error}")
    assert "state=open" in entry.splitlines()[0]
    await assert_still_serving(server)


@pytest.mark.parametrize(
    ("route", "actor", "error"),
    [
        ("connect-boom/sync", "SyncConnectBoomActor", "RuntimeError: connect exploded (sync)"),
        ("connect-boom/async", "AsyncConnectBoomActor", "RuntimeError: connect exploded (async)"),
    ],
)
async def test_connect_raising_refuses_the_handshake(server: RunningServer, route: str, actor: str, error: str) -> None:
    path = url(route)
    handshake = await try_connect(server.host, server.port, path)
    assert not handshake.accepted
    assert handshake.status in (500, 403)  # 403 where the server lacks the denial extension
    if handshake.status == 500:
        assert handshake.body == b"Internal Server Error"
    entry = await wait_log_entry(server, path, f"<{actor} ", f"failed: {error}", "Traceback", f"\n{error}")
    assert "state=connecting" in entry.splitlines()[0]
    await assert_still_serving(server)  # it joined probe before connect(): gone again


# -- layer operations with bad names and bad messages ------------------------------------------


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param(
            {"op": "group_send", "group": "g" * 101, "message": {"type": "relay", "text": "x"}},
            f"InvalidGroupName: invalid group name '{'g' * 56}...: it is 101 characters long, "
            f"the limit is 100; {GROUP_RULES}",
            id="group_send-oversized-name",
        ),
        pytest.param(
            {"op": "group_add", "group": "g" * 101},
            f"InvalidGroupName: invalid group name '{'g' * 56}...: it is 101 characters long, "
            f"the limit is 100; {GROUP_RULES}",
            id="group_add-oversized-name",
        ),
        pytest.param(
            {"op": "group_send", "group": "bad group!", "message": {"type": "relay", "text": "x"}},
            f"InvalidGroupName: invalid group name 'bad group!': it contains ' '; {GROUP_RULES}",
            id="group_send-space",
        ),
        pytest.param(
            {"op": "group_add", "group": "été"},
            f"InvalidGroupName: invalid group name 'été': it contains 'é'; {GROUP_RULES}",
            id="group_add-non-ascii",
        ),
        pytest.param(
            {"op": "group_add", "group": ""},
            f"InvalidGroupName: invalid group name '': it is empty; {GROUP_RULES}",
            id="group_add-empty",
        ),
        pytest.param(
            {"op": "group_send", "group": 5, "message": {"type": "relay", "text": "x"}},
            "InvalidGroupName: group name must be a str, not int (5)",
            id="group_send-int-name",
        ),
        pytest.param(
            {"op": "send", "channel": "no such!channel!", "message": {"type": "relay"}},
            "InvalidChannelName: invalid channel name 'no such!channel!': a '!' may appear once, "
            "after a non-empty prefix; channel names are 1 to 100 ASCII letters, digits, '-', '_' "
            "and '.', with at most one '!' marking a process-local channel",
            id="send-bad-channel",
        ),
        pytest.param(
            {"op": "group_send", "group": "probe", "message": ["type", "relay"]},
            "InvalidMessage: a message must be a dict with a 'type' key, not list (['type', 'relay'])",
            id="list-message",
        ),
        pytest.param(
            {"op": "send_self", "message": "relay"},
            "InvalidMessage: a message must be a dict with a 'type' key, not str ('relay')",
            id="str-message",
        ),
        pytest.param(
            {"op": "group_send", "group": "probe", "message": {"text": "no type"}},
            "InvalidMessage: a message needs a non-empty str 'type', got None in {'text': 'no type'}",
            id="typeless-message",
        ),
        pytest.param(
            {"op": "group_send", "group": "probe", "message": {"type": ""}},
            "InvalidMessage: a message needs a non-empty str 'type', got '' in {'type': ''}",
            id="empty-type",
        ),
        pytest.param(
            {"op": "send_self", "message": {"type": 5}},
            "InvalidMessage: a message needs a non-empty str 'type', got 5 in {'type': 5}",
            id="int-type",
        ),
        pytest.param(
            {"op": "group_send", "group": "probe", "message": {"type": "relay", "payload": {"$py": "set"}}},
            f"UnserializableMessage: message value at ['payload'] is a set ({{1, 2}}), {CARRIABLE}",
            id="set-value",
        ),
        pytest.param(
            {"op": "send_self", "message": {"type": "relay", "payload": [1, {"$py": "complex"}]}},
            f"UnserializableMessage: message value at ['payload'][1] is a complex ((1+2j)), {CARRIABLE}",
            id="nested-complex-value",
        ),
        pytest.param(
            {
                "op": "group_send",
                "group": "probe",
                "message": {"type": "relay", "payload": {"$py": "object"}},
            },
            "UnserializableMessage: message value at ['payload'] is an object (<object object at ",
            id="object-value",
        ),
        pytest.param(
            {
                "op": "group_send",
                "group": "probe",
                "message": {"type": "relay", "payload": {"$py": "int-key"}},
            },
            "InvalidMessage: message key 1 at ['payload'] must be a str, not int",
            id="int-key",
        ),
        pytest.param(
            {"op": "send_self", "message": {"type": "relay", "p": {"$py": "deep", "depth": 40}}},
            "UnserializableMessage: message value at ['p']" + "[0]" * 31 + " is nested deeper than 32 levels",
            id="too-deep",
        ),
    ],
)
async def test_layer_refuses_bad_names_and_messages_precisely(
    server: RunningServer, request_: dict[str, Any], error: str
) -> None:
    async with (
        await connect(server, url("probe")) as member,
        await connect(server, url("poke")) as poker,
    ):
        await wait_group_count(server, 1)
        answer = await poke(poker, request_)
        assert set(answer) == {"error"}, answer
        assert answer["error"].startswith(error)
        if "object object at" not in error:
            assert answer["error"] == error
        await member.receive_nothing(0.2)  # nothing half-delivered
        # the poker goes on working: a valid operation after the refused one
        relay = {"type": "relay", "text": "after"}
        assert await poke(poker, {"op": "send_self", "message": relay}) == {"ok": True}
        assert await poker.receive_json() == {"relayed": relay}
        assert await poke(poker, {"op": "group_send", "group": "probe", "message": relay}) == {"ok": True}
        assert await member.receive_text() == "after"
    await assert_still_serving(server)


async def test_groups_endpoint_refuses_invalid_names(server: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(server.http_url("/groups/bad%20name"))
    assert response.status_code == 400
    assert response.json() == {
        "error": f"InvalidGroupName: invalid group name 'bad name': it contains ' '; {GROUP_RULES}"
    }


async def test_group_joined_by_hand_is_left_when_the_actor_fails(server: RunningServer) -> None:
    path = url("poke")
    async with await connect(server, path) as poker:
        assert await poke(poker, {"op": "group_add", "group": "probe"}) == {"ok": True}
        assert await group_count(server) == 1
        assert await poke(poker, {"op": "send_self", "message": {"type": "close"}}) == {"ok": True}
        assert await poker.wait_closed() == (1011, "internal error")
    await wait_log_entry(
        server,
        path,
        "<PokeActor ",
        "failed: UnknownMessageType: PokeActor cannot handle message type 'close': "
        "'close' is one of interlock's own methods, not a handler",
    )
    await assert_still_serving(server)


# -- layer messages nobody handles -------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "reason"),
    [
        ("close", "'close' is one of interlock's own methods, not a handler"),
        ("send", "'send' is one of interlock's own methods, not a handler"),
        ("accept", "'accept' is one of interlock's own methods, not a handler"),
        ("disconnect", "'disconnect' is one of interlock's own methods, not a handler"),
        ("_private", "it maps to method '_private', and methods starting with '_' are private, never handlers"),
        ("_relay", "it maps to method '_relay', and methods starting with '_' are private, never handlers"),
        (".relay", "it maps to method '_relay', and methods starting with '_' are private, never handlers"),
        ("nothing.here", "define a method named 'nothing_here', marked @handler, to handle it"),
    ],
)
async def test_unknown_layer_message_types_follow_the_unhandled_policy(
    server: RunningServer, message_type: str, reason: str
) -> None:
    raising_path, logging_path, ignoring_path = url("probe"), url("probe/log"), url("probe/ignore")
    async with (
        await connect(server, raising_path) as raising,
        await connect(server, logging_path) as lenient,
        await connect(server, ignoring_path) as ignoring,
        await connect(server, url("poke")) as poker,
    ):
        await wait_group_count(server, 3)
        bad = {"type": message_type, "text": "should not be seen"}
        assert await poke(poker, {"op": "group_send", "group": "probe", "message": bad}) == {"ok": True}

        # default policy ("raise"): the member fails like any handler error
        assert await raising.wait_closed() == (1011, "internal error")
        refusal = f"ProbeActor cannot handle message type {message_type!r}: {reason}"
        await wait_log_entry(
            server, raising_path, "<ProbeActor ", f"failed: UnknownMessageType: {refusal}", "Traceback"
        )
        await wait_group_count(server, 2)

        # "log" and "ignore": the message is dropped, nothing was invoked, the socket stays open
        await lenient.receive_nothing(0.3)
        await ignoring.receive_nothing(0.05)
        entry = await wait_log_entry(server, logging_path, "<LoggingProbeActor ", "dropped", f"Logging{refusal}")
        assert "Traceback" not in entry
        relay = {"type": "relay", "text": "still open"}
        assert await poke(poker, {"op": "group_send", "group": "probe", "message": relay}) == {"ok": True}
        assert await lenient.receive_text() == "still open"
        assert await ignoring.receive_text() == "still open"
        for client in (lenient, ignoring):
            await client.send_text("ping")
            assert await client.receive_text() == "pong: ping"
            assert client.close_info is None
        assert f"path={ignoring_path} " not in server.logs()
        await wait_group_count(server, 2)
    await assert_still_serving(server)


# -- handshake: denial and subprotocols ---------------------------------------------------


async def test_deny_with_status_and_body(server: RunningServer) -> None:
    handshake = await try_connect(server.host, server.port, url("deny"))
    assert not handshake.accepted
    assert handshake.status in (401, 403)  # 403 where the server lacks the denial extension
    if handshake.status == 401:
        assert handshake.body == b"who are you?"
        assert handshake.header("content-type") == "text/plain; charset=utf-8"
    await assert_still_serving(server)
    # uvicorn's default (websockets-sansio) protocol logs an ERROR after any denial response
    # (Kludex/uvicorn#3138): there, deny() refuses with a close (403) instead.
    assert "without completing handshake" not in server.logs()


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["v1.interlock", "v2.interlock"], "v2.interlock"),
        (["v1.interlock"], "v1.interlock"),
        (["mqtt", "v1.interlock"], "v1.interlock"),
        (["mqtt"], None),
        ([], None),
    ],
)
async def test_subprotocol_negotiation(server: RunningServer, offered: list[str], chosen: str | None) -> None:
    async with await connect(server, url("subprotocol"), subprotocols=offered) as client:
        assert client.handshake.subprotocol == chosen
        await client.send_text("which?")
        assert await client.receive_text() == f"speaking {chosen}"
    await assert_still_serving(server)


async def test_accepting_a_subprotocol_the_client_did_not_offer_refuses(server: RunningServer) -> None:
    path = url("subprotocol/wrong")
    handshake = await try_connect(server.host, server.port, path, subprotocols=["v1.interlock"])
    assert not handshake.accepted
    assert handshake.status in (500, 403)
    error = (
        "ValueError: accept(subprotocol='not-offered'): the client offered ['v1.interlock']; "
        "choose one of those or None"
    )
    await wait_log_entry(server, path, "<WrongSubprotocolActor ", f"failed: {error}", "Traceback")
    await assert_still_serving(server)
