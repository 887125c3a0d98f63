"""``SessionMiddleware`` on HTTP scopes: the behaviours of Channels' ``tests/test_http.py``, against interlock's API.

A session changed by an HTTP actor (``def`` or ``async def``) is saved when the response
starts and its cookie set, with the attributes Django's ``SESSION_COOKIE_*`` settings ask
for; an unchanged session sets no cookie; an emptied one deletes it; a session saved from
a WebSocket handler persists and is the next HTTP request's.
"""

from __future__ import annotations

import json
import logging
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings
from interlock.actors import HttpActor, JsonWebsocketActor, URLRouter, path
from interlock.actors.django import SessionMiddlewareStack, database_sync_to_async
from interlock.actors.testing import HttpCommunicator, HttpResponse, WebsocketCommunicator


class Visits(HttpActor):
    """``def`` handler: counts the visits in the session; ``?read`` only reads it, ``?flush`` empties it."""

    def handle(self, body: bytes) -> None:
        session = self.scope["session"]
        query = self.scope["query_string"]
        if query == b"flush":
            session.flush()
        elif query != b"read":
            session["visits"] = session.get("visits", 0) + 1
        self.send_json({"visits": session.get("visits", 0), "key": session.session_key})


class SavesEmpty(HttpActor):
    """``async def`` handler: saves an empty session, as Channels' test app does."""

    async def handle(self, body: bytes) -> None:
        await database_sync_to_async(self.scope["session"].save)()
        await self.send_response(200, self.scope["session"].session_key.encode())


class FailsAfterChanging(HttpActor):
    """Changes the session, then answers 500: nothing is saved."""

    def handle(self, body: bytes) -> None:
        self.scope["session"]["doomed"] = True
        self.send_response(500, b"no")


class DeletedMeanwhile(HttpActor):
    """Saves the session, which another request then deletes (a logout elsewhere), then changes it."""

    def handle(self, body: bytes) -> None:
        session = self.scope["session"]
        session.save()
        SessionStore(session.session_key).delete()
        session["late"] = True
        self.send_response(200, b"ok")


class SocketVisits(JsonWebsocketActor):
    """Counts visits in the session from a WebSocket, saving it itself (a ``def`` handler)."""

    def receive_json(self, content: Any) -> None:
        session = self.scope["session"]
        session["visits"] = session.get("visits", 0) + 1
        session.save()
        self.send_json({"visits": session["visits"], "key": session.session_key})


app = SessionMiddlewareStack(
    URLRouter(
        [
            path("visits/", Visits.as_asgi()),
            path("empty/", SavesEmpty.as_asgi()),
            path("fails/", FailsAfterChanging.as_asgi()),
            path("deleted/", DeletedMeanwhile.as_asgi()),
            path("ws/", SocketVisits.as_asgi()),
        ]
    )
)


async def get(route: str, cookie: str | None = None) -> HttpResponse:
    path_, _, query = route.partition("?")
    headers = [("cookie", f"sessionid={cookie}")] if cookie else []
    communicator = HttpCommunicator(app, "GET", path_, headers=headers)
    communicator.scope["query_string"] = query.encode()
    async with communicator:
        return await communicator.get_response()


def set_cookies(response: HttpResponse) -> list[str]:
    return [value.decode("latin-1") for name, value in response.headers if name.lower() == b"set-cookie"]


def session_cookie(response: HttpResponse, name: str = "sessionid") -> Any:
    [header] = set_cookies(response)
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(header)
    return cookie[name]


def stored(key: str) -> dict[str, Any]:
    return dict(SessionStore(key).load())


async def test_a_session_changed_by_an_http_actor_is_saved_and_its_cookie_set() -> None:
    response = await get("/visits/")
    assert response.status == 200
    morsel = session_cookie(response)
    header = set_cookies(response)[0]
    assert json.loads(response.body) == {"visits": 1, "key": None}  # the key is made when the session is saved
    for attribute in ("expires=", "Max-Age=1209600", "HttpOnly", "Path=/", "SameSite=Lax"):
        assert attribute in header, header
    assert "Secure" not in header
    assert await database_sync_to_async(stored)(morsel.value) == {"visits": 1}


async def test_the_cookie_brings_the_session_back_and_the_next_change_is_saved() -> None:
    key = session_cookie(await get("/visits/")).value
    again = await get("/visits/", key)
    assert json.loads(again.body) == {"visits": 2, "key": key}
    assert session_cookie(again).value == key  # refreshed expiry, same key
    assert await database_sync_to_async(stored)(key) == {"visits": 2}


