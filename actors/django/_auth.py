"""Django's users in the scope: ``AuthMiddleware``, ``login``, ``logout``, ``get_user``.

Theory of operation
-------------------
:class:`AuthMiddleware` puts a lazy ``scope["user"]`` in the scope and resolves it in a
worker thread before the inner app runs (the ``db`` session engine and the user lookup
query the database), so ``self.scope["user"].is_authenticated`` is a plain attribute read
in any handler, ``def`` or ``async def``. The session is checked as Django's
``get_user`` checks it: a forged or expired cookie, a user who changed their password,
a backend no longer configured all give an ``AnonymousUser``, never an error.

If the database fails (a missing session table, the server down) the connection is
refused as a server error (HTTP 500; a WebSocket handshake gets 500 or 1011) with one
ERROR line naming the database, and only that connection is.

:func:`login`, :func:`logout` and :func:`get_user` work in ``def`` handlers (they run
at once, in the handler's worker thread) and in ``async def`` ones (``await`` them: they
run in a worker thread). Like Channels', they change the session without saving it:
``self.scope["session"].save()`` in a ``def`` handler, or
``await database_sync_to_async(self.scope["session"].save)()``.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import anyio
from interlock.actors._types import ASGIApp, Receive, Scope, Send

from ._db import database_sync_to_async, describe_database_error
from ._refuse import refuse_with_server_error
from ._sessions import CookieMiddleware, SessionMiddleware

__all__ = ["AuthMiddleware", "AuthMiddlewareStack", "get_user", "login", "logout"]

logger = logging.getLogger("interlock.actors.django")
T = TypeVar("T")


def _on_event_loop() -> bool:
    """Whether the caller is async code on the event loop (else: a sync handler's thread, a script)."""
    try:
        anyio.get_current_task()
    except anyio.NoEventLoopError:
        return False
    return True


class _Done:
    """What :func:`login` and :func:`logout` return in sync code: the work is done; awaiting is harmless."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return _nothing().__await__()


async def _nothing() -> None:
    return None


def _now_or_awaitable(fn: Callable[[], None]) -> Awaitable[None]:
    if _on_event_loop():
        return database_sync_to_async(fn)()
    fn()
    return _Done()


def _require_session(scope: Scope, what: str) -> Any:
    session = scope.get("session")
    if session is None:
        msg = (
            f"{what} found no scope['session']: wrap the app in AuthMiddlewareStack(...) "
            "(or SessionMiddlewareStack(...)), from interlock.actors.django"
        )
        raise ValueError(msg)
    return session


def _user_of(scope: Scope) -> Any:
    """The user whose session *scope* carries (sync: it may query the database)."""
    from django.contrib import auth  # noqa: PLC0415 - Django is optional
    from django.core.exceptions import ValidationError  # noqa: PLC0415

    session = _require_session(scope, "get_user()")
    try:
        return auth.get_user(types.SimpleNamespace(session=session))  # type: ignore[arg-type]  # it reads .session only
    except ValidationError:  # a user id the user model's primary key refuses: nobody
        from django.contrib.auth.models import AnonymousUser  # noqa: PLC0415

        return AnonymousUser()


def get_user(scope: Scope) -> Any:
    """The user logged in to *scope*'s session, or an ``AnonymousUser``.

    In a ``def`` handler it returns the user; in ``async def`` code ``await`` it (the
    lookup runs in a worker thread).
    """
    if _on_event_loop():
        return database_sync_to_async(_user_of)(scope)
    return _user_of(scope)


def login(scope: Scope, user: Any = None, backend: str | None = None) -> Awaitable[None]:
    """Log *user* (default: ``scope["user"]``) in to *scope*'s session, as ``django.contrib.auth.login``.

    The session key is rotated when another user (or nobody) was logged in,
    ``user_logged_in`` is sent (with ``request=None``) and ``scope["user"]`` is set.
    The session is not saved: save it, as in Channels. ``def`` code: call it;
    ``async def`` code: ``await`` it.
    """
    return _now_or_awaitable(lambda: _login(scope, user, backend))


def _login(scope: Scope, user: Any, backend: str | None) -> None:
    from django.conf import settings  # noqa: PLC0415
    from django.contrib.auth import (  # noqa: PLC0415
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        load_backend,
        user_logged_in,
    )
    from django.utils.crypto import constant_time_compare  # noqa: PLC0415

    session = _require_session(scope, "login()")
    if user is None:
        user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        msg = f"login() needs a user: pass one, or put an authenticated user in scope['user'] (got {user!r})"
        raise ValueError(msg)
    session_hash = user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    if SESSION_KEY in session:
        pk = user._meta.pk
        if pk.to_python(session[SESSION_KEY]) != user.pk or (
            session_hash and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_hash)
        ):
            session.flush()  # another user's session: start a clean one
    else:
        session.cycle_key()  # the key an anonymous visitor had must not become a logged-in one
    if backend is None:
        backend = getattr(user, "backend", None)
    if backend is None:
        configured = list(settings.AUTHENTICATION_BACKENDS)
        if len(configured) != 1:
            msg = (
                f"login(): {len(configured)} authentication backends are configured, so pass backend= "
                "(a dotted path from AUTHENTICATION_BACKENDS) or set user.backend"
            )
            raise ValueError(msg)
        backend = configured[0]
    if not isinstance(backend, str):
        msg = f"login(backend=...) takes the backend's dotted import path, not {backend!r}"
        raise TypeError(msg)
    load_backend(backend)  # a typo fails here, not at the next connection
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = backend
    session[HASH_SESSION_KEY] = session_hash
    scope["user"] = user
    user_logged_in.send(sender=user.__class__, request=None, user=user)


def logout(scope: Scope) -> Awaitable[None]:
    """Log *scope*'s user out: ``user_logged_out`` (if someone was in), the session flushed.

    ``scope["user"]``, if present, becomes an ``AnonymousUser``. ``def`` code: call it;
    ``async def`` code: ``await`` it.
    """
    return _now_or_awaitable(lambda: _logout(scope))


def _logout(scope: Scope) -> None:
    from django.contrib.auth import user_logged_out  # noqa: PLC0415
    from django.contrib.auth.models import AnonymousUser  # noqa: PLC0415

    session = _require_session(scope, "logout()")
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = AnonymousUser()


def _lazy_user() -> Any:
    """A ``LazyObject`` for ``scope["user"]``: a proxy the middleware fills before the app runs."""
    from django.utils.functional import LazyObject  # noqa: PLC0415

    class UserLazyObject(LazyObject):  # type: ignore[type-arg]  # generic in the stubs only
        """``scope["user"]``: the user, resolved off the event loop by ``AuthMiddleware``."""

        def _setup(self) -> None:
            msg = (
                "scope['user'] was read before AuthMiddleware resolved it: "
                "read it in a handler, not in middleware above"
            )
            raise ValueError(msg)

    return UserLazyObject()


class AuthMiddleware:
    """Put the session's user in ``scope["user"]`` (needs ``scope["session"]``: see :func:`AuthMiddlewareStack`).

    A user already in the scope (from middleware above) is left alone.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Resolve the user in a worker thread, then serve *scope* with the inner app."""
        if scope["type"] not in ("http", "websocket") or "user" in scope:
            return await self.inner(scope, receive, send)
        _require_session(scope, "AuthMiddleware")
        from django.db import Error as DatabaseError  # noqa: PLC0415 - Django is optional

        scope = {**scope, "user": _lazy_user()}
        try:
            scope["user"]._wrapped = await database_sync_to_async(_user_of)(scope)
        except DatabaseError as exc:
            where = f"{scope['type']} {scope.get('path', '')!r}"
            logger.error("%s; refused the connection", describe_database_error(exc, f"loading the user of {where}"))
            await refuse_with_server_error(scope, receive, send, "server error: the database is unavailable")
            return None
        return await self.inner(scope, receive, send)


def AuthMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # noqa: N802 - Channels' name, a class in spirit
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``: cookies, session and user in the scope."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
