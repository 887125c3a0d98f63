"""Routing by URL path, by protocol type and by channel name, and ``as_asgi()`` keywords."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import django.urls as django_urls
import httpx
import pytest
from interlock.actors import (
    ASGIApp,
    ChannelNameRouter,
    Message,
    ProtocolTypeRouter,
    Receive,
    Route,
    RouteNotFound,
    Scope,
    Send,
    URLRouter,
    WebsocketActor,
    path,
    re_path,
)
from interlock.actors.testing import (
    ApplicationCommunicator,
    ApplicationFailed,
    HttpCommunicator,
    WebsocketCommunicator,
)
from interlock.layers import InMemoryChannelLayer

from tests.support.servers import serve
from tests.support.wsclient import try_connect

UUID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"


# -- helpers ------------------------------------------------------------------------------------


async def leaf(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer HTTP with what routing put in the scope, as JSON."""
    body = json.dumps(
        {
            "args": list(scope["url_route"]["args"]),
            "kwargs": scope["url_route"]["kwargs"],
            "path_remaining": scope.get("path_remaining"),
        },
        default=str,
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def other(scope: Scope, receive: Receive, send: Send) -> None:
    """A second leaf, told apart from :func:`leaf` by identity."""


def http_scope(url: str, *, root_path: str = "", **extra: Any) -> Scope:
    return {"type": "http", "path": url, "root_path": root_path, **extra}


async def no_receive() -> Message:
    raise AssertionError("the app should not receive")


async def no_send(message: Message) -> None:
    raise AssertionError(f"the app should not send {message!r}")


# -- path() converters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "url", "expected"),
    [
        ("rooms/<room>/", "/rooms/lobby/", {"room": "lobby"}),
        ("rooms/<str:room>/", "/rooms/a.b-c~d/", {"room": "a.b-c~d"}),
        ("rooms/<int:room_id>/", "/rooms/42/", {"room_id": 42}),
        ("posts/<slug:slug>/", "/posts/hello-world_2/", {"slug": "hello-world_2"}),
        ("things/<uuid:thing>/", f"/things/{UUID}/", {"thing": uuid.UUID(UUID)}),
        ("files/<path:rest>", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("a/<int:x>/b/<slug:y>/", "/a/7/b/z-9/", {"x": 7, "y": "z-9"}),
        ("", "/", {}),
    ],
)
def test_path_converters_capture_typed_values(pattern: str, url: str, expected: dict[str, Any]) -> None:
    route, scope = URLRouter([path(pattern, leaf)]).resolve(http_scope(url))
    kwargs = scope["url_route"]["kwargs"]
    assert kwargs == expected
    assert {key: type(value) for key, value in kwargs.items()} == {key: type(value) for key, value in expected.items()}
    assert scope["url_route"]["args"] == ()
    assert route.app is leaf
    assert "path_remaining" not in scope


@pytest.mark.parametrize(
    ("pattern", "url"),
    [
        ("rooms/<str:room>/", "/rooms/a/b/"),
        ("rooms/<int:room_id>/", "/rooms/abc/"),
        ("rooms/<int:room_id>/", "/rooms/-1/"),
        ("posts/<slug:slug>/", "/posts/a.b/"),
        ("things/<uuid:thing>/", "/things/not-a-uuid/"),
        ("things/<uuid:thing>/", f"/things/{UUID.upper()}/"),
        ("rooms/<room>/", "/rooms/lobby/extra/"),
        ("rooms/<room>/", "/rooms/lobby"),
        ("", "/x"),
    ],
)
def test_path_converters_refuse_what_they_do_not_match(pattern: str, url: str) -> None:
    with pytest.raises(RouteNotFound):
        URLRouter([path(pattern, leaf)]).resolve(http_scope(url))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("rooms/<float:x>/", "unknown converter 'float'"),
        ("rooms/<int:x>/<str:x>/", "parameter 'x' appears twice"),
        ("rooms/<x>/<x>/", "parameter 'x' appears twice"),
        ("rooms/<int:9lives>/", "'9lives' is not a valid parameter name"),
    ],
)
def test_path_refuses_bad_patterns_naming_the_route(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="path") as info:
        path(pattern, leaf)
    assert repr(pattern) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("pattern", ["rooms/(?P<x>[0-9]+/", "rooms/[a-", "rooms/(?P<1x>a)/"])
