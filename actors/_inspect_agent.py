"""The inspector across processes: each process answers for its own actors, on the layer.

Theory of operation
-------------------
An inspector page is served by one process, but an app runs in several (``uvicorn
--workers 4``, a worker, a bot, another machine on Redis). Every process that mounts an
:class:`~interlock.actors.inspector.Inspector` runs one **agent** per channel layer:

1. **It is present in a group.** At start the agent makes a channel of its own
   (``interlock.inspector.PROCESS!TOKEN``) and joins the group :data:`GROUP`. The group is
   the directory of inspectable processes: the layer lists it across processes, and its
   leases prune the membership of a process that dies (SIGKILL, a machine lost) after the
   layer's grace period; a process that stops cleanly leaves at once.
2. **It answers asks**, layer messages in the format of :mod:`._ask` (``ask_id``,
   ``reply_to``; the answer is an ``interlock.reply``): :data:`SUMMARY` (this process's
   summary for the filters in ``query``; ``watch`` makes this process record rates and
   transitions for :data:`_REMOTE_WATCH` seconds more, as an open page here does) and
   :data:`ACTOR` (one actor's detail).
3. **It asks for the page.** A page showing another process sends the ask from its
   process's agent to the other's channel and waits at most :data:`ASK_TIMEOUT` seconds;
   on a layer that watches peers (in memory, SQLite) a process that died fails the ask at
   once. :func:`processes` asks every member of :data:`GROUP` for a brief summary, all at
   once, for the page's process list.

An agent starts with the app's lifespan (the routers find the inspectors mounted in
them: :func:`inspectors_in`) or, when the server sends no lifespan, at the inspector's
first request; it stops, leaving the group, at lifespan shutdown. Nothing runs while no
inspector is mounted; a mounted agent idles on its channel until asked.
"""

from __future__ import annotations

import json
import logging
import secrets
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio
from interlock.layers import GroupLayer, ListableGroupLayer, PeerWatchingLayer, spawn_system_task

from ._ask import ASK_ID, REPLY, REPLY_TO, reply_for
from ._inspect_registry import TAP
from ._inspect_snapshot import (
    AGENT_GROUP,
    Filters,
    Rates,
    actor_detail,
    layer_overview,
    layer_summary,
    observe_state_actors,
    process_of,
    summary,
)

if TYPE_CHECKING:
    from ._inspect_app import Inspector

__all__ = ["ACTOR", "ASK_TIMEOUT", "GROUP", "SUMMARY", "Agent", "AgentUnreachable", "agent_for", "inspectors_in"]

logger = logging.getLogger("interlock.actors")

GROUP: Final = AGENT_GROUP
"""The group every inspecting process's agent joins (the inspector's group listing leaves it out)."""

SUMMARY: Final = "interlock.inspector.summary"
ACTOR: Final = "interlock.inspector.actor"
ASK_TIMEOUT: Final = 2.0
"""Seconds an ask to another process's agent waits for the answer."""

_PREFIX: Final = "interlock.inspector"
_REMOTE_WATCH: Final = 10.0  # seconds a remote page's ask keeps this process recording
_LISTING_TTL: Final = 2.0  # seconds an agent reuses its layer listing for remote asks
_WALK_DEPTH: Final = 12


class AgentUnreachable(Exception):
    """Another process's inspector agent did not answer: it is gone, or too slow."""


