"""Starlette's and FastAPI's own session and authentication middleware, read by a mounted actor.

Both apps (``starlette_app``, ``fastapi_app``) have the same shape:

* ``SessionMiddleware`` (a signed cookie) outside ``AuthenticationMiddleware`` whose
  backend, :class:`SessionAuth`, turns ``session["username"]`` into a ``SimpleUser``;
* ``POST /login`` (JSON ``{"name": ...}``) stores the name in the session, ``POST /logout``
  clears it;
* ``/rt/ws/me/``: :class:`WhoAmI`, in an interlock router mounted at ``/rt`` behind a
  ``SameOriginValidator``. It reads ``scope["user"]``, ``scope["auth"]`` and
  ``scope["session"]`` as the middleware left them, and refuses (403) a user who is not
  logged in.
"""

from __future__ import annotations

from fastapi import FastAPI
from interlock.actors import JsonWebsocketActor, ProtocolTypeRouter, URLRouter, path
from interlock.actors.security import SameOriginValidator
from interlock.layers import InMemoryChannelLayer
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

SECRET = "interlock-tests-only"


class SessionAuth(AuthenticationBackend):
    """The user whose name the session holds; anonymous without one."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        name = conn.session.get("username")
        if name is None:
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(name)


class WhoAmI(JsonWebsocketActor):
    async def connect(self) -> None:
        user: BaseUser = self.scope["user"]
        if not user.is_authenticated:
            await self.deny(403, "log in first")
            return
        await self.accept()
        await self.send_json(
            {
                "user": user.display_name,
                "scopes": list(self.scope["auth"].scopes),
                "session": dict(self.scope["session"]),
            }
        )


async def login(request: Request) -> PlainTextResponse:
    body = await request.json()
    request.session["username"] = str(body["name"])
    request.session["theme"] = "dark"
    return PlainTextResponse("logged in")


async def logout(request: Request) -> PlainTextResponse:
    request.session.clear()
    return PlainTextResponse("logged out")


def actors() -> ProtocolTypeRouter:
    return ProtocolTypeRouter(
        {"websocket": SameOriginValidator(URLRouter([path("ws/me/", WhoAmI.as_asgi())]))},
        channel_layer=InMemoryChannelLayer(),
    )


MIDDLEWARE = [
    Middleware(SessionMiddleware, secret_key=SECRET),
    Middleware(AuthenticationMiddleware, backend=SessionAuth()),
]

starlette_app = Starlette(
    routes=[
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/rt", app=actors()),
    ],
    middleware=MIDDLEWARE,
)

fastapi_app = FastAPI()
fastapi_app.add_middleware(AuthenticationMiddleware, backend=SessionAuth())  # inner: added first
fastapi_app.add_middleware(SessionMiddleware, secret_key=SECRET)  # outer: added last
fastapi_app.add_route("/login", login, methods=["POST"])
fastapi_app.add_route("/logout", logout, methods=["POST"])
fastapi_app.mount("/rt", actors())