def test_re_path_refuses_a_bad_regex_naming_the_route(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid regular expression") as info:
        re_path(pattern, leaf)
    assert repr(pattern) in str(info.value)


@pytest.mark.parametrize(
    "build",
    [
        lambda app: path("ws/", app),
        lambda app: re_path(r"^ws/$", app),
        lambda app: ChannelNameRouter({"worker.alpha": app}),
    ],
    ids=["path", "re_path", "ChannelNameRouter"],
)
def test_routes_refuse_an_actor_class_with_a_hint(build: Any) -> None:
    with pytest.raises(TypeError, match=r"is a class; use Reporter\.as_asgi\(\)"):
        build(Reporter)
    with pytest.raises(TypeError, match="not an ASGI callable"):
        build("myapp.asgi")


def test_url_router_takes_only_routes() -> None:
    with pytest.raises(TypeError, match="path\\(\\) or re_path\\(\\)"):
        URLRouter([("ws/", leaf)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("build", "hint"),
    [
        (lambda: django_urls.path("rooms/<int:room>/", leaf), "use interlock.actors.path('rooms/<int:room>/', app)"),
        (lambda: django_urls.re_path(r"^rooms/(\d+)/$", leaf), r"use interlock.actors.re_path('^rooms/(\\d+)/$', app)"),
    ],
    ids=["path", "re_path"],
)
def test_url_router_refuses_djangos_routes_naming_ours(build: Any, hint: str) -> None:
    django_route = build()
    with pytest.raises(TypeError) as info:
        URLRouter([django_route])
    message = str(info.value)
    assert "not Django's URLPattern" in message
    assert hint in message


def test_url_router_refuses_djangos_include_with_a_nested_router_hint() -> None:
    with pytest.raises(TypeError) as info:
        URLRouter([django_urls.path("chat/", django_urls.include([django_urls.path("a/", leaf)]))])
    assert "cannot take Django's include() (URLResolver 'chat/')" in str(info.value)
    assert "interlock.actors.path('chat/', URLRouter([...]))" in str(info.value)


# -- re_path() ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "url", "args", "kwargs"),
    [
        (r"^rooms/(?P<room>\w+)/$", "/rooms/red/", (), {"room": "red"}),
        (r"^archive/(\d{4})/(\d{2})/$", "/archive/2024/05/", ("2024", "05"), {}),
        # Django's rule: once a pattern names groups, positional ones are not passed.
        (r"^mixed/(\d+)/(?P<name>\w+)/$", "/mixed/3/x/", (), {"name": "x"}),
        # An optional group that did not match is left out.
        (r"^opt/(?P<a>\d+)/(?:(?P<b>\d+)/)?$", "/opt/1/", (), {"a": "1"}),
        (r"^opt/(\d+)/(?:(\d+)/)?$", "/opt/1/", ("1",), {}),
    ],
)
def test_re_path_passes_named_and_positional_groups(
    pattern: str, url: str, args: tuple[str, ...], kwargs: dict[str, str]
) -> None:
    _, scope = URLRouter([re_path(pattern, leaf)]).resolve(http_scope(url))
    assert scope["url_route"] == {"args": args, "kwargs": kwargs}


@pytest.mark.parametrize(
    "route",
    [
        path("/ws/<room>/", leaf),
        path("ws/<room>/", leaf),
        re_path(r"^/ws/(?P<room>\w+)/$", leaf),
        re_path(r"/ws/(?P<room>\w+)/$", leaf),
        re_path(r"^ws/(?P<room>\w+)/$", leaf),
    ],
)
def test_a_leading_slash_in_a_pattern_is_optional(route: Route) -> None:
    _, scope = URLRouter([route]).resolve(http_scope("/ws/red/"))
    assert scope["url_route"]["kwargs"] == {"room": "red"}


def test_path_strips_the_leading_slash_from_the_pattern() -> None:
    assert path("/ws/<room>/", leaf).pattern == "ws/<room>/"


def test_the_first_matching_route_wins() -> None:
    router = URLRouter([path("ws/<room>/", leaf), path("ws/lobby/", other)])
    route, _ = router.resolve(http_scope("/ws/lobby/"))
    assert route.app is leaf


# -- nesting and the scope ----------------------------------------------------------------------


def nested_router() -> URLRouter:
    messages = URLRouter(
        [
            path("messages/<int:msg_id>/", leaf),
            re_path(r"^tags/([a-z]+)/$", leaf),
        ]
    )
    return URLRouter(
        [
            path("rooms/<slug:room>/", messages),
            re_path(r"^v(\d+)/", URLRouter([re_path(r"^items/(\d+)/$", leaf)])),
        ]
    )


NESTED_PATTERNS = [
    "rooms/<slug:room>/messages/<int:msg_id>/",
    r"rooms/<slug:room>/tags/([a-z]+)/$",
    r"^v(\d+)/items/(\d+)/$",
]


def test_resolve_descends_into_nested_routers() -> None:
    route, scope = nested_router().resolve(http_scope("/rooms/red/messages/7/"))
    assert route.app is leaf
    assert route.pattern == "messages/<int:msg_id>/"
    assert scope["url_route"] == {"args": (), "kwargs": {"room": "red", "msg_id": 7}}
    assert scope["path"] == "/rooms/red/messages/7/"
    assert "path_remaining" not in scope


def test_a_nested_router_reads_the_rest_of_the_path() -> None:
    inner = URLRouter([path("messages/<int:msg_id>/", leaf)])
    outer_scope = {**http_scope("/rooms/red/messages/7/"), "path_remaining": "messages/7/"}
    outer_scope["url_route"] = {"args": (), "kwargs": {"room": "red"}}
    route, scope = inner.resolve(outer_scope)
    assert route.app is leaf
    assert scope["url_route"] == {"args": (), "kwargs": {"room": "red", "msg_id": 7}}
    assert "path_remaining" not in scope


def test_nested_positional_groups_accumulate() -> None:
    route, scope = nested_router().resolve(http_scope("/v2/items/5/"))
    assert route.app is leaf
    assert scope["url_route"] == {"args": ("2", "5"), "kwargs": {}}


def test_resolve_leaves_the_callers_scope_alone() -> None:
    scope = http_scope("/rooms/red/messages/7/")
    nested_router().resolve(scope)
    assert scope == http_scope("/rooms/red/messages/7/")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/rooms/red/messages/7/", {"args": [], "kwargs": {"room": "red", "msg_id": 7}}),
        ("/rooms/red/tags/news/", {"args": ["news"], "kwargs": {"room": "red"}}),
        ("/v3/items/9/", {"args": ["3", "9"], "kwargs": {}}),
    ],
)
async def test_nested_routers_serve_http_with_accumulated_url_route(url: str, expected: dict[str, Any]) -> None:
    async with HttpCommunicator(nested_router(), "GET", url) as http:
        response = await http.get_response()
    assert response.status == 200
    assert json.loads(response.body) == {**expected, "path_remaining": None}


