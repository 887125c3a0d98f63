"""The inspector's ASGI app: access check, routes, and the live stream (an SSE actor).

Theory of operation
-------------------
:class:`Inspector` is an ASGI app for ``http`` scopes, mounted wherever the user likes
(``/_interlock/`` in the docs). Every request passes the access check first — the token
(``Authorization: Bearer T``, or ``?token=T`` for the page and its ``EventSource``,
which cannot send headers) and/or the user's predicate; there is no way to build one
without either. Then, relative to the mount point:

* ``/`` — the page (``_inspect_page.html``: plain HTML and JS, no build step, no
  third-party code; diagrams are SVG drawn by the server);
* ``/api/summary`` — the summary as JSON (``interlock inspect`` reads it), with the
  list's filters as query parameters (``class``, ``state``, ``group``, ``q``, ``limit``)
  and every process's groups through the channel layer (``layer=0`` leaves them out);
* ``/api/actors/<id>`` — one actor: its row, its diagram with the current state
  highlighted, its recent transitions;
* ``/events`` — server-sent events: ``summary`` (and ``actor`` for ``?actor=<id>``)
  whenever they change, checked every ``interval`` seconds. Each open stream is a
  watcher: while there is one, the runtime records message counts and transitions
  (see :mod:`._inspect_registry`); when the last one leaves, recording stops.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs

from interlock.layers import GroupLayer

from ._base import inline, library_class
from ._inspect_registry import TAP
from ._inspect_snapshot import Filters, Rates, actor_detail, layer_summary, observe_state_actors, summary
from ._mailbox import INTERNAL
from ._routing import Route, path
from ._sse import SseActor
from ._types import LAYER_KEY, Receive, Scope, Send

__all__ = ["AccessCheck", "Inspector"]

logger = logging.getLogger("interlock.actors")

AccessCheck = Callable[[Any], "bool | Awaitable[bool]"]
"""A predicate on the request's scope: True lets the request in."""

_MIN_TOKEN: Final = 16
_TICK: Final = "inspector-tick"
_LAYER_EVERY: Final = 4  # ticks between two layer listings on a stream (it awaits the layer)


def _page() -> bytes:
    return resources.files(__package__).joinpath("_inspect_page.html").read_bytes()


