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
  list's filters as query parameters (``class``, ``state``, ``group``, ``q``, ``limit``),
  every process's groups through the channel layer (``layer=0`` leaves them out) and
  every inspecting process on the layer with its counts (``processes=0`` leaves them out);
* ``/api/actors/<id>`` — one actor: its row, its diagram with the current state
  highlighted, its recent transitions;
* ``/events`` — server-sent events: ``summary`` (and ``actor`` for ``?actor=<id>``)
  whenever they change, checked every ``interval`` seconds. Each open stream is a
  watcher: while there is one, the runtime records message counts and transitions
  (see :mod:`._inspect_registry`); when the last one leaves, recording stops.

Each of the three takes ``process=ID`` to show another process on the same layer: the
request is answered there, by that process's agent (:mod:`._inspect_agent`), through the
layer; an unknown process is 404, one that does not answer 504.
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
from ._inspect_agent import ACTOR, SUMMARY, Agent, AgentUnreachable, agent_for, brief
from ._inspect_registry import TAP
from ._inspect_snapshot import (
    Filters,
    Rates,
    actor_detail,
    layer_overview,
    layer_summary,
    observe_state_actors,
    own_processes,
    summary,
)
from ._lifespan import serve_lifespan
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
_STREAMS: Final = [0]  # the live streams of this process (every inspector's)


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

    **Other processes.** Every process that mounts an inspector answers for its own actors
    on the layer, so the page of one shows them all (pick one in its process list;
    ``?process=ID``). A router's lifespan starts that (and stops it at shutdown) for the
    inspectors mounted in it; under a server that sends no lifespan, or when the inspector
    is mounted in another framework, call :meth:`start` at startup and :meth:`stop` at
    shutdown (else a process starts answering at its inspector's first request).
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
        self._agent: Agent | None = None
        self._stream = _InspectorStream.as_asgi(inspector=self)

    async def start(self, layer: object = None) -> None:
        """Answer for this process on the layer (*channel_layer*, else *layer*): join its directory.

        Idempotent; a router's lifespan calls it with its own layer. Without a layer that
        has groups, there is nothing to join: it returns.
        """
        target = self.channel_layer if self.channel_layer is not None else layer
        if isinstance(target, GroupLayer):
            self._agent = agent_for(target)
            await self._agent.start()

    async def stop(self) -> None:
        """Stop answering: this process leaves the layer's list of inspecting processes."""
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.stop()

    async def agent_of(self, scope: Scope) -> Agent | None:
        """The running agent of this process on the request's layer (started if it was not)."""
        layer = self.layer_of(scope)
        if layer is None:
            return None
        agent = agent_for(layer)
        await agent.start()
        if self._agent is None:
            self._agent = agent
        return agent

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
        if scope["type"] == "lifespan":  # served as a whole app: answer on its own layer, if it has one
            await serve_lifespan(receive, send, None, [self])
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
        if route == "/api/summary" or route.startswith("/api/actors/"):
            await self._api(route, query, scope, send)
            return
        if route == "/events":
            try:
                Filters.from_query(query)
            except ValueError as exc:
                await _respond(send, 400, str(exc).encode() + b"\n", "text/plain; charset=utf-8", [])
                return
            if _STREAMS[0] >= self.max_streams:  # each stream takes a summary every interval
                reason = f"{_STREAMS[0]} inspector streams are open already (max_streams={self.max_streams})\n"
                await _respond(send, 503, reason.encode(), "text/plain; charset=utf-8", [(b"retry-after", b"5")])
                return
            await self._stream(scope, receive, send)
            return
        await _respond(send, 404, b"no such inspector page: try /, /api/summary or /events\n", "text/plain", [])

    async def _api(self, route: str, query: dict[str, list[str]], scope: Scope, send: Send) -> None:
        """``/api/summary`` and ``/api/actors/<id>``, here or in ``process=ID``."""
        text = "text/plain; charset=utf-8"
        try:
            agent = await self.agent_of(scope)
            content: dict[str, Any] | None
            if route == "/api/summary":
                content = await self.summary(query, self.layer_of(scope), agent=agent)
            else:
                content = await self.detail(route.removeprefix("/api/actors/"), query, self.layer_of(scope), agent)
        except ValueError as exc:  # a bad filter
            await _respond(send, 400, str(exc).encode() + b"\n", text, [])
            return
        except LookupError as exc:  # no such process
            await _respond(send, 404, str(exc).encode() + b"\n", text, [])
            return
        except AgentUnreachable as exc:  # that process did not answer
            await _respond(send, 504, str(exc).encode() + b"\n", text, [])
            return
        if content is None:
            await _respond(send, 404, b"no such live actor (it may have ended)\n", text, [])
            return
        await _respond(send, 200, _json(content), "application/json", [])

    async def summary(
        self,
        query: dict[str, list[str]],
        layer: GroupLayer | None,
        listing: dict[str, Any] | None = None,
        *,
        agent: Agent | None = None,
        processes: list[dict[str, Any]] | None = None,
        watch: bool = False,
    ) -> dict[str, Any]:
        """The summary for a parsed query string, with the layer's listing (unless ``layer=0``).

        *listing* is a layer listing already made (a stream reuses its last one between
        two listings): it is not made again; so are *processes*, the inspecting processes.
        With ``process=ID`` in *query* the summary is that process's, asked through
        *agent* (:class:`LookupError` for an unknown process, :class:`AgentUnreachable`
        for one that does not answer); *watch* makes it record rates as a page here does.
        """
        filters = Filters.from_query(query)
        wanted = _flag(query, "layer")
        process = _one(query, "process")
        if _remote(process, agent):
            assert agent is not None
            assert process is not None
            forwarded = {k: v for k, v in query.items() if k in ("class", "state", "group", "q", "limit")}
            ask = {"type": SUMMARY, "query": forwarded, "watch": watch, "layer": wanted}
            content = dict(await agent.ask(await agent.channel_of(process), ask))
            if wanted and content.get("layer") is not None:  # listed there; "this process" stays this one
                content["layer"] = {**content["layer"], "this_process": own_processes()}
        else:
            if listing is None and wanted:
                listing = await layer_summary(layer)
            memberships = listing.get("memberships") if listing is not None else None
            content = summary(filters, self.rates, memberships)
            content["process"]["id"] = agent.process if agent is not None else None
            if wanted:  # None: no layer to list
                content["layer"] = layer_overview(listing)
        content["viewing"] = content["process"].get("id")
        if _flag(query, "processes"):
            if processes is None:
                processes = await self.processes(agent)
            content["processes"] = processes
        return content

    async def processes(self, agent: Agent | None, *, watch: bool = False) -> list[dict[str, Any]]:
        """Every inspecting process on the layer, this one first, each with its counts."""
        if agent is None or agent.process is None:
            return [brief(summary(Filters(limit=0), None, None), None, this=True)]
        return await agent.processes(watch)

    async def detail(
        self,
        actor_id: str,
        query: dict[str, list[str]],
        layer: GroupLayer | None,
        agent: Agent | None,
        listing: dict[str, Any] | None = None,
        *,
        watch: bool = False,
    ) -> dict[str, Any] | None:
        """One actor's detail, in this process or in ``process=ID`` (None: no such live actor)."""
        process = _one(query, "process")
        if _remote(process, agent):
            assert agent is not None
            assert process is not None
            result = await agent.ask(await agent.channel_of(process), {"type": ACTOR, "id": actor_id, "watch": watch})
            return result if isinstance(result, dict) else None
        if listing is None:
            listing = await layer_summary(layer)
        return actor_detail(actor_id, (listing or {}).get("memberships"))


def _remote(process: str | None, agent: Agent | None) -> bool:
    """Whether ``process=`` names another process (:class:`LookupError` if none can be reached)."""
    if not process:
        return False
    if agent is None:
        msg = f"no process {process!r}: this inspector has no channel layer to reach other processes"
        raise LookupError(msg)
    return process != agent.process


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values and values[-1] else None


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """A query flag, on unless ``NAME=0`` (or empty)."""
    return query.get(name, ["1"])[-1] not in ("", "0")


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
        self._processes: list[dict[str, Any]] | None = None
        self._agent = await self.inspector.agent_of(self.scope)
        self._watching = True
        _STREAMS[0] += 1
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
        inspector, query, agent = self.inspector, self._query, self._agent
        layer = inspector.layer_of(self.scope)
        if self._ticks % _LAYER_EVERY == 0:  # the layer is listed every few ticks: it awaits the layer
            # Viewing another process, that process lists the layer for its answer: not this one too.
            process = _one(query, "process")
            viewing_here = not process or agent is None or process == agent.process
            self._listing = await layer_summary(layer) if viewing_here else None
            if _flag(query, "processes"):
                self._processes = await inspector.processes(agent, watch=True)
        self._ticks += 1
        observe_state_actors(True)  # state-actor classes defined since the stream started
        try:
            content = await inspector.summary(
                query, layer, self._listing, agent=agent, processes=self._processes, watch=True
            )
        except (LookupError, AgentUnreachable) as exc:  # that process is gone, or not answering
            content = {"viewing": _one(query, "process"), "unreachable": str(exc), "processes": self._processes}
        await self._send_if_changed("summary", content, ignore=("time", "process"))
        wanted = query.get("actor")
        if wanted:
            try:
                found = await inspector.detail(wanted[-1], query, layer, agent, self._listing, watch=True)
            except (LookupError, AgentUnreachable) as exc:
                found = {"id": wanted[-1], "gone": True, "error": str(exc)}
            detail = found or {"id": wanted[-1], "gone": True}
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
            _STREAMS[0] -= 1
            TAP.unwatch()
            if not TAP.watching:
                observe_state_actors(False)