# -- a nested router that matches nothing lets the next route try ---------------------------------


def answering(label: str) -> ASGIApp:
    """An HTTP app that answers 200 with *label* and the captured kwargs, as JSON."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps({"app": label, "kwargs": scope["url_route"]["kwargs"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


FALL_THROUGH = {
    "path": lambda: URLRouter(
        [path("prefix/", URLRouter([path("a/", answering("app1"))])), path("prefix/b/", answering("app2"))]
    ),
    "re_path": lambda: URLRouter(
        [
            re_path(r"^prefix/", URLRouter([re_path(r"^a/$", answering("app1"))])),
            re_path(r"^prefix/b/$", answering("app2")),
        ]
    ),
    "captures": lambda: URLRouter(
        [
            path("<slug:site>/", URLRouter([path("a/", answering("app1"))])),
            path("<slug:site>/<slug:page>/", answering("app2")),
        ]
    ),
    "two levels": lambda: URLRouter(
        [
            path(
                "prefix/",
                URLRouter([path("x/", URLRouter([path("y/", answering("deep"))])), path("a/", answering("app1"))]),
            ),
            path("prefix/<slug:page>/", answering("app2")),
        ]
    ),
}


@pytest.mark.parametrize("kind", FALL_THROUGH)
@pytest.mark.parametrize(("url", "expected"), [("/prefix/a/", "app1"), ("/prefix/b/", "app2")])
async def test_a_nested_router_without_a_match_falls_through_to_the_next_route(
    kind: str, url: str, expected: str
) -> None:
    async with HttpCommunicator(FALL_THROUGH[kind](), "GET", url) as http:
        response = await http.get_response()
    assert response.status == 200, response.body
    assert json.loads(response.body)["app"] == expected


def test_fall_through_starts_afresh_with_the_outer_captures() -> None:
    router = FALL_THROUGH["captures"]()
    _, scope = router.resolve(http_scope("/main/b/"))
    assert scope["url_route"] == {"args": (), "kwargs": {"site": "main", "page": "b"}}


def test_fall_through_leaves_a_deeper_router_too() -> None:
    router = FALL_THROUGH["two levels"]()
    _, deep = router.resolve(http_scope("/prefix/x/y/"))
    _, fell = router.resolve(http_scope("/prefix/x/"))
    assert deep["url_route"]["kwargs"] == {}
    assert fell["url_route"]["kwargs"] == {"page": "x"}


# -- root_path --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "root_path"),
    [
        ("/prefix/ws/red/", "/prefix"),
        ("/prefix/ws/red/", "/prefix/"),
        ("/ws/red/", "/prefix"),  # a path without the root path is taken as it is
        ("/ws/red/", ""),
    ],
)
def test_root_path_is_stripped(url: str, root_path: str) -> None:
    _, scope = URLRouter([path("ws/<room>/", leaf)]).resolve(http_scope(url, root_path=root_path))
    assert scope["url_route"]["kwargs"] == {"room": "red"}


def test_root_path_is_stripped_only_at_a_segment_boundary() -> None:
    router = URLRouter([path("fix/ws/", leaf), path("prefix/ws/", other)])
    route, _ = router.resolve(http_scope("/prefix/ws/", root_path="/pre"))
    assert route.app is other


def test_root_path_alone_matches_the_empty_route() -> None:
    route, _ = URLRouter([path("", leaf)]).resolve(http_scope("/app", root_path="/app"))
    assert route.app is leaf


# -- nothing matches ------------------------------------------------------------------------------


def test_resolve_raises_route_not_found_listing_the_patterns() -> None:
    router = URLRouter([path("ws/<room>/", leaf), re_path(r"^api/(\d+)/$", leaf)])
    with pytest.raises(RouteNotFound) as info:
        router.resolve(http_scope("/nope/"))
    error = info.value
    assert isinstance(error, ValueError)
    assert error.path == "/nope/"
    assert error.tried == ["ws/<room>/", r"^api/(\d+)/$"]
    assert "'/nope/'" in str(error)
    assert "'ws/<room>/'" in str(error)


@pytest.mark.parametrize("url", ["/rooms/red/nope/", "/v2/nope/", "/nope/"])
def test_route_not_found_names_the_full_path_and_every_nested_pattern(url: str) -> None:
    with pytest.raises(RouteNotFound) as info:
        nested_router().resolve(http_scope(url))
    assert info.value.path == url
    assert info.value.tried == NESTED_PATTERNS
    assert "'rooms/<slug:room>/messages/<int:msg_id>/'" in str(info.value)


def test_route_not_found_after_a_fall_through_lists_both_routes() -> None:
    with pytest.raises(RouteNotFound) as info:
        FALL_THROUGH["path"]().resolve(http_scope("/prefix/c/"))
    assert info.value.tried == ["prefix/a/", "prefix/b/"]


def test_an_empty_router_says_so() -> None:
    with pytest.raises(RouteNotFound, match="no routes"):
        URLRouter([]).resolve(http_scope("/x/"))


def test_an_empty_nested_router_is_listed_by_its_prefix() -> None:
    with pytest.raises(RouteNotFound) as info:
        URLRouter([path("empty/", URLRouter([])), path("b/", leaf)]).resolve(http_scope("/empty/x/"))
    assert info.value.tried == ["empty/", "b/"]


def warnings_naming(caplog: pytest.LogCaptureFixture, url: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING
        and record.name == "interlock.actors.routing"
        and url in record.getMessage()
    ]


@pytest.mark.parametrize("url", ["/nope/", "/rooms/red/nope/"])
async def test_unmatched_http_path_gets_404_and_a_warning(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="interlock.actors")
    async with HttpCommunicator(nested_router(), "GET", url) as http:
        response = await http.get_response()
        await http.wait()
    assert response.status == 404
    assert response.body == b"Not Found"
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-length") == "9"
    assert warnings_naming(caplog, url)


async def test_unmatched_websocket_path_is_refused_with_404(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="interlock.actors")
    async with WebsocketCommunicator(nested_router(), "/ws/nope/") as ws:
        handshake = await ws.connect()
        await ws.wait()
    assert not handshake.accepted
    assert handshake.status == 404
    assert handshake.body == b"Not Found"
    assert warnings_naming(caplog, "/ws/nope/")


async def test_unmatched_websocket_path_without_denial_extension_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="interlock.actors")
    async with WebsocketCommunicator(nested_router(), "/ws/nope/", denial_extension=False) as ws:
        await ws.send_input({"type": "websocket.connect"})
        assert await ws.receive_output() == {"type": "websocket.close", "code": 1000}
        await ws.wait()
    assert ws.handshake is None
    assert warnings_naming(caplog, "/ws/nope/")


class SansIOProtocol:
    """Stands in for uvicorn's websockets-sansio protocol, whose bound ``send`` the app gets."""

    __module__ = "uvicorn.protocols.websockets.websockets_sansio_impl"

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def test_unmatched_websocket_path_is_closed_where_a_denial_would_log_an_error() -> None:
    # uvicorn's websockets-sansio logs "ASGI callable returned without completing
    # handshake." after any denial response; a close before accept it answers quietly.
    protocol = SansIOProtocol()
    scope = {**http_scope("/ws/nope/"), "type": "websocket", "extensions": {"websocket.http.response": {}}}

    async def connect() -> Message:
        return {"type": "websocket.connect"}

    await nested_router()(scope, connect, protocol.send)
    assert protocol.sent == [{"type": "websocket.close", "code": 1000}]


