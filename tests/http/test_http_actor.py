"""HttpActor in process: the lifecycle checked on every operation, bodies, failures, the end."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import anyio
import pytest
from interlock.actors import HttpActor, HttpError, IllegalTransition, ProtocolTypeRouter, handler
from interlock.actors.testing import ApplicationCommunicator, HttpCommunicator
from interlock.layers import InMemoryChannelLayer

Pairs = list[tuple[bytes, bytes]]


def http_scope(path: str = "/", method: str = "GET", headers: Pairs | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Json(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_json({"method": self.method, "size": len(body)})


class SyncJson(HttpActor):
    def handle(self, body: bytes) -> None:
        self.send_json({"sync": body.decode()})


async def test_a_json_response() -> None:
    async with HttpCommunicator(Json.as_asgi(), "POST", "/", body=b"abc") as http:
        response = await http.get_response()
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    assert response.header("content-length") == str(len(response.body))
    assert response.body == b'{"method": "POST", "size": 3}'


async def test_a_sync_handler() -> None:
    async with HttpCommunicator(SyncJson.as_asgi(), "POST", "/", body=b"hi") as http:
        assert (await http.get_response()).body == b'{"sync": "hi"}'


async def test_a_body_in_chunks_is_read_whole() -> None:
    async with ApplicationCommunicator(Json.as_asgi(), http_scope(method="PUT")) as app:
        for part in (b"ab", b"cd"):
            await app.send_input({"type": "http.request", "body": part, "more_body": True})
        await app.send_input({"type": "http.request", "body": b"e", "more_body": False})
        start = await app.receive_output()
        assert start["status"] == 200
        assert (await app.receive_output())["body"] == b'{"method": "PUT", "size": 5}'
        await app.wait()


class Small(HttpActor):
    max_body_size = 4
    handled = 0

    async def handle(self, body: bytes) -> None:
        type(self).handled += 1
        await self.send_response(200, body)


@pytest.mark.parametrize(
    ("headers", "parts"),
    [([(b"content-length", b"10")], [b"0123456789"]), ([], [b"012", b"345"])],
    ids=["announced", "streamed"],
)
async def test_an_oversize_body_is_413_the_clients_fault(
    headers: list[tuple[bytes, bytes]], parts: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    Small.handled = 0
    async with ApplicationCommunicator(Small.as_asgi(), http_scope(method="POST", headers=headers)) as app:
        for index, part in enumerate(parts):
            await app.send_input({"type": "http.request", "body": part, "more_body": index < len(parts) - 1})
        start = await app.receive_output()
        assert start["status"] == 413
        assert b"over the limit of 4 bytes" in (await app.receive_output())["body"]
        await app.wait()
    assert Small.handled == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("refused the request" in r.getMessage() for r in caplog.records)


class Misuse(HttpActor):
    async def handle(self, body: bytes) -> None:
        try:
            await self.send_body(b"too soon")
        except IllegalTransition as exc:
            await self.send_response(200, str(exc).encode())


async def test_send_body_before_send_headers_names_the_state_and_the_fix() -> None:
    async with HttpCommunicator(Misuse.as_asgi(), "GET", "/") as http:
        text = (await http.get_response()).body.decode()
    assert text == (
        "send_body() is not allowed in state 'responding': call send_headers() first, or send_response() "
        "for a whole response (allowed in 'responding': send_headers(), send_response())"
    )


class Twice(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"once")
        with pytest.raises(IllegalTransition, match="the response is finished"):
            self.send_response(200, b"twice")
        with pytest.raises(TypeError, match="encode it first"):
            self.send_body("text")  # type: ignore[arg-type]


async def test_a_finished_response_refuses_more() -> None:
    async with HttpCommunicator(Twice.as_asgi(), "GET", "/") as http:
        assert (await http.get_response()).body == b"once"
        await http.wait()


class Raises(HttpActor):
    ended: ClassVar[list[str]] = []

    async def handle(self, body: bytes) -> None:
        if self.scope["path"] == "/after":
            await self.send_headers(200)
            await self.send_body(b"part", more_body=True)
        if self.scope["path"] == "/teapot":
            raise HttpError(418, "short and stout")
        raise RuntimeError("boom")

    async def disconnect(self) -> None:
        assert self.ending is not None
        self.ended.append(f"{self.ending.cause} {self.ending.code} {self.state}")


async def test_a_handler_raising_before_the_headers_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    Raises.ended = []
    async with HttpCommunicator(Raises.as_asgi(), "GET", "/") as http:
        response = await http.get_response()
        await http.wait()
    assert (response.status, response.body) == (500, b"Internal Server Error\n")
    assert Raises.ended == ["error 500 done"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].endswith("RuntimeError: boom")


async def test_an_http_error_answers_its_status_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    Raises.ended = []
    async with HttpCommunicator(Raises.as_asgi(), "GET", "/teapot") as http:
        response = await http.get_response()
        await http.wait()
    assert (response.status, response.body) == (418, b"short and stout\n")
    assert Raises.ended == ["actor 418 done"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_handler_raising_after_the_headers_cuts_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    Raises.ended = []
    async with ApplicationCommunicator(Raises.as_asgi(), http_scope("/after")) as app:
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await app.receive_output())["status"] == 200
        assert (await app.receive_output()) == {"type": "http.response.body", "body": b"part", "more_body": True}
        await app.wait()  # returns with the response unfinished: the server cuts the connection
    assert Raises.ended == ["error 500 done"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "after the headers went out, the response is cut" in errors[0]


class Feed(HttpActor):
    groups = ("feed",)
    ended: ClassVar[list[str]] = []

    async def handle(self, body: bytes) -> None:
        await self.send_headers(200, {"content-type": "text/plain"})
        await self.send_body(b"hello\n", more_body=True)

    @handler
    async def feed_item(self, message: dict[str, Any]) -> None:
        await self.send_body(message["text"].encode(), more_body=not message.get("last"))

    async def disconnect(self) -> None:
        assert self.ending is not None
        self.ended.append(f"{self.ending.cause} {self.state}")


async def test_a_stream_outlives_handle_fed_by_group_send_until_finished() -> None:
    Feed.ended = []
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"http": Feed.as_asgi()}, channel_layer=layer)
    async with ApplicationCommunicator(app, http_scope()) as client:
        await client.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await client.receive_output())["status"] == 200
        assert (await client.receive_output())["body"] == b"hello\n"
        await layer.group_send("feed", {"type": "feed.item", "text": "one\n"})
        assert (await client.receive_output())["body"] == b"one\n"
        await layer.group_send("feed", {"type": "feed.item", "text": "bye\n", "last": True})
        last = await client.receive_output()
        assert (last["body"], last["more_body"]) == (b"bye\n", False)
        await client.wait()
    assert Feed.ended == ["actor done"]
    assert await layer.group_members("feed") == frozenset()


async def test_a_client_leaving_mid_stream_ends_the_actor_once() -> None:
    Feed.ended = []
    layer = InMemoryChannelLayer()
    app = ProtocolTypeRouter({"http": Feed.as_asgi()}, channel_layer=layer)
    async with ApplicationCommunicator(app, http_scope()) as client:
        await client.send_input({"type": "http.request", "body": b"", "more_body": False})
        await client.receive_output()
        await client.receive_output()
        await client.send_input({"type": "http.disconnect"})
        await client.wait()
    assert Feed.ended == ["client gone"]
    assert await layer.group_members("feed") == frozenset()


class Looper(HttpActor):
    """Channels' SSE pattern: handle() never returns on its own."""

    watch_client = True
    ended: ClassVar[list[str]] = []

    async def handle(self, body: bytes) -> None:
        await self.send_headers(200)
        while True:
            await self.send_body(b"tick\n", more_body=True)
            await anyio.sleep(0.01)

    async def disconnect(self) -> None:
        assert self.ending is not None
        self.ended.append(f"{self.ending.cause} {self.state}")


