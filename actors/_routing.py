"""Routing: by protocol type, by URL path, by channel name.

``URLRouter`` matches ``scope["path"]`` without its leading ``/`` (and without
``root_path``), so routes read like Django's: ``path("ws/chat/<room>/", …)``.
A route whose app is another ``URLRouter`` matches a prefix and hands the rest on
in ``scope["path_remaining"]``; captured values accumulate in
``scope["url_route"] = {"args": (...), "kwargs": {...}}``.

Resolution is one recursive walk, in route order: a nested router that matches
nothing is not a dead end, the outer router goes on to its next route (Channels'
``path_remaining`` behaviour), and only when the whole tree fails is the path
unmatched.  :class:`~interlock.actors.RouteNotFound` then lists every pattern, nested
ones joined to their prefix (``"prefix/a/"``).
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
from ._lifespan import serve_lifespan
from ._types import LAYER_KEY, ASGIApp, Receive, Scope, Send

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "Route", "URLRouter", "path", "re_path"]

logger = logging.getLogger("interlock.actors.routing")


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
    """Answer a scope nobody can serve: an HTTP error, or a refused handshake.

    A handshake is refused with an HTTP response of *status* where the server offers the
    denial extension and takes it without logging an error, else with a close before
    accept (which servers answer with 403).
    """
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
        for message in denial_messages(scope, status, body, send=send):
            await send(message)


def _not_a_route(route: object) -> TypeError:
    """The error for something in a URLRouter's list that is not a :class:`Route`."""
    kind = type(route)
    if kind.__module__.startswith("django.urls"):
        # Django's path()/re_path() give URLPattern, include() gives URLResolver; their
        # .pattern is a RoutePattern (path) or a RegexPattern (re_path).
        pattern = str(getattr(route, "pattern", ""))
        ours = "re_path" if type(getattr(route, "pattern", None)).__name__ == "RegexPattern" else "path"
        if kind.__name__ == "URLResolver":
            msg = (
                f"URLRouter cannot take Django's include() ({kind.__name__} {pattern!r}); "
                f"nest a router instead: interlock.actors.{ours}({pattern!r}, URLRouter([...]))"
            )
        else:
            msg = (
                f"URLRouter takes routes built with interlock.actors.path() or re_path(), not Django's "
                f"{kind.__name__} {pattern!r} (from django.urls.{ours}()); "
                f"use interlock.actors.{ours}({pattern!r}, app) instead"
            )
        return TypeError(msg)
    return TypeError(f"URLRouter takes routes built with path() or re_path(), not {route!r}")


def _joined(prefix: str, pattern: str) -> str:
    """A nested pattern written after its prefix: ``"prefix/" + "^a/$"`` reads ``"prefix/a/$"``."""
    return prefix + pattern.removeprefix("^").removeprefix("/")


class URLRouter:
    """Route by path to the first matching :func:`path`/:func:`re_path` route.

    Nested routers are resolved in the same walk: one that matches nothing lets the
    next route of the outer router try. An unmatched HTTP request gets 404 and an
    unmatched WebSocket handshake is refused (404 where the server can send that
    without logging an error, 403 otherwise), each logged as a warning with the path and
    the patterns tried; :meth:`resolve` raises :class:`~interlock.actors.RouteNotFound`.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        for route in self.routes:
            if not isinstance(route, Route):
                raise _not_a_route(route)

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
        """Return the route whose app serves *scope*, and the scope to pass to that app.

        Nested routers are descended into, so the route returned always leads to an app,
        never to a ``URLRouter``. Raises :class:`~interlock.actors.RouteNotFound`, naming
        ``scope["path"]`` and every pattern, when nothing in the tree matches.
        """
        found = self._find(scope)
        if found is None:
            raise RouteNotFound(str(scope.get("path", self._path_of(scope))), self._patterns())
        return found

    def _find(self, scope: Scope) -> tuple[Route, Scope] | None:
        """The first route, depth first, that matches *scope*'s remaining path, or None."""
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
            if not isinstance(route.app, URLRouter):
                inner.pop("path_remaining", None)
                return route, inner
            inner["path_remaining"] = rest
            found = route.app._find(inner)
            if found is not None:
                return found
            # the nested router matched nothing: the next route of this one may
        return None

    def _patterns(self) -> list[str]:
        """Every pattern of the tree, nested ones joined to their prefix (an empty router as its prefix)."""
        patterns: list[str] = []
        for route in self.routes:
            nested = route.app._patterns() if isinstance(route.app, URLRouter) else []
            patterns.extend([_joined(route.pattern, inner) for inner in nested] or [route.pattern])
        return patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve *scope* with the app of the first matching route; return what that app returns."""
        try:
            route, inner = self.resolve(scope)
        except RouteNotFound as exc:
            if scope["type"] not in ("http", "websocket"):
                raise
            logger.warning("%s", exc)
            await _refuse(scope, receive, send, 404, "Not Found")
            return None
        return await route.app(inner, receive, send)


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
        """Serve *scope* with the app registered for its type; return what that app returns."""
        if self.channel_layer is not None:
            scope = {**scope, LAYER_KEY: self.channel_layer}
        kind = scope["type"]
        app = self.application_mapping.get(kind)
        if app is not None:
            return await app(scope, receive, send)
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return None
        msg = (
            f"ProtocolTypeRouter has no application for scope type {kind!r}; "
            f"it routes {sorted(self.application_mapping)!r}"
        )
        if kind not in ("http", "websocket"):
            raise ValueError(msg)
        logger.warning("%s (path %r): answered 404", msg, scope.get("path"))
        await _refuse(scope, receive, send, 404, "Not Found")
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        from ._inspect_agent import inspectors_in  # noqa: PLC0415 - the inspector's modules import this one

        await serve_lifespan(receive, send, self.channel_layer, inspectors_in(self))


class ChannelNameRouter:
    """Route ``channel`` scopes (background workers) by channel name."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)
        for name, app in self.application_mapping.items():
            _check_app(f"ChannelNameRouter: the app for channel {name!r}", app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a worker scope with the app registered for its channel; return what that app returns."""
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
        return await app(scope, receive, send)