async def _respond(send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json(content: Any) -> bytes:
    return json.dumps(content, separators=(",", ":"), default=str).encode()


class Inspector:
    """An ASGI app showing this process's live actors, and the layer's groups, in a browser.

    Mount it on a path of your app, for ``http`` scopes::

        inspector = Inspector(token=os.environ["INTERLOCK_INSPECTOR_TOKEN"])
        app = ProtocolTypeRouter({"http": URLRouter([*inspector.routes("_interlock/"), ...]), ...})

    and open ``/_interlock/?token=...``. An access check is required: *token* (at
    least 16 characters; compared in constant time, taken from ``Authorization:
    Bearer ...`` or the ``token`` query parameter) and/or *allow*, a predicate on the
    scope (``def`` or ``async def``; both must pass when both are given). A request
    without a token gets 401, a wrong one 403; the predicate's refusal is 403.

    *channel_layer* is the layer whose groups are listed (by default the one the
    router put in the scope); *interval* is how often, in seconds, an open page is
    brought up to date; *max_streams* caps the live streams (open pages) of the process:
    one more is answered 503.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        allow: AccessCheck | None = None,
        channel_layer: GroupLayer | None = None,
        interval: float = 0.5,
        max_streams: int = 8,
    ) -> None:
        if token is None and allow is None:
            msg = (
                "Inspector() needs an access check: token='a secret of 16 characters or more' "
                "and/or allow=a predicate on the request's scope; it never serves without one"
            )
            raise TypeError(msg)
        if token is not None and (not isinstance(token, str) or len(token) < _MIN_TOKEN):
            msg = f"Inspector(token=...): expected a str of at least {_MIN_TOKEN} characters, got {_describe(token)}"
            raise ValueError(msg)
        if allow is not None and not callable(allow):
            msg = f"Inspector(allow=...): expected a callable taking the scope, got {allow!r}"
            raise TypeError(msg)
        if not isinstance(interval, (int, float)) or not 0.05 <= interval <= 60:
            msg = f"Inspector(interval={interval!r}): expected a number of seconds from 0.05 to 60"
            raise ValueError(msg)
        if type(max_streams) is not int or max_streams < 1:
            msg = f"Inspector(max_streams={max_streams!r}): expected a whole number of streams, 1 or more"
            raise ValueError(msg)
        self.max_streams = max_streams
        self._token = token
        self._allow = allow
        self.channel_layer = channel_layer
        self.interval = float(interval)
        self.rates = Rates()
        self._stream = _InspectorStream.as_asgi(inspector=self)

    def routes(self, prefix: str = "_interlock/") -> list[Route]:
        """The routes that mount it under *prefix* in a :class:`~interlock.actors.URLRouter`.

        ``URLRouter([*inspector.routes("_interlock/"), ...])``: the page at the prefix (the
        prefix without its ``/`` redirects there), the rest below it (as the kwarg ``rest``).
        """
        if not isinstance(prefix, str) or not prefix.endswith("/") or prefix.startswith("/"):
            msg = f"Inspector.routes({prefix!r}): expected a prefix like '_interlock/' (no leading '/', a trailing one)"
            raise ValueError(msg)
        return [path(prefix.rstrip("/"), self), path(prefix, self), path(prefix + "<path:rest>", self)]

    def __repr__(self) -> str:
        checks = [name for name, value in (("token", self._token), ("allow", self._allow)) if value is not None]
        return f"<Inspector checking {' and '.join(checks)}>"

    # -- access -------------------------------------------------------------------------------

    async def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        """None if the request may in, else the status and the reason."""
        if self._token is not None:
            given = _token_of(scope)
            if given is None:
                return 401, "the inspector needs its token: Authorization: Bearer <token>, or ?token=<token>"
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return 403, "wrong inspector token"
        if self._allow is not None:
            verdict = self._allow(scope)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict is not True:
                return 403, "the inspector's access check refused this request"
        return None

    # -- routes -------------------------------------------------------------------------------

    def layer_of(self, scope: Scope) -> GroupLayer | None:
        """The layer whose groups are shown: the one given, else the router's."""
        layer = self.channel_layer if self.channel_layer is not None else scope.get(LAYER_KEY)
        return layer if isinstance(layer, GroupLayer) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # mounted as a whole app: nothing to start
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            msg = f"the inspector serves http scopes, not {scope['type']!r}: mount it on an http route"
            raise ValueError(msg)
        refusal = await self._refusal(scope)
        if refusal is not None:
            status, reason = refusal
            extra = [(b"www-authenticate", b'Bearer realm="interlock inspector"')] if status == 401 else []
            await _respond(send, status, reason.encode() + b"\n", "text/plain; charset=utf-8", extra)
            return
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await _respond(
                send, 405, b"the inspector is read-only: GET\n", "text/plain; charset=utf-8", [(b"allow", b"GET")]
            )
            return
        route = _relative_path(scope)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if route in ("", "/"):
            full, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
            if not full.endswith("/"):  # the page's links are relative: it must be served as .../
                location = (full if full.startswith(root) else root + full) + "/"
                qs = scope.get("query_string", b"")
                target = (location + ("?" + qs.decode("latin-1") if qs else "")).encode("latin-1")
                await _respond(send, 308, b"", "text/plain", [(b"location", target)])
                return
            await _respond(send, 200, _page(), "text/html; charset=utf-8", [(b"referrer-policy", b"no-referrer")])
            return
        if route == "/api/summary":
            try:
                content = await self.summary(query, self.layer_of(scope))
            except ValueError as exc:
                await _respond(send, 400, str(exc).encode() + b"\n", "text/plain; charset=utf-8", [])
                return
            await _respond(send, 200, _json(content), "application/json", [])
            return
        if route.startswith("/api/actors/"):
            listing = await layer_summary(self.layer_of(scope))
            detail = actor_detail(route.removeprefix("/api/actors/"), (listing or {}).get("memberships"))
            if detail is None:
                await _respond(send, 404, b"no such live actor (it may have ended)\n", "text/plain; charset=utf-8", [])
                return
            await _respond(send, 200, _json(detail), "application/json", [])
            return
        if route == "/events":
            try:
                Filters.from_query(query)
            except ValueError as exc:
                await _respond(send, 400, str(exc).encode() + b"\n", "text/plain; charset=utf-8", [])
                return
            if TAP.watchers >= self.max_streams:  # each stream takes a summary every interval
                reason = f"{TAP.watchers} inspector streams are open already (max_streams={self.max_streams})\n"
                await _respond(send, 503, reason.encode(), "text/plain; charset=utf-8", [(b"retry-after", b"5")])
                return
            await self._stream(scope, receive, send)
            return
        await _respond(send, 404, b"no such inspector page: try /, /api/summary or /events\n", "text/plain", [])

    async def summary(
        self, query: dict[str, list[str]], layer: GroupLayer | None, listing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The summary for a parsed query string, with the layer's listing (unless ``layer=0``).

        *listing* is a layer listing already made (a stream reuses its last one between
        two listings): it is not made again.
        """
        filters = Filters.from_query(query)
        wanted = query.get("layer", ["1"])[-1] not in ("", "0")
        if listing is None and wanted:
            listing = await layer_summary(layer)
        memberships = listing.get("memberships") if listing is not None else None
        content = summary(filters, self.rates, memberships)
        if wanted:  # None: no layer to list
            content["layer"] = None if listing is None else {k: v for k, v in listing.items() if k != "memberships"}
        return content


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"a str of {len(value)} characters"
    return type(value).__name__


def _token_of(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return tokens[-1] if tokens else None


def _relative_path(scope: Scope) -> str:
    """The request's path below the mount point (``""`` for the mount point itself)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root) :]
    route = scope.get("url_route")
    if route is not None:  # interlock's URLRouter (see Inspector.routes): the "rest" of the path
        rest = route.get("kwargs", {}).get("rest")
        return "/" + rest if isinstance(rest, str) else "/"
    return path


@library_class
class _InspectorStream(SseActor):
    """``/events``: the summary (and one actor) as server-sent events, while the page is open."""

    inspector: Inspector | None = None
    heartbeat: ClassVar[float | None] = 15.0
    methods = frozenset({"GET", "HEAD"})
    _inspector_own: ClassVar[bool] = True  # not listed among the actors it shows

    async def handle(self, body: bytes) -> None:
        """Start the stream, count as a watcher, and send the first picture at once."""
        assert self.inspector is not None
        self._query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self._last: dict[str, bytes] = {}
        self._ticks = 0
        self._listing: dict[str, Any] | None = None
        self._watching = True
        TAP.watch()
        observe_state_actors(True)
        await self.start_stream()
        await self._update()
        self._tasks.start_soon(self._tick, self.inspector.interval)

    async def _tick(self, seconds: float) -> None:
        import anyio  # noqa: PLC0415 - anyio is loaded by then; kept local to the one use

        while True:
            await anyio.sleep(seconds)
            await self._mailbox.put((INTERNAL, _TICK))

    async def _on_internal(self, payload: Any) -> bool:
        if payload is _TICK:
            if self.response_state == "streaming":
                await self._update()
            return False
        return await super()._on_internal(payload)

    async def _update(self) -> None:
        """Send what changed since the last update."""
        assert self.inspector is not None
        layer = self.inspector.layer_of(self.scope)
        if self._ticks % _LAYER_EVERY == 0:  # the layer is listed every few ticks: it awaits the layer
            self._listing = await layer_summary(layer)
        self._ticks += 1
        observe_state_actors(True)  # state-actor classes defined since the stream started
        content = await self.inspector.summary(self._query, layer, self._listing)
        await self._send_if_changed("summary", content, ignore=("time", "process"))
        wanted = self._query.get("actor")
        if wanted:
            memberships = (self._listing or {}).get("memberships")
            detail = actor_detail(wanted[-1], memberships) or {"id": wanted[-1], "gone": True}
            await self._send_if_changed("actor", detail, ignore=())

    async def _send_if_changed(self, event: str, content: dict[str, Any], ignore: tuple[str, ...]) -> None:
        key = _json({k: v for k, v in content.items() if k not in ignore})
        if self._last.get(event) == key:
            return
        self._last[event] = key
        await self.send_event(_json(content).decode(), event=event)

    @inline
    def disconnect(self) -> None:
        """The page closed (or the server stops): one watcher less."""
        if getattr(self, "_watching", False):
            self._watching = False
            TAP.unwatch()
            if not TAP.watching:
                observe_state_actors(False)
