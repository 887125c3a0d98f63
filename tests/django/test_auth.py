"""``AuthMiddleware``, ``login``, ``logout``, ``get_user``: the behaviours of Channels' ``tests/security/test_auth.py``.

Against interlock's API: the functions take a scope, work from ``def`` code (at once) and
``async def`` code (awaited), and the middleware resolves ``scope["user"]`` off the loop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, user_logged_in, user_logged_out
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.dispatch import Signal
from django.test import override_settings
from interlock.actors import JsonWebsocketActor, URLRouter, path
from interlock.actors.django import AuthMiddlewareStack, database_sync_to_async, get_user, login, logout
from interlock.actors.testing import WebsocketCommunicator

# -- fixtures ---------------------------------------------------------------------------------------------


def make_user(name: str = "bob", password: str = "secret-pw") -> User:
    return User.objects.create_user(f"{name}-{uuid.uuid4().hex[:8]}", password=password)


def new_session() -> SessionStore:
    session = SessionStore()
    session.create()
    return session


class Caught:
    """Records what a Django signal sent, while in a ``with`` block."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.calls: list[dict[str, Any]] = []

    def _receiver(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    def __enter__(self) -> Caught:
        self.signal.connect(self._receiver)
        return self

    def __exit__(self, *exc: object) -> None:
        self.signal.disconnect(self._receiver)


def assert_logged_in(scope: dict[str, Any], user: User) -> None:
    session = scope["session"]
    assert scope["user"] == user
    assert SESSION_KEY in session
    assert BACKEND_SESSION_KEY in session
    assert HASH_SESSION_KEY in session
    assert get_user(scope) == user


# -- the functions, from sync code (no event loop: they run at once) ---------------------------------------


def test_login_needs_a_session_in_the_scope() -> None:
    with pytest.raises(ValueError, match=r"login\(\) found no scope\['session'\]: wrap the app in AuthMiddlewareStack"):
        login({}, make_user())


def test_login_needs_a_user() -> None:
    with pytest.raises(ValueError, match=r"login\(\) needs a user: pass one, or put an authenticated user"):
        login({"session": new_session()})


def test_login_with_the_user_as_argument() -> None:
    user = make_user()
    scope: dict[str, Any] = {"session": new_session()}
    assert isinstance(get_user(scope), AnonymousUser)
    with Caught(user_logged_in) as caught:
        login(scope, user)
    assert [call["user"] for call in caught.calls] == [user]
    assert caught.calls[0]["request"] is None
    assert_logged_in(scope, user)


def test_login_takes_the_user_on_the_scope() -> None:
    user = make_user()
    scope: dict[str, Any] = {"session": new_session(), "user": user}
    assert isinstance(get_user(scope), AnonymousUser)
    login(scope)
    assert_logged_in(scope, user)


def test_logging_in_another_user_starts_a_new_session() -> None:
    bob, bill = make_user("bob"), make_user("bill")
    scope: dict[str, Any] = {"session": new_session()}
    login(scope, bob)
    scope["session"].save()
    first_key = scope["session"].session_key
    login(scope, bill)
    assert_logged_in(scope, bill)
    assert scope["session"].session_key != first_key  # flushed: bob's key is gone
    assert not SessionStore(first_key).exists(first_key)


def test_login_rotates_an_anonymous_session_key() -> None:
    scope: dict[str, Any] = {"session": new_session()}
    anonymous_key = scope["session"].session_key
    login(scope, make_user())
    scope["session"].save()
    assert scope["session"].session_key != anonymous_key  # session fixation


def test_login_with_several_backends_needs_one_named() -> None:
    backends = ["django.contrib.auth.backends.ModelBackend", "django.contrib.auth.backends.AllowAllUsersModelBackend"]
    user = User.objects.get(pk=make_user().pk)  # fresh from the database: no .backend attribute
    with override_settings(AUTHENTICATION_BACKENDS=backends):
        with pytest.raises(ValueError, match="2 authentication backends are configured, so pass backend="):
            login({"session": new_session()}, user)
        scope: dict[str, Any] = {"session": new_session()}
        login(scope, user, backend=backends[1])
        assert scope["session"][BACKEND_SESSION_KEY] == backends[1]


def test_logout() -> None:
    user = make_user()
    scope: dict[str, Any] = {"session": new_session()}
    login(scope, user)
    with Caught(user_logged_out) as caught:
        logout(scope)
    assert [call["user"] for call in caught.calls] == [user]
    assert isinstance(scope["user"], AnonymousUser)
    assert SESSION_KEY not in scope["session"]
    assert isinstance(get_user(scope), AnonymousUser)


def test_logout_when_nobody_is_logged_in_sends_nothing() -> None:
    scope: dict[str, Any] = {"session": new_session()}
    with Caught(user_logged_out) as caught:
        logout(scope)
    assert caught.calls == []
    assert "user" not in scope
    assert isinstance(get_user(scope), AnonymousUser)


def test_a_changed_password_logs_the_session_out() -> None:
    user = make_user()
    scope: dict[str, Any] = {"session": new_session()}
    login(scope, user)
    scope["session"].save()
    user.set_password("another-pw")
    user.save()
    assert isinstance(get_user({"session": SessionStore(scope["session"].session_key)}), AnonymousUser)


# -- the functions, awaited from async code (they run in a worker thread) ----------------------------------


async def test_login_get_user_logout_awaited() -> None:
    user = await database_sync_to_async(make_user)()
    scope: dict[str, Any] = {"session": await database_sync_to_async(new_session)()}
    assert isinstance(await get_user(scope), AnonymousUser)
    await login(scope, user)
    assert await get_user(scope) == user
    await database_sync_to_async(scope["session"].save)()
    await logout(scope)
    assert isinstance(await get_user(scope), AnonymousUser)


# -- the middleware, in front of actors ---------------------------------------------------------------------


class WhoAmI(JsonWebsocketActor):
    """Says who the scope's user is; ``{"login": username}`` logs in (async), ``{"logout": 1}`` out (sync)."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json({"user": self.scope["user"].get_username(), "auth": self.scope["user"].is_authenticated})

    async def receive_json(self, content: Any) -> None:
        if "login" in content:
            user = await database_sync_to_async(User.objects.get)(username=content["login"])
            await login(self.scope, user)
            await database_sync_to_async(self.scope["session"].save)()
            await self.send_json({"session": self.scope["session"].session_key})
        elif "visits" in content:
            await self.send_json({"visits": await database_sync_to_async(self.count_visit)()})
        else:
            await database_sync_to_async(self.sync_logout)()
            await self.send_json({"user": self.scope["user"].get_username()})

    def count_visit(self) -> int:
        session = self.scope["session"]
        session["visits"] = session.get("visits", 0) + 1
        session.save()
        return int(session["visits"])

    def sync_logout(self) -> None:
        logout(self.scope)  # sync code: runs at once


class SyncWhoAmI(WhoAmI):
    """The same, from ``def`` handlers: ``login`` and ``get_user`` return at once."""

    def receive_json(self, content: Any) -> None:  # type: ignore[override]
        if "login" in content:
            login(self.scope, User.objects.get(username=content["login"]))
            self.scope["session"].save()
            self.send_json({"session": self.scope["session"].session_key, "user": get_user(self.scope).get_username()})
        else:
            logout(self.scope)
            self.scope["session"].save()
            self.send_json({"user": self.scope["user"].get_username()})


app = AuthMiddlewareStack(URLRouter([path("async/", WhoAmI.as_asgi()), path("sync/", SyncWhoAmI.as_asgi())]))


def cookie(key: str) -> list[tuple[str, str]]:
    return [("cookie", f"sessionid={key}; other=1")]


@pytest.mark.parametrize("route", ["async/", "sync/"])
async def test_a_session_logged_in_over_a_websocket_is_seen_by_the_next_one(route: str) -> None:
    user = await database_sync_to_async(make_user)()
    async with WebsocketCommunicator(app, f"/{route}") as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"user": "", "auth": False}
        await ws.send_json_to({"login": user.username})
        answer = await ws.receive_json_from()
        key = answer["session"]
    async with WebsocketCommunicator(app, f"/{route}", headers=cookie(key)) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"user": user.username, "auth": True}
        await ws.send_json_to({"logout": 1})
        assert await ws.receive_json_from() == {"user": ""}
    async with WebsocketCommunicator(app, f"/{route}", headers=cookie(key)) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"user": "", "auth": False}  # logged out for good


async def test_the_session_is_saved_from_a_handler() -> None:
    async with WebsocketCommunicator(app, "/async/") as ws:
        assert (await ws.connect()).accepted
        await ws.receive_json_from()
        await ws.send_json_to({"visits": 1})
        assert await ws.receive_json_from() == {"visits": 1}
        await ws.send_json_to({"visits": 1})
        assert await ws.receive_json_from() == {"visits": 2}


@pytest.mark.parametrize(
    "value",
    [
        "forged0123456789forged0123456789",  # well-formed, unknown
        "x",  # too short to be a key
        "../../etc/passwd",
        "'; DROP TABLE django_session; --",
        "é" * 40,
    ],
)
async def test_a_forged_session_cookie_is_an_anonymous_user(value: str) -> None:
    headers = [("cookie", f"sessionid={value}".encode().decode("latin-1"))]
    async with WebsocketCommunicator(app, "/async/", headers=headers) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"user": "", "auth": False}


async def test_an_expired_session_is_an_anonymous_user() -> None:
    def expired_login() -> str:
        scope: dict[str, Any] = {"session": new_session()}
        login(scope, make_user())
        scope["session"].set_expiry(-10)  # expired ten seconds ago
        scope["session"].save()
        return str(scope["session"].session_key)

    key = await database_sync_to_async(expired_login)()
    async with WebsocketCommunicator(app, "/async/", headers=cookie(key)) as ws:
        assert (await ws.connect()).accepted
        assert await ws.receive_json_from() == {"user": "", "auth": False}


async def test_auth_middleware_needs_the_session_middleware() -> None:
    from interlock.actors.django import AuthMiddleware  # noqa: PLC0415

    async with WebsocketCommunicator(AuthMiddleware(WhoAmI.as_asgi()), "/") as ws:
        with pytest.raises(Exception, match=r"AuthMiddleware found no scope\['session'\]"):
            await ws.connect()


@pytest.fixture
def session_table_missing() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_session RENAME TO django_session_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE django_session_away RENAME TO django_session")
        connection.close()


@pytest.mark.usefixtures("session_table_missing")
@pytest.mark.parametrize(("denial", "expected"), [(True, "status 500"), (False, "close 1011")])
async def test_a_missing_session_table_refuses_that_connection_as_a_server_error(
    caplog: pytest.LogCaptureFixture, denial: bool, expected: str
) -> None:
    caplog.set_level(logging.ERROR, "interlock.actors.django")
    async with WebsocketCommunicator(app, "/async/", headers=cookie("a" * 32), denial_extension=denial) as ws:
        handshake = await ws.connect()
        if denial:
            assert (handshake.accepted, handshake.status, handshake.body) == (False, 500, b"Internal Server Error")
        else:
            assert handshake.accepted
            close = await ws.receive_close()
            assert close.code == 1011, expected
            assert close.reason == "server error: the database is unavailable"
    [record] = caplog.records
    message = record.getMessage()
    assert "loading the user of websocket '/async/' failed on database 'default'" in message
    assert "no such table: django_session" in message
    assert "run `manage.py migrate`" in message
    assert record.exc_info is None  # one line names it: no traceback