async def test_a_looping_handler_is_cancelled_when_the_client_leaves() -> None:
    Looper.ended = []
    async with ApplicationCommunicator(Looper.as_asgi(), http_scope()) as client:
        await client.send_input({"type": "http.request", "body": b"", "more_body": False})
        await client.receive_output()
        assert (await client.receive_output())["body"] == b"tick\n"
        await client.send_input({"type": "http.disconnect"})
        await client.wait()
    assert Looper.ended == ["client gone"]


def test_the_lifecycle_diagram_is_drawn_from_the_table() -> None:
    text = HttpActor.diagram("mermaid")
    assert "receiving --> responding: request (body read)" in text
    assert "streaming --> gone: client left" in text
    assert 'digraph "HttpActor"' in HttpActor.diagram("dot")


class OnlyGet(HttpActor):
    methods = frozenset({"GET", "HEAD"})

    async def handle(self, body: bytes) -> None:
        await self.send_response(200, b"got")


async def test_a_method_not_allowed_is_405_with_allow(caplog: pytest.LogCaptureFixture) -> None:
    async with HttpCommunicator(OnlyGet.as_asgi(), "POST", "/", body=b"x") as http:
        response = await http.get_response()
    assert (response.status, response.header("allow")) == (405, "GET, HEAD")
    assert response.body == b"POST is not allowed here; use GET, HEAD\n"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    async with HttpCommunicator(OnlyGet.as_asgi(), "GET", "/") as http:
        assert (await http.get_response()).body == b"got"


class Forgetful(HttpActor):
    async def handle(self, body: bytes) -> None:
        await self.send_headers(200)  # and nothing, no layer, can ever finish it


async def test_a_response_nothing_can_finish_is_cut_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async with ApplicationCommunicator(Forgetful.as_asgi(), http_scope()) as app:
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await app.receive_output())["status"] == 200
        await app.wait()  # it does not hang until the client gives up
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "handle() returned with the response unfinished (streaming), and nothing can finish it" in errors[0]
