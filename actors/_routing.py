"""Routing: by protocol type, by URL path, by channel name.

``URLRouter`` matches ``scope["path"]`` without its leading ``/`` (and without
``root_path``), so routes read like Django's: ``path("ws/chat/<room>/", …)``.
A route whose app is another ``URLRouter`` matches a prefix and hands the rest on
in ``scope["path_remaining"]``; captured values accumulate in
``scope["url_route"] = {"args": (...), "kwargs": {...}}``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from ._asgi import denial_messages
from ._errors import RouteNotFound
from ._types import LAYER_KEY, ASGIApp, Receive, Scope, Send

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "Route", "URLRouter", "path", "re_path"]

logger = logging.getLogger("interlock.actors")


@attrs.frozen
class _Converter:
    regex: str
    to_python: Callable[[str], Any]


CONVERTERS: Final[Mapping[str, _Converter]] = {
    "str": _Converter(r"[^/]+", str),
    "int": _Converter(r"[0-9]+", int),
    "slug": _Converter(r"[-a-zA-Z0-9_]+", str),
    "uuid": _Converter(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid.UUID),
    "path": _Converter(r".+", str),
}

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


@attrs.frozen
class Route:
    """One URL pattern and the app it leads to (build it with :func:`path` or :func:`re_path`)."""

    pattern: str
    app: ASGIApp
    regex: re.Pattern[str]
    converters: Mapping[str, Callable[[str], Any]]
    name: str | None = None

    def match(self, path: str) -> tuple[tuple[Any, ...], dict[str, Any], str] | None:
        """Return (args, kwargs, remaining path) if *path* matches, else None."""
        found = self.regex.match(path)
        if found is None:
            return None
        remaining = path[found.end() :]
        if remaining and not isinstance(self.app, URLRouter):
            return None
        kwargs = {
            key: self.converters.get(key, str)(value) for key, value in found.groupdict().items() if value is not None
        }
        args = () if kwargs else tuple(v for v in found.groups() if v is not None)
        return args, kwargs, remaining


def _compile_path(route: str, *, prefix: bool) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
    parts = ["^"]
    converters: dict[str, Callable[[str], Any]] = {}
    position = 0
    for found in _PARAM.finditer(route):
        parts.append(re.escape(route[position : found.start()]))
        kind = found["converter"] or "str"
        name = found["name"]
        if kind not in CONVERTERS:
            msg = f"path({route!r}): unknown converter {kind!r}; use one of {sorted(CONVERTERS)}"
            raise ValueError(msg)
        if not name.isidentifier():
            msg = f"path({route!r}): {name!r} is not a valid parameter name"
            raise ValueError(msg)
        if name in converters:
            msg = f"path({route!r}): parameter {name!r} appears twice"
            raise ValueError(msg)
        converters[name] = CONVERTERS[kind].to_python
        parts.append(f"(?P<{name}>{CONVERTERS[kind].regex})")
        position = found.end()
    parts.append(re.escape(route[position:]))
    if not prefix:
        parts.append(r"\Z")
    return re.compile("".join(parts)), converters


def _check_app(where: str, app: object) -> None:
    """Refuse an actor class (or anything else not callable) where an ASGI app belongs."""
    if isinstance(app, type):
        msg = f"{where} is a class; use {app.__qualname__}.as_asgi()"
        raise TypeError(msg)
    if not callable(app):
        msg = f"{where} is not an ASGI callable: {app!r}"
        raise TypeError(msg)


def path(route: str, app: ASGIApp, *, name: str | None = None) -> Route:
    """Route a Django-style pattern, ``"rooms/<int:room_id>/"``, to *app*.

    Converters: ``str`` (default, no ``/``), ``int``, ``slug``, ``uuid``, ``path``.
    """
    _check_app(f"path({route!r}): the app", app)
    route = route.removeprefix("/")
    regex, converters = _compile_path(route, prefix=isinstance(app, URLRouter))
    return Route(route, app, regex, converters, name)


def re_path(route: str, app: ASGIApp, *, name: str | None = None) -> Route:
    """Route a regular expression, matched from the start of the path.

    A route to an actor or app must match the whole remaining path (``$`` is
    implied); a route to a nested :class:`URLRouter` matches a prefix.
    """
    _check_app(f"re_path({route!r}): the app", app)
    cleaned = route.removeprefix("^").removeprefix("/")
    try:
        regex = re.compile("^" + cleaned)
    except re.error as exc:
        msg = f"re_path({route!r}): invalid regular expression: {exc}"
        raise ValueError(msg) from exc
    return Route(route, app, regex, {}, name)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    """Answer a scope nobody can serve: an HTTP error, or a refused handshake."""
    body = text.encode()
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        for message in denial_messages(scope, status, body):
            await send(message)


class URLRouter:
    """Route by path to the first matching :func:`path`/:func:`re_path` route.

    An unmatched HTTP request gets 404 and an unmatched WebSocket handshake is refused
    (404 where the server allows denial responses), each logged with the path and the
    patterns tried; :meth:`resolve` raises :class:`~interlock.actors.RouteNotFound`.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        for route in self.routes:
            if not isinstance(route, Route):
                msg = f"URLRouter takes routes built with path() or re_path(), not {route!r}"
                raise TypeError(msg)

    def __repr__(self) -> str:
        return f"URLRouter({[route.pattern for route in self.routes]!r})"

    @staticmethod
    def _path_of(scope: Scope) -> str:
        if "path_remaining" in scope:
            return str(scope["path_remaining"])
        full = str(scope.get("path", ""))
        root = str(scope.get("root_path", "")).rstrip("/")
        if root and (full == root or full.startswith(root + "/")):  # whole segments only
            full = full[len(root) :]
        return full.removeprefix("/")

    def resolve(self, scope: Scope) -> tuple[Route, Scope]:
        """Return the matching route and the scope to pass to its app."""
        remaining = self._path_of(scope)
        for route in self.routes:
            match = route.match(remaining)
            if match is None:
                continue
            args, kwargs, rest = match
            outer = scope.get("url_route") or {"args": (), "kwargs": {}}
            url_route = {
                "args": tuple(outer.get("args", ())) + args,
                "kwargs": {**outer.get("kwargs", {}), **kwargs},
            }
            inner = {**scope, "url_route": url_route}
            if isinstance(route.app, URLRouter):
                inner["path_remaining"] = rest
            else:
                inner.pop("path_remaining", None)
            return route, inner
        raise RouteNotFound(str(scope.get("path", remaining)), [r.pattern for r in self.routes])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* with the first matching route's app."""
        try:
            route, inner = self.resolve(scope)
        except RouteNotFound as exc:
            if scope["type"] not in ("http", "websocket"):
                raise
            logger.warning("%s", exc)
            await _refuse(scope, receive, send, 404, "Not Found")
            return
        await route.app(inner, receive, send)


