"""HttpStateActor: states, timeouts, invoked tasks and exit hooks for one HTTP request."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from interlock.actors import HttpStateActor, ProtocolTypeRouter
from interlock.actors.testing import ApplicationCommunicator, HttpCommunicator
from interlock.dsl import State, Timeout, on
from interlock.layers import InMemoryChannelLayer

from tests.http.test_http_actor import http_scope


class Poll(HttpStateActor):
    """A long-poll as a machine: wait for a message, or answer 204 after the state's timeout."""

    waiting = State(initial=True, timeout=1)
    seen: ClassVar[list[str]] = []

    async def handle(self, body: bytes) -> None:
        await self.channel_layer.group_add("news", self.channel_name)

    @on.message("news.item", source=waiting)
    async def item(self, message: dict[str, Any]) -> None:
        await self.send_json({"messages": [message["text"]]})

    @on.timeout(waiting)
    async def quiet(self, event: Timeout) -> None:
        await self.send_response(204, b"")

    @waiting.exit
    async def left_waiting(self) -> None:
        assert self.ending is not None
        self.seen.append(f"exit waiting: {self.ending.cause}")

    async def disconnect(self, code: int | None = None) -> None:
        self.seen.append(f"disconnect({code}) {self.state} {self.response_state}")


def poll_app() -> tuple[Any, InMemoryChannelLayer]:
    layer = InMemoryChannelLayer()
    return ProtocolTypeRouter({"http": Poll.as_asgi()}, channel_layer=layer), layer


async def test_a_message_ends_the_wait() -> None:
    Poll.seen = []
    app, layer = poll_app()
    async with ApplicationCommunicator(app, http_scope()) as client:
        await client.send_input({"type": "http.request", "body": b"", "more_body": False})
        await client.receive_nothing(0.05)
        await layer.group_send("news", {"type": "news.item", "text": "hello"})
        assert (await client.receive_output())["status"] == 200
        assert (await client.receive_output())["body"] == b'{"messages": ["hello"]}'
        await client.wait()
    assert Poll.seen == ["exit waiting: actor", "disconnect(200) closed done"]


async def test_the_states_timeout_answers_204() -> None:
    Poll.seen = []
    app, _ = poll_app()
    async with HttpCommunicator(app, "GET", "/") as http:
        response = await http.get_response(timeout=2)
        await http.wait()
    assert (response.status, response.body) == (204, b"")
    assert Poll.seen == ["exit waiting: actor", "disconnect(204) closed done"]


async def test_a_client_leaving_exits_the_states_once() -> None:
    Poll.seen = []
    app, layer = poll_app()
    async with ApplicationCommunicator(app, http_scope()) as client:
        await client.send_input({"type": "http.request", "body": b"", "more_body": False})
        await client.receive_nothing(0.05)
        await client.send_input({"type": "http.disconnect"})
        await client.wait()
    assert Poll.seen == ["exit waiting: client", "disconnect(0) closed gone"]
    assert await layer.group_members("news") == frozenset()


class Fetch(HttpStateActor):
    """An invoked task's result answers the request; the request itself is a client event."""

    fetching = State(initial=True, invoke=["lookup"])

    async def lookup(self) -> str:
        return "looked up"

    @on.client("request", source=fetching)
    async def request(self, body: bytes) -> None:
        self.body = body

    @on.done("lookup", source=fetching)
    async def found(self, result: str) -> None:
        await self.send_response(200, f"{result} for {self.body.decode()}".encode())


async def test_an_invoked_task_answers_and_the_request_is_a_client_event() -> None:
    async with HttpCommunicator(Fetch.as_asgi(), "POST", "/", body=b"ada") as http:
        response = await http.get_response()
    assert response.body == b"looked up for ada"


class Misuse(HttpStateActor):
    ready = State(initial=True)

    async def handle(self, body: bytes) -> None:
        with pytest.raises(TypeError, match="answer with send_response"):
            self.accept()
        with pytest.raises(TypeError, match="send_headers"):
            self.send(text_data="hi")
        await self.send_response(200, f"{self.state} {self.response_state}".encode())


async def test_websocket_operations_are_refused_and_both_states_are_visible() -> None:
    async with HttpCommunicator(Misuse.as_asgi(), "GET", "/") as http:
        assert (await http.get_response()).body == b"open.ready responding"


def test_the_diagram_nests_the_states_in_the_http_lifecycle() -> None:
    text = Poll.diagram("mermaid")
    assert "receiving --> serving: request (body read)" in text
    assert "state serving {" in text
    assert "s0 --> s0: message news.item (internal)<br/>after 1 s (internal)" in text  # one loop, a line each
    assert "serving --> gone: client left" in text
    assert "accept" not in text
