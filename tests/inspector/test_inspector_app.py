"""The inspector app in process: its access check, routes, summary, filters and the tap."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from interlock.actors import JsonStateActor, JsonWebsocketActor, ProtocolTypeRouter, URLRouter, path
from interlock.actors._inspect_registry import LIVE, TAP
from interlock.actors._inspect_snapshot import Filters, observe_state_actors, process_of
from interlock.actors.inspector import Inspector, format_summary
from interlock.actors.testing import HttpCommunicator, HttpResponse, WebsocketCommunicator
from interlock.dsl import State, on
from interlock.layers import InMemoryChannelLayer
from starlette.applications import Starlette
from starlette.routing import Mount

TOKEN = "a-token-of-enough-length"
AUTH = [("authorization", f"Bearer {TOKEN}")]


class Member(JsonWebsocketActor):
    async def connect(self) -> None:
        await self.channel_layer.group_add("room.red", self.channel_name)
        await self.accept()


class Door(JsonStateActor):
    shut = State(initial=True)
    ajar = State(terminal=True)

    @on.client("push", source=shut, target=ajar)
    async def push(self, event: Any) -> None:
        await self.send_json({"door": "ajar"})


def make_app(inspector: Inspector, layer: InMemoryChannelLayer) -> ProtocolTypeRouter:
    return ProtocolTypeRouter(
        {
            "http": URLRouter(inspector.routes("_i/")),
            "websocket": URLRouter([path("member/", Member.as_asgi()), path("door/", Door.as_asgi())]),
        },
        channel_layer=layer,
    )


async def request(app: Any, method: str, url: str, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    async with HttpCommunicator(app, method, url, headers=AUTH if headers is None else headers) as http:
        return await http.get_response()


async def get(app: Any, url: str, headers: list[tuple[str, str]] | None = None) -> tuple[int, bytes]:
    response = await request(app, "GET", url, headers)
    return response.status, response.body


# -- construction: never open by accident ------------------------------------------------------


def test_an_inspector_without_an_access_check_is_refused() -> None:
    with pytest.raises(TypeError, match="needs an access check"):
        Inspector()


@pytest.mark.parametrize("token", ["short", "", 12345])
def test_a_weak_token_is_refused(token: Any) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Inspector(token=token)


def test_a_non_callable_predicate_and_a_bad_interval_are_refused() -> None:
    with pytest.raises(TypeError, match="expected a callable"):
        Inspector(allow=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval"):
        Inspector(token=TOKEN, interval=0)


# -- access ------------------------------------------------------------------------------------


async def test_requests_without_the_token_are_refused() -> None:
    app = make_app(Inspector(token=TOKEN), InMemoryChannelLayer())
    for url in ("/_i/", "/_i/api/summary", "/_i/events", "/_i/api/actors/1"):
        status, body = await get(app, url, headers=[])
        assert status == 401, url
        assert b"needs its token" in body
    status, body = await get(app, "/_i/api/summary", headers=[("authorization", "Bearer wrong-token-of-length")])
    assert (status, body) == (403, b"wrong inspector token\n")
    status, _ = await get(app, f"/_i/api/summary?token={TOKEN}", headers=[])
    assert status == 200
    response = await request(app, "GET", "/_i/", [])
    assert response.header("www-authenticate") == 'Bearer realm="interlock inspector"'


async def test_a_predicate_decides_and_both_checks_must_pass() -> None:
    async def only_admins(scope: dict[str, Any]) -> bool:
        return dict(scope["headers"]).get(b"x-admin") == b"yes"

    app = make_app(Inspector(allow=only_admins), InMemoryChannelLayer())
    assert (await get(app, "/_i/api/summary", headers=[]))[0] == 403
    assert (await get(app, "/_i/api/summary", headers=[("x-admin", "yes")]))[0] == 200
    both = make_app(Inspector(token=TOKEN, allow=lambda scope: False), InMemoryChannelLayer())
    assert (await get(both, "/_i/api/summary"))[0] == 403


async def test_routes_answer_as_documented() -> None:
    app = make_app(Inspector(token=TOKEN), InMemoryChannelLayer())
    status, page = await get(app, "/_i/")
    assert status == 200
    assert b"<title>interlock inspector</title>" in page
    assert b"<script src" not in page  # nothing loaded from elsewhere
    assert (await get(app, "/_i/nowhere"))[0] == 404
    assert (await get(app, "/_i/api/actors/123"))[0] == 404
    status, body = await get(app, "/_i/api/summary?limit=lots")
    assert status == 400
    assert b"limit='lots'" in body
    response = await request(app, "POST", "/_i/api/summary")
    assert response.status == 405


# -- the summary -------------------------------------------------------------------------------


async def test_the_summary_counts_actors_by_class_state_and_group() -> None:
    layer = InMemoryChannelLayer()
    app = make_app(Inspector(token=TOKEN), layer)
    async with (
        WebsocketCommunicator(app, "/member/") as one,
        WebsocketCommunicator(app, "/member/") as two,
        WebsocketCommunicator(app, "/door/") as door,
    ):
        for ws in (one, two, door):
            assert (await ws.connect()).accepted
        status, body = await get(app, "/_i/api/summary")
        assert status == 200
        content = json.loads(body)
        classes = {entry["name"]: entry for entry in content["classes"]}
        assert classes["Member"]["count"] == 2
        assert classes["Member"]["states"] == {"open": 2}
        assert classes["Door"]["states"] == {"open.shut": 1}
        assert content["total"] == 3
        assert content["groups"] == {"room.red": 2}
        assert content["layer"]["groups"] == {"room.red": 2}
        (process,) = content["layer"]["this_process"]
        assert content["layer"]["members_by_process"] == {"room.red": {process: 2}}

        filtered = json.loads((await get(app, "/_i/api/summary?class=Door"))[1])
        assert [row["class"] for row in filtered["actors"]] == ["Door"]
        assert filtered["matching"] == 1
        assert filtered["total"] == 3
        assert json.loads((await get(app, "/_i/api/summary?state=open"))[1])["matching"] == 3
        assert json.loads((await get(app, "/_i/api/summary?group=room.red"))[1])["matching"] == 2
        assert len(json.loads((await get(app, "/_i/api/summary?limit=1"))[1])["actors"]) == 1

        text = format_summary(content)
        assert "Member" in text
        assert "room.red  2" in text
    assert not any(type(actor) in (Member, Door) for actor in LIVE.values())  # they left the registry


async def test_one_actor_shows_its_highlighted_diagram_and_transitions_only_while_watched() -> None:
    layer = InMemoryChannelLayer()
    app = make_app(Inspector(token=TOKEN), layer)
    async with WebsocketCommunicator(app, "/door/") as door:
        assert (await door.connect()).accepted
        (actor_id,) = [str(key) for key, actor in LIVE.items() if type(actor) is Door]
        TAP.watch()
        observe_state_actors(True)
        try:
            await door.send_json_to({"type": "push"})
            assert await door.receive_json_from() == {"door": "ajar"}
            detail = json.loads((await get(app, f"/_i/api/actors/{actor_id}"))[1])
        finally:
            TAP.unwatch()
            observe_state_actors(False)
        assert detail["state"] == "open.ajar"
        assert detail["diagram"]["format"] == "svg"
        assert "#ffd54f" in detail["diagram"]["text"]  # the current state, highlighted
        assert [(t["event"], t["source"], t["target"]) for t in detail["transitions"]] == [
            ("push", "open.shut", "open.ajar")
        ]
        assert Door._observed is False  # restored once nobody watches
        assert TAP.transitions == {}
        assert TAP.counts == {}


def test_process_names_and_filters() -> None:
    assert process_of("specific.abc123!def") == "abc123"
    assert process_of("chat.lobby") is None
    with pytest.raises(ValueError, match="limit='-1'"):
        Filters.from_query({"limit": ["-1"]})
    assert Filters(state="open").match(
        {"class": "A", "state": "open.lobby", "groups": [], "id": "1", "channel": None, "path": "/", "client": None}
    )


async def test_records_of_ended_actors_are_dropped_while_watched() -> None:
    app = make_app(Inspector(token=TOKEN), InMemoryChannelLayer())
    TAP.watch()
    observe_state_actors(True)
    try:
        for _ in range(3):
            async with WebsocketCommunicator(app, "/door/") as door:
                assert (await door.connect()).accepted
                await door.send_json_to({"type": "push"})
                assert await door.receive_json_from() == {"door": "ajar"}
        assert TAP.transitions  # kept while each one ran
        assert (await get(app, "/_i/api/summary"))[0] == 200
        assert TAP.transitions == {}  # the summary dropped the ended actors' records
        assert TAP.counts  # the rates' counts stay while watched
    finally:
        TAP.unwatch()
        observe_state_actors(False)


async def test_the_mount_point_without_its_slash_redirects_to_the_page() -> None:
    app = make_app(Inspector(token=TOKEN), InMemoryChannelLayer())
    response = await request(app, "GET", f"/_i?token={TOKEN}", [])
    assert response.status == 308
    assert response.header("location") == f"/_i/?token={TOKEN}"


async def test_it_serves_under_a_starlette_mount() -> None:
    host = Starlette(routes=[Mount("/_interlock", app=Inspector(token=TOKEN))])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        summary = await client.get("/_interlock/api/summary", headers={"authorization": f"Bearer {TOKEN}"})
        assert summary.status_code == 200, summary.text
        assert "classes" in summary.json()
        page = await client.get("/_interlock/", params={"token": TOKEN})
        assert page.status_code == 200
        assert "interlock inspector" in page.text
        assert (await client.get("/_interlock/api/summary")).status_code == 401


async def test_nothing_is_recorded_while_nobody_watches() -> None:
    app = make_app(Inspector(token=TOKEN), InMemoryChannelLayer())
    assert not TAP.watching
    async with WebsocketCommunicator(app, "/door/") as door:
        assert (await door.connect()).accepted
        await door.send_json_to({"type": "push"})
        assert await door.receive_json_from() == {"door": "ajar"}
        assert (await get(app, "/_i/api/summary"))[0] == 200  # a summary is not a watcher
    assert TAP.counts == {}
    assert TAP.transitions == {}
    assert Door._observed is False


async def test_the_stream_without_a_layer_sends_the_summary_and_stops_watching_when_the_client_leaves() -> None:
    inspector = Inspector(token=TOKEN, interval=0.05)  # no layer anywhere: mounted alone
    async with (
        WebsocketCommunicator(make_app(inspector, InMemoryChannelLayer()), "/member/") as member,
        HttpCommunicator(inspector, "GET", "/events", headers=AUTH) as stream,
    ):
        assert (await member.connect()).accepted
        await stream.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await stream.receive_output()
        assert start["status"] == 200
        assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
        body = b""
        while b"event: summary" not in body:
            body += (await stream.receive_output())["body"]
        assert TAP.watchers == 1
        data = body.split(b"data: ", 1)[1].split(b"\n", 1)[0]
        content = json.loads(data)
        assert [entry["name"] for entry in content["classes"]] == ["Member"]
        assert content["layer"] is None  # mounted alone: no layer to list
        await stream.send_input({"type": "http.disconnect"})
        await stream.wait()
    assert TAP.watchers == 0
    assert not TAP.watching


async def test_streams_beyond_max_streams_are_refused() -> None:
    inspector = Inspector(token=TOKEN, max_streams=1)
    async with HttpCommunicator(inspector, "GET", "/events", headers=AUTH) as stream:  # one stream open already
        await stream.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await stream.receive_output())["status"] == 200
        status, body = await get(inspector, "/events")
        assert status == 503
        assert b"1 inspector streams are open already (max_streams=1)" in body
        await stream.send_input({"type": "http.disconnect"})
        await stream.wait()
    assert (await get(inspector, "/api/summary"))[0] == 200  # a summary is not a stream
    with pytest.raises(ValueError, match="max_streams"):
        Inspector(token=TOKEN, max_streams=0)