class Agent:
    """This process's inspector agent on one channel layer (one per layer: :func:`agent_for`)."""

    def __init__(self, layer: GroupLayer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.process: str | None = None
        self.rates = Rates()
        self._ready = anyio.Event()
        self._started = False
        self._stopped = False
        self._scope: anyio.CancelScope | None = None
        self._waiting: dict[str, tuple[anyio.Event, list[Any]]] = {}
        self._remote_until = 0.0
        self._remote_watching = False
        self._listing: tuple[float, dict[str, Any] | None] | None = None

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"on {self.channel}" if self.channel else "starting"
        return f"<inspector Agent {state} of {type(self.layer).__qualname__}>"

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start answering (once; later calls wait until it answers)."""
        if not self._started:
            self._started = True
            self._stopped = False
            self._ready = anyio.Event()
            spawn_system_task(self._run, "interlock inspector agent")
        with anyio.move_on_after(ASK_TIMEOUT):
            await self._ready.wait()

    async def stop(self) -> None:
        """Leave the group and close the channel: other processes stop listing this one."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._started = False
        if self._scope is not None:
            self._scope.cancel()
        channel, self.channel = self.channel, None
        self._fail_waiting("this process's inspector agent stopped")
        self._unwatch_remote()
        if channel is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(ASK_TIMEOUT):
                try:
                    await self.layer.group_discard(GROUP, channel)
                    await self.layer.close_channel(channel)
                except Exception as exc:  # noqa: BLE001 - the layer may be failing already; its lease cleans up
                    logger.debug("inspector agent could not leave %s: %s", GROUP, exc)

    async def _run(self) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                layer = self.layer
                channel = await layer.new_channel(_PREFIX)
                await layer.group_add(GROUP, channel)
                self.channel, self.process = channel, process_of(channel)
                self._ready.set()
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._expire_remote_watch)
                    while True:
                        message = await layer.receive(channel)
                        if message.get("type") == REPLY:
                            self._answered(message)
                        elif ASK_ID in message and REPLY_TO in message:
                            tasks.start_soon(self._answer, message)
        except Exception:  # a system task must not raise: the page shows this process alone meanwhile
            logger.exception("the inspector agent stopped on %s", type(self.layer).__qualname__)
        finally:
            self._started = False
            self._ready.set()
            self._fail_waiting("this process's inspector agent stopped")

    # -- answering --------------------------------------------------------------------------

    async def _answer(self, message: Mapping[str, Any]) -> None:
        try:
            result = await self.local(message)
            reply = reply_for(dict(message), result=result)
        except Exception as exc:  # noqa: BLE001 - the asker gets the error, this process carries on
            reply = reply_for(dict(message), error=exc)
        try:
            with anyio.fail_after(ASK_TIMEOUT):
                await self.layer.send(str(message[REPLY_TO]), reply)
        except Exception as exc:  # noqa: BLE001 - the asker is gone or full: its ask times out
            logger.debug("inspector agent could not answer %s: %s", message.get(REPLY_TO), exc)

    async def local(self, message: Mapping[str, Any]) -> Any:
        """This process's answer to an ask (also what a page served here shows)."""
        kind = message.get("type")
        if message.get("watch"):
            self._watch_remote()
        if kind == SUMMARY:
            query = message.get("query") or {}
            filters = Filters.from_query({str(k): [str(x) for x in v] for k, v in dict(query).items()})
            listing = await self._cached_listing()
            content = summary(filters, self.rates, (listing or {}).get("memberships"))
            content["process"]["id"] = self.process
            if message.get("layer"):  # the asker shows the layer from this listing: it does not list it too
                content["layer"] = layer_overview(listing)
            return _plain(content)
        if kind == ACTOR:
            listing = await self._cached_listing()
            return _plain(actor_detail(str(message.get("id", "")), (listing or {}).get("memberships")))
        msg = f"the inspector agent answers {SUMMARY!r} and {ACTOR!r}, not {kind!r}"
        raise ValueError(msg)

    async def _cached_listing(self) -> dict[str, Any] | None:
        now = anyio.current_time()
        if self._listing is None or now - self._listing[0] > _LISTING_TTL:
            self._listing = (now, await layer_summary(self.layer))
        return self._listing[1]

    def _watch_remote(self) -> None:
        self._remote_until = anyio.current_time() + _REMOTE_WATCH
        if not self._remote_watching:
            self._remote_watching = True
            TAP.watch()
            observe_state_actors(True)

    def _unwatch_remote(self) -> None:
        if self._remote_watching:
            self._remote_watching = False
            TAP.unwatch()
            if not TAP.watching:
                observe_state_actors(False)

    async def _expire_remote_watch(self) -> None:
        while True:
            await anyio.sleep(1.0)
            if self._remote_watching and anyio.current_time() >= self._remote_until:
                self._unwatch_remote()

    # -- asking -----------------------------------------------------------------------------

    async def ask(self, channel: str, message: dict[str, Any], timeout: float = ASK_TIMEOUT) -> Any:
        """Ask another process's agent at *channel*; raise :class:`AgentUnreachable` if it does not answer."""
        await self.start()
        if self.channel is None:
            msg = "this process's inspector agent is not running: no other process can answer it"
            raise AgentUnreachable(msg)
        ask_id = secrets.token_hex(8)
        done = anyio.Event()
        slot: list[Any] = []
        self._waiting[ask_id] = (done, slot)
        cancel = None
        layer = self.layer
        if isinstance(layer, PeerWatchingLayer):

            def gone(watched: str, reason: str) -> None:
                if ask_id in self._waiting:
                    slot.append(AgentUnreachable(f"process {process_of(watched)} is gone ({reason})"))
                    done.set()

            cancel = layer.watch_peer(channel, gone)
        try:
            with anyio.move_on_after(timeout):
                await layer.send(channel, {**message, ASK_ID: ask_id, REPLY_TO: self.channel})
                await done.wait()
        except Exception as exc:
            msg = f"cannot ask process {process_of(channel)}: {type(exc).__name__}: {exc}"
            raise AgentUnreachable(msg) from exc
        finally:
            self._waiting.pop(ask_id, None)
            if cancel is not None:
                cancel()
        if not slot:
            msg = f"process {process_of(channel)} did not answer within {timeout:g} s"
            raise AgentUnreachable(msg)
        answer = slot[0]
        if isinstance(answer, BaseException):
            raise answer
        if "error" in answer:
            error = answer["error"]
            msg = f"process {process_of(channel)} failed to answer: {error.get('type')}: {error.get('message')}"
            raise AgentUnreachable(msg)
        return answer.get("result")

    def _answered(self, reply: Mapping[str, Any]) -> None:
        waiting = self._waiting.get(str(reply.get(ASK_ID)))
        if waiting is not None:
            waiting[1].append(dict(reply))
            waiting[0].set()

    def _fail_waiting(self, why: str) -> None:
        for done, slot in list(self._waiting.values()):
            slot.append(AgentUnreachable(why))
            done.set()
        self._waiting.clear()

    async def members(self) -> dict[str, str]:
        """Every inspecting process on the layer: its process id and its agent's channel."""
        layer = self.layer
        if not isinstance(layer, ListableGroupLayer):
            return {} if self.process is None or self.channel is None else {self.process: self.channel}
        found: dict[str, str] = {}
        for channel in sorted(await layer.group_members(GROUP)):
            process = process_of(channel)
            if process is not None:
                found[process] = channel
        return found

    async def channel_of(self, process: str) -> str:
        """The agent channel of *process*; :class:`LookupError` naming the known ones if it has none."""
        members = await self.members()
        channel = members.get(process)
        if channel is None:
            known = ", ".join(sorted(members)) or "none"
            msg = f"no inspecting process {process!r} on the layer (inspecting processes: {known})"
            raise LookupError(msg)
        return channel

    async def processes(self, watch: bool) -> list[dict[str, Any]]:
        """Every inspecting process with a brief summary (asked all at once); this one first."""
        members = await self.members()
        rows: dict[str, dict[str, Any]] = {}

        async def ask_one(process: str, channel: str) -> None:
            message = {"type": SUMMARY, "query": {"limit": ["0"]}, "watch": watch}
            try:
                if process == self.process:  # a page here is a watcher already
                    content = await self.local({**message, "watch": False})
                else:
                    content = await self.ask(channel, message)
            except AgentUnreachable as exc:
                rows[process] = {"id": process, "this": False, "answering": False, "error": str(exc)}
                return
            rows[process] = brief(content, process, this=process == self.process)

        async with anyio.create_task_group() as tasks:
            for process, channel in members.items():
                tasks.start_soon(ask_one, process, channel)
        return sorted(rows.values(), key=lambda row: (not row["this"], row["id"]))