class ProtocolTypeRouter:
    """Route by ``scope["type"]`` and make one channel layer available to every actor.

    ``ProtocolTypeRouter({"websocket": ..., "http": ...}, channel_layer=layer)``. Without
    a ``"lifespan"`` entry it answers lifespan events itself: startup starts the layer,
    shutdown closes it. Layers also start lazily, so servers and host frameworks that
    never send lifespan events work too.
    """

    def __init__(self, application_mapping: Mapping[str, ASGIApp], *, channel_layer: Any = None) -> None:
        self.application_mapping = dict(application_mapping)
        self.channel_layer = channel_layer
        for kind, app in self.application_mapping.items():
            _check_app(f"ProtocolTypeRouter: the app for {kind!r}", app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* with the app registered for its type."""
        if self.channel_layer is not None:
            scope = {**scope, LAYER_KEY: self.channel_layer}
        kind = scope["type"]
        app = self.application_mapping.get(kind)
        if app is not None:
            await app(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            msg = (
                f"ProtocolTypeRouter has no application for scope type {kind!r}; "
                f"it routes {sorted(self.application_mapping)!r}"
            )
            if kind not in ("http", "websocket"):
                raise ValueError(msg)
            logger.warning("%s (path %r): answered 404", msg, scope.get("path"))
            await _refuse(scope, receive, send, 404, "Not Found")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        layer = self.channel_layer
        steps = {"lifespan.startup": ("startup", "start"), "lifespan.shutdown": ("shutdown", "close")}
        while True:
            step = steps.get((await receive())["type"])
            if step is None:
                continue
            phase, method = step
            try:
                action = getattr(layer, method, None) if layer is not None else None
                if action is not None:
                    await action()
            except Exception as exc:
                logger.exception("channel layer failed to %s", method)
                message = f"channel layer failed to {method}: {exc}"
                await send({"type": f"lifespan.{phase}.failed", "message": message})
                return
            await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                return


class ChannelNameRouter:
    """Route ``channel`` scopes (background workers) by channel name."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)
        for name, app in self.application_mapping.items():
            _check_app(f"ChannelNameRouter: the app for channel {name!r}", app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a worker scope with the app registered for its channel."""
        if scope["type"] != "channel":
            msg = f"ChannelNameRouter serves 'channel' scopes, not {scope['type']!r}"
            raise ValueError(msg)
        name = scope.get("channel")
        app = self.application_mapping.get(name)  # type: ignore[arg-type]
        if app is None:
            msg = (
                f"ChannelNameRouter has no application for channel {name!r}; "
                f"it routes {sorted(self.application_mapping)!r}"
            )
            raise ValueError(msg)
        await app(scope, receive, send)