async def test_unmatched_path_of_another_scope_type_raises() -> None:
    async with ApplicationCommunicator(nested_router(), {"type": "lifespan"}) as app:
        with pytest.raises(ApplicationFailed) as info:
            await app.wait()
    assert isinstance(info.value.__cause__, RouteNotFound)


# -- routers return what the app returns ------------------------------------------------------


async def returns_a_value(scope: Scope, receive: Receive, send: Send) -> Any:
    """Returns a sentinel, as an app under a test harness might."""
    return ("returned by", scope["type"])


ANY_APP: Any = returns_a_value

RETURNING: dict[str, tuple[Callable[[], Any], Scope]] = {
    "ProtocolTypeRouter": (lambda: ProtocolTypeRouter({"http": ANY_APP}), {"type": "http", "path": "/"}),
    "URLRouter": (lambda: URLRouter([path("x/", ANY_APP)]), http_scope("/x/")),
    "nested URLRouter": (lambda: URLRouter([path("x/", URLRouter([path("y/", ANY_APP)]))]), http_scope("/x/y/")),
    "ChannelNameRouter": (lambda: ChannelNameRouter({"jobs": ANY_APP}), {"type": "channel", "channel": "jobs"}),
}


@pytest.mark.parametrize("kind", RETURNING)
async def test_routers_return_what_the_app_returns(kind: str) -> None:
    build, scope = RETURNING[kind]
    router: Any = build()
    assert await router(scope, no_receive, no_send) == ("returned by", scope["type"])