async def test_an_empty_session_saved_by_an_async_handler_gets_a_cookie() -> None:
    response = await get("/empty/")
    key = response.body.decode()
    assert session_cookie(response).value == key
    assert await database_sync_to_async(SessionStore().exists)(key)


async def test_an_unchanged_session_sets_no_cookie() -> None:
    assert set_cookies(await get("/visits/?read")) == []  # no cookie, nothing read but an empty session
    key = session_cookie(await get("/visits/")).value
    read = await get("/visits/?read", key)
    assert json.loads(read.body) == {"visits": 1, "key": key}
    assert set_cookies(read) == []


async def test_an_emptied_session_deletes_its_cookie() -> None:
    key = session_cookie(await get("/visits/")).value
    response = await get("/visits/?flush", key)
    header = set_cookies(response)[0]
    assert header.startswith('sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/')
    assert not await database_sync_to_async(SessionStore().exists)(key)


async def test_a_forged_cookie_gets_a_new_session_key() -> None:
    response = await get("/visits/", "forged0123456789forged0123456789")
    morsel = session_cookie(response)
    assert morsel.value != "forged0123456789forged0123456789"
    assert await database_sync_to_async(stored)(morsel.value) == {"visits": 1}


@pytest.mark.parametrize(
    ("settings", "expected", "absent"),
    [
        ({"SESSION_COOKIE_SAMESITE": "Strict"}, ["SameSite=Strict"], ["SameSite=Lax"]),
        ({"SESSION_COOKIE_SAMESITE": None}, [], ["SameSite"]),
        ({"SESSION_COOKIE_SECURE": True}, ["Secure"], []),
        ({"SESSION_COOKIE_HTTPONLY": False}, [], ["HttpOnly"]),
        ({"SESSION_COOKIE_DOMAIN": "example.com"}, ["Domain=example.com"], []),
        ({"SESSION_COOKIE_PATH": "/chat"}, ["Path=/chat"], ["Path=/;"]),
        ({"SESSION_COOKIE_AGE": 60}, ["Max-Age=60"], []),
        ({"SESSION_EXPIRE_AT_BROWSER_CLOSE": True}, [], ["Max-Age", "expires"]),
        ({"SESSION_COOKIE_NAME": "chat_session"}, ["chat_session="], ["sessionid="]),
    ],
)
async def test_cookie_attributes_follow_the_session_cookie_settings(
    settings: dict[str, Any], expected: list[str], absent: list[str]
) -> None:
    with override_settings(**settings):
        response = await get("/visits/")
    [header] = set_cookies(response)
    for attribute in expected:
        assert attribute in header, header
    for attribute in absent:
        assert attribute not in header, header


async def test_with_save_every_request_an_unchanged_session_is_saved_again() -> None:
    key = session_cookie(await get("/visits/")).value
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        read = await get("/visits/?read", key)
    assert session_cookie(read).value == key


async def test_a_500_saves_nothing_and_sets_no_cookie() -> None:
    response = await get("/fails/")
    assert response.status == 500
    assert set_cookies(response) == []


async def test_requests_answered_out_of_order_keep_their_own_sessions() -> None:
    first = HttpCommunicator(app, "GET", "/visits/")
    second = HttpCommunicator(app, "GET", "/visits/")
    async with first, second:
        second_response = await second.get_response()
        first_response = await first.get_response()
    assert session_cookie(first_response).value != session_cookie(second_response).value


async def test_a_session_deleted_before_the_response_is_answered_400_as_django_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await get("/deleted/")
    assert response.status == 400
    assert response.body.startswith(b"Bad Request: The request's session was deleted before the request completed.")
    assert set_cookies(response) == []
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("GET '/deleted/': The request's session was deleted")
    assert record.exc_info is None


async def test_a_session_saved_from_a_websocket_handler_persists_and_http_sees_it() -> None:
    async with WebsocketCommunicator(app, "/ws/") as ws:
        assert (await ws.connect()).accepted
        await ws.send_json_to({})
        answer = await ws.receive_json_from()
    assert answer["visits"] == 1
    assert await database_sync_to_async(stored)(answer["key"]) == {"visits": 1}
    over_http = await get("/visits/", answer["key"])
    assert json.loads(over_http.body) == {"visits": 2, "key": answer["key"]}
