"""Cookies and Django sessions in the scope, for actors and any ASGI app.

* :class:`CookieMiddleware` parses the ``Cookie`` header into ``scope["cookies"]`` (a
  ``dict``, as ``request.COOKIES``).
* :class:`SessionMiddleware` puts ``scope["session"]``: a ``SessionStore`` of the
  project's ``SESSION_ENGINE`` for the session cookie's key. It is loaded lazily, on
  first access, by Django itself: read it from a ``def`` handler, or from async code
  through :func:`~interlock.actors.django.database_sync_to_async` (the ``db`` engine
  queries the database). A forged, expired or deleted key loads an empty session.
* On an HTTP scope the session is saved when the response starts, if it was modified
  (or ``SESSION_SAVE_EVERY_REQUEST``), and the cookie is set or deleted as Django's own
  ``SessionMiddleware`` does. A session deleted meanwhile (the user logged out in another
  request) is answered 400, as Django answers it; a database failure 500. A WebSocket
  cannot set cookies: save the session yourself (``self.scope["session"].save()`` in a
  ``def`` handler), as in Channels.
"""

from __future__ import annotations

import logging
import time
from importlib import import_module
from typing import Any

from interlock.actors._types import ASGIApp, Message, Receive, Scope, Send

from ._db import database_sync_to_async, describe_database_error
from ._refuse import refuse_with_server_error

__all__ = ["CookieMiddleware", "SessionMiddleware", "SessionMiddlewareStack"]

logger = logging.getLogger("interlock.actors.django")


def parse_cookies(scope: Scope) -> dict[str, str]:
    """The cookies of *scope*'s ``Cookie`` headers, as Django's ``request.COOKIES``."""
    from django.http import parse_cookie  # noqa: PLC0415 - Django is optional

    cookies: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if name == b"cookie":
            cookies.update(parse_cookie(value.decode("latin-1")))
    return cookies


class CookieMiddleware:
    """Put the request's cookies in ``scope["cookies"]`` (HTTP and WebSocket scopes)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* with the inner app, cookies parsed; other scope types pass through."""
        if scope["type"] not in ("http", "websocket"):
            return await self.inner(scope, receive, send)
        return await self.inner({**scope, "cookies": parse_cookies(scope)}, receive, send)


class SessionMiddleware:
    """Put the Django session of the request's session cookie in ``scope["session"]``.

    Needs ``scope["cookies"]``: put it inside :class:`CookieMiddleware`, or use
    :func:`SessionMiddlewareStack`. A session already in the scope (another session
    middleware above) is left alone.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* with the inner app, the session in the scope (HTTP: saved on response)."""
        if scope["type"] not in ("http", "websocket") or "session" in scope:
            return await self.inner(scope, receive, send)
        if "cookies" not in scope:
            msg = (
                "SessionMiddleware found no scope['cookies']: put it inside CookieMiddleware, "
                "or use SessionMiddlewareStack(app) / AuthMiddlewareStack(app)"
            )
            raise ValueError(msg)
        from django.conf import settings  # noqa: PLC0415 - Django is optional

        store = import_module(settings.SESSION_ENGINE).SessionStore
        session = store(scope["cookies"].get(settings.SESSION_COOKIE_NAME))
        inner_scope = {**scope, "session": session}
        if scope["type"] == "websocket":
            return await self.inner(inner_scope, receive, send)
        saver = _SessionSaver(inner_scope, send)
        return await self.inner(inner_scope, receive, saver.send)


class _SessionSaver:
    """Wraps an HTTP scope's ``send``: saves the session and sets its cookie on the response's start."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.real_send = send
        self.failed = False

    async def send(self, message: Message) -> None:
        if self.failed:  # the session could not be saved: the 500 went out instead
            return
        if message["type"] == "http.response.start":
            try:
                message = await database_sync_to_async(self._saved)(dict(message))
            except Exception as exc:
                from django.contrib.sessions.exceptions import SessionInterrupted  # noqa: PLC0415
                from django.db import Error as DatabaseError  # noqa: PLC0415

                self.failed = True
                if isinstance(exc, SessionInterrupted):  # the client's doing (a logout elsewhere): 400, as Django
                    logger.warning("%s %r: %s; answered 400", self.scope.get("method"), self.scope.get("path"), exc)
                    await _bad_request(self.real_send, str(exc))
                    return
                if not isinstance(exc, DatabaseError):
                    raise
                logger.error("%s", describe_database_error(exc, f"saving the session of {self.scope.get('path')!r}"))
                await refuse_with_server_error(self.scope, _no_receive, self.real_send, "session not saved")
                return
        await self.real_send(message)

    def _saved(self, message: dict[str, Any]) -> dict[str, Any]:
        """Save the session if the response calls for it; return *message* with its cookie header."""
        from django.conf import settings  # noqa: PLC0415
        from django.contrib.sessions.backends.base import UpdateError  # noqa: PLC0415
        from django.contrib.sessions.exceptions import SessionInterrupted  # noqa: PLC0415
        from django.http import HttpResponse  # noqa: PLC0415
        from django.utils.http import http_date  # noqa: PLC0415

        session = self.scope["session"]
        name = settings.SESSION_COOKIE_NAME
        if not session.accessed and not settings.SESSION_SAVE_EVERY_REQUEST:
            return message
        cookies = HttpResponse()  # Django's own cookie rules (SameSite, Secure, expiry)
        if name in self.scope["cookies"] and session.is_empty():
            cookies.delete_cookie(
                name,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        elif (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty():
            if message.get("status", 200) == 500:
                return message
            try:
                session.save()
            except UpdateError:
                msg = (
                    "The request's session was deleted before the request completed. "
                    "The user may have logged out in a concurrent request, for example."
                )
                raise SessionInterrupted(msg) from None
            if session.get_expire_at_browser_close():
                max_age, expires = None, None
            else:
                max_age = session.get_expiry_age()
                expires = http_date(time.time() + max_age)
            cookies.set_cookie(
                name,
                session.session_key,
                max_age=max_age,
                expires=expires,
                domain=settings.SESSION_COOKIE_DOMAIN,
                path=settings.SESSION_COOKIE_PATH,
                secure=bool(settings.SESSION_COOKIE_SECURE),
                httponly=bool(settings.SESSION_COOKIE_HTTPONLY),
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        else:
            return message
        headers = list(message.get("headers") or [])
        headers += [
            (b"set-cookie", morsel.output(header="").strip().encode("latin-1")) for morsel in cookies.cookies.values()
        ]
        message["headers"] = headers
        return message


async def _bad_request(send: Send, reason: str) -> None:
    body = f"Bad Request: {reason}".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _no_receive() -> Message:  # an HTTP refusal reads nothing
    return {"type": "http.disconnect"}


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # noqa: N802 - Channels' name, a class in spirit
    """``CookieMiddleware(SessionMiddleware(inner))``: cookies and the session in the scope."""
    return CookieMiddleware(SessionMiddleware(inner))