# -- ProtocolTypeRouter ----------------------------------------------------------------------------


class Reporter(WebsocketActor):
    """Accepts, then tells the client what layer and channel it was given."""

    async def connect(self) -> None:
        await self.accept()
        layer, channel = getattr(self, "channel_layer", None), getattr(self, "channel_name", None)
        await self.send(text_data=json.dumps({"layer": id(layer), "channel": channel}))


class Grouped(WebsocketActor):
    """Joins the group ``g`` on connect (through whichever layer it has)."""

    groups = ("g",)


async def test_protocol_type_router_routes_by_scope_type() -> None:
    router = ProtocolTypeRouter({"http": URLRouter([path("<path:rest>", leaf)]), "websocket": Reporter.as_asgi()})
    async with HttpCommunicator(router, "GET", "/some/where") as http:
        response = await http.get_response()
    assert json.loads(response.body)["kwargs"] == {"rest": "some/where"}
    async with WebsocketCommunicator(router, "/ws/") as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"layer": id(None), "channel": None}
        await ws.disconnect()


async def test_protocol_type_router_refuses_an_unknown_scope_type() -> None:
    router = ProtocolTypeRouter({"http": leaf, "websocket": Reporter.as_asgi()})
    with pytest.raises(ValueError, match="scope type 'webtransport'") as info:
        await router({"type": "webtransport"}, no_receive, no_send)
    assert "['http', 'websocket']" in str(info.value)