def brief(content: Mapping[str, Any], process: str | None, *, this: bool) -> dict[str, Any]:
    """A process's row in the list of inspecting processes, from its summary *content*."""
    info = content["process"]
    return {
        "id": process,
        "this": this,
        "answering": True,
        "pid": info["pid"],
        "host": info["host"],
        "started": info["started"],
        "total": content["total"],
        "mailbox_total": content["mailbox_total"],
        "classes": {entry["name"]: entry["count"] for entry in content["classes"] if entry["count"]},
        "watchers": content["watchers"],
    }


def _plain(content: Any) -> Any:
    """*content* as plain JSON values (what a layer message may carry)."""
    return json.loads(json.dumps(content, default=str))


# Weak: an agent lives while it runs (its task holds it) or an inspector holds it.
_AGENTS: weakref.WeakValueDictionary[int, Agent] = weakref.WeakValueDictionary()


def agent_for(layer: GroupLayer) -> Agent:
    """The agent of this process on *layer* (made on first use)."""
    agent = _AGENTS.get(id(layer))
    if agent is None or agent.layer is not layer:
        agent = _AGENTS[id(layer)] = Agent(layer)
    return agent


def inspectors_in(app: object) -> Iterator[Inspector]:
    """The inspectors mounted in *app*: through routers, their routes and middleware (``app``, ``inner``)."""
    from ._inspect_app import Inspector  # noqa: PLC0415 - _inspect_app imports this module

    seen: set[int] = set()
    pending: list[tuple[object, int]] = [(app, 0)]
    while pending:
        node, depth = pending.pop()
        if id(node) in seen or depth > _WALK_DEPTH:
            continue
        seen.add(id(node))
        if isinstance(node, Inspector):
            yield node
            continue
        mapping = getattr(node, "application_mapping", None)
        if isinstance(mapping, Mapping):
            pending.extend((child, depth + 1) for child in mapping.values())
        routes = getattr(node, "routes", None)
        if isinstance(routes, list):
            pending.extend((getattr(route, "app", None), depth + 1) for route in routes)
        for name in ("app", "inner"):
            child = getattr(node, name, None)
            if child is not None and not isinstance(child, type):
                pending.append((child, depth + 1))