async def test_protocol_type_router_answers_404_for_http_and_websocket_it_does_not_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = ProtocolTypeRouter({"websocket": Reporter.as_asgi()})
    with caplog.at_level(logging.WARNING, "interlock.actors"):
        async with HttpCommunicator(router, "GET", "/ws/") as http:
            response = await http.get_response()
    assert response.status == 404
    assert "no application for scope type 'http'" in caplog.text
    only_http = ProtocolTypeRouter({"http": leaf})
    async with WebsocketCommunicator(only_http, "/ws/") as ws:
        handshake = await ws.connect()
    assert (handshake.accepted, handshake.status) == (False, 404)


def test_protocol_type_router_refuses_an_actor_class() -> None:
    with pytest.raises(TypeError, match=r"'websocket' is a class; use Reporter\.as_asgi\(\)"):
        ProtocolTypeRouter({"websocket": Reporter})  # type: ignore[dict-item]


def test_protocol_type_router_refuses_what_is_not_callable() -> None:
    with pytest.raises(TypeError, match="'http' is not an ASGI callable"):
        ProtocolTypeRouter({"http": "myapp.asgi"})  # type: ignore[dict-item]


async def test_protocol_type_router_gives_actors_its_layer_and_a_channel() -> None:
    layer = InMemoryChannelLayer()
    router = ProtocolTypeRouter({"websocket": Reporter.as_asgi()}, channel_layer=layer)
    async with WebsocketCommunicator(router, "/ws/") as ws:
        assert (await ws.connect()).accepted
        report = await ws.receive_json_from()
        assert report["layer"] == id(layer)
        assert isinstance(report["channel"], str)
        assert report["channel"].startswith("specific.")
        await layer.send(report["channel"], {"type": "nothing.to.see"})  # the channel is live
        await ws.disconnect()


async def test_protocol_type_router_answers_lifespan_and_closes_the_layer() -> None:
    layer = InMemoryChannelLayer()
    router = ProtocolTypeRouter({"websocket": Reporter.as_asgi()}, channel_layer=layer)
    async with ApplicationCommunicator(router, {"type": "lifespan", "asgi": {"version": "3.0"}}) as app:
        await app.send_input({"type": "lifespan.startup"})
        assert await app.receive_output() == {"type": "lifespan.startup.complete"}
        await layer.group_add("g", "specific.x!1")
        await layer.send("specific.x!1", {"type": "pending"})
        assert await layer.groups() == {"g": 1}
        await app.send_input({"type": "lifespan.shutdown"})
        assert await app.receive_output() == {"type": "lifespan.shutdown.complete"}
        await app.wait()
    assert await layer.groups() == {}
    with pytest.raises(TimeoutError), anyio.fail_after(0.05):
        await layer.receive("specific.x!1")  # the pending message was flushed


class SpyLayer:
    """Records start() and close(); either fails on request."""

    def __init__(self, *, fail: str = "") -> None:
        self.calls: list[str] = []
        self.fail = fail

    async def start(self) -> None:
        self.calls.append("start")
        if self.fail == "start":
            raise OSError("connection refused")

    async def close(self) -> None:
        self.calls.append("close")
        if self.fail == "close":
            raise OSError("connection reset")


async def test_lifespan_starts_then_closes_the_layer() -> None:
    layer = SpyLayer()
    router = ProtocolTypeRouter({}, channel_layer=layer)
    async with ApplicationCommunicator(router, {"type": "lifespan"}) as app:
        await app.send_input({"type": "lifespan.startup"})
        assert (await app.receive_output())["type"] == "lifespan.startup.complete"
        assert layer.calls == ["start"]
        await app.send_input({"type": "lifespan.shutdown"})
        assert (await app.receive_output())["type"] == "lifespan.shutdown.complete"
        await app.wait()
    assert layer.calls == ["start", "close"]


@pytest.mark.parametrize(
    ("fail", "inputs", "reply", "text"),
    [
        ("start", ["lifespan.startup"], "lifespan.startup.failed", "failed to start: connection refused"),
        (
            "close",
            ["lifespan.startup", "lifespan.shutdown"],
            "lifespan.shutdown.failed",
            "failed to close: connection reset",
        ),
    ],
)
async def test_lifespan_reports_a_layer_that_fails(
    fail: str, inputs: list[str], reply: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="interlock.actors")
    router = ProtocolTypeRouter({}, channel_layer=SpyLayer(fail=fail))
    async with ApplicationCommunicator(router, {"type": "lifespan"}) as app:
        for kind in inputs:
            await app.send_input({"type": kind})
        if len(inputs) == 2:
            assert (await app.receive_output())["type"] == "lifespan.startup.complete"
        failed = await app.receive_output()
        await app.wait()
    assert failed["type"] == reply
    assert text in failed["message"]
    assert any(f"failed to {fail}" in record.getMessage() for record in caplog.records)


async def test_lifespan_without_a_layer_completes() -> None:
    async with ApplicationCommunicator(ProtocolTypeRouter({}), {"type": "lifespan"}) as app:
        await app.send_input({"type": "lifespan.startup"})
        assert await app.receive_output() == {"type": "lifespan.startup.complete"}
        await app.send_input({"type": "lifespan.shutdown"})
        assert await app.receive_output() == {"type": "lifespan.shutdown.complete"}
        await app.wait()


async def test_a_user_lifespan_app_takes_precedence() -> None:
    layer = InMemoryChannelLayer()
    seen: list[Scope] = []

    async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete", "by": "user"})
            if message["type"] == "lifespan.shutdown":
                return

    router = ProtocolTypeRouter({"lifespan": lifespan}, channel_layer=layer)
    await layer.group_add("g", "specific.x!1")
    async with ApplicationCommunicator(router, {"type": "lifespan"}) as app:
        await app.send_input({"type": "lifespan.startup"})
        assert await app.receive_output() == {"type": "lifespan.startup.complete", "by": "user"}
        await app.send_input({"type": "lifespan.shutdown"})
        assert await app.receive_output() == {"type": "lifespan.shutdown.complete", "by": "user"}
        await app.wait()
    assert len(seen) == 1
    assert await layer.groups() == {"g": 1}  # the user's app owns the layer's lifetime


# -- ChannelNameRouter -------------------------------------------------------------------------------


async def test_channel_name_router_routes_by_channel() -> None:
    served: list[tuple[str, str]] = []

    def recorder(label: str) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            served.append((label, scope["channel"]))

        return app

    router = ChannelNameRouter({"worker.alpha": recorder("alpha"), "worker.beta": recorder("beta")})
    await router({"type": "channel", "channel": "worker.beta"}, no_receive, no_send)
    await router({"type": "channel", "channel": "worker.alpha"}, no_receive, no_send)
    assert served == [("beta", "worker.beta"), ("alpha", "worker.alpha")]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"type": "http", "path": "/"}, "serves 'channel' scopes, not 'http'"),
        ({"type": "channel", "channel": "worker.gamma"}, "no application for channel 'worker.gamma'"),
        ({"type": "channel"}, "no application for channel None"),
    ],
)
async def test_channel_name_router_errors(scope: Scope, message: str) -> None:
    router = ChannelNameRouter({"worker.alpha": leaf, "worker.beta": other})
    with pytest.raises(ValueError, match="ChannelNameRouter") as info:
        await router(scope, no_receive, no_send)
    assert message in str(info.value)
    if "no application" in message:
        assert "['worker.alpha', 'worker.beta']" in str(info.value)


# -- as_asgi() ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["unknown", "_handlers", "__class__"])
def test_as_asgi_refuses_unknown_keywords_at_once(keyword: str) -> None:
    with pytest.raises(TypeError, match=f"unexpected keyword argument {keyword!r}"):
        Reporter.as_asgi(**{keyword: 1})


def test_as_asgi_describes_itself() -> None:
    assert repr(Reporter.as_asgi(mailbox_size=8)) == "Reporter.as_asgi(mailbox_size=8)"


async def test_as_asgi_channel_layer_overrides_the_routers_per_instance() -> None:
    router_layer = InMemoryChannelLayer()
    own_layer = InMemoryChannelLayer()
    router = ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [
                    path("own/", Grouped.as_asgi(channel_layer=own_layer)),
                    path("shared/", Grouped.as_asgi()),
                ]
            )
        },
        channel_layer=router_layer,
    )
    async with (
        WebsocketCommunicator(router, "/own/") as own,
        WebsocketCommunicator(router, "/shared/") as shared,
    ):
        assert (await own.connect()).accepted
        assert (await shared.connect()).accepted
        assert len(await own_layer.group_members("g")) == 1
        assert len(await router_layer.group_members("g")) == 1
        assert await own_layer.group_members("g") != await router_layer.group_members("g")
        await own.disconnect()
        await shared.disconnect()
    assert await own_layer.groups() == {}
    assert await router_layer.groups() == {}


# -- unmatched paths under real servers ---------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]

e2e_app = ProtocolTypeRouter(
    {
        "http": URLRouter([path("here/", answering("here"))]),
        "websocket": URLRouter(
            [path("prefix/", URLRouter([path("a/", Reporter.as_asgi())])), path("prefix/b/", Reporter.as_asgi())]
        ),
    }
)
"""Served by real servers below, as ``tests.actors.test_routing:e2e_app``."""

# The WebSocket protocols each backend's server is run with, and the status an unmatched
# handshake gets: 404 where the server takes a denial response quietly, 403 (a close
# before accept) on uvicorn's websockets-sansio, which logs an ERROR after any denial.
SERVERS: dict[str, list[tuple[str, tuple[str, ...], set[int]]]] = {
    "asyncio": [
        ("auto", (), {403, 404}),
        ("wsproto", ("--ws", "wsproto"), {404}),
        ("websockets-sansio", ("--ws", "websockets-sansio"), {403}),
    ],
    "trio": [("hypercorn", (), {404})],
}


@pytest.mark.e2e
async def test_unmatched_paths_are_refused_without_a_server_error(anyio_backend: str) -> None:
    for protocol, extra_args, statuses in SERVERS[anyio_backend]:
        with serve(
            "tests.actors.test_routing:e2e_app", backend=anyio_backend, app_dir=str(ROOT), extra_args=extra_args
        ) as server:
            refused = await try_connect(server.host, server.port, "/prefix/nowhere/")
            fell_through = await try_connect(server.host, server.port, "/prefix/b/")
            async with httpx.AsyncClient() as http:
                missing = await http.get(server.http_url("/nowhere/"))
        logs = server.logs()  # complete: the server has stopped
        where = f"{server.kind} ({protocol}), log:\n{logs}"
        assert not refused.accepted, where
        assert refused.status in statuses, where
        assert fell_through.accepted, where
        assert missing.status_code == 404, where
        assert "no route matches path '/prefix/nowhere/' (tried 'prefix/a/', 'prefix/b/')" in logs, where
        assert "no route matches path '/nowhere/'" in logs, where
        assert "ERROR" not in logs, where
        assert "Traceback" not in logs, where
