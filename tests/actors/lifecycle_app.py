"""An app whose actors write down every step of their lifecycle, for the teardown e2e tests.

Served by uvicorn (asyncio) and ``hypercorn -k trio`` in ``test_lifecycle_e2e`` and
``test_shutdown_e2e``.  Two environment variables configure it:

* ``INTERLOCK_LIFE_DB``: the :class:`~interlock.layers.SQLiteChannelLayer` file, which
  the test process opens too, to list the groups' members after the fact;
* ``INTERLOCK_LIFE_RECORDS``: a directory where each server process appends one JSON
  line per hook call to ``<pid>.jsonl`` (one ``os.write`` per line on an ``O_APPEND``
  file descriptor, so nothing is lost when a process is killed).  Each line holds the
  connection's ``tag`` (the last segment of the URL path), the ``event`` and its
  details.  Without the variable nothing is recorded.

WebSocket route ``ws/life/<tag>/`` serves :class:`LifeActor`, a
:class:`~interlock.actors.JsonStateActor` in group ``life.all``, with the user states::

    open.lobby                 initial
    open.in_room               joins group life.room.<room> when entered
    open.in_room.speaking      in_room's initial child

Client events (JSON ``{"type": ...}``):

* ``join`` ``{"room": str}``: lobby -> in_room (answers ``{"type": "joined"}``);
* ``leave``: in_room -> lobby (answers ``{"type": "left"}``, from lobby's enter hook);
* ``burst`` ``{"n": int, "size": int}``: sends *n* messages of *size* characters to the client;
* ``fanout`` ``{"n": int}``: *n* ``group_send`` calls of ``room.msg`` to the room;
* ``boom``: raises ``RuntimeError("deliberate failure in <tag>")``;
* ``sleep`` ``{"seconds": float}``: sleeps in the handler, then answers ``{"type": "slept"}``;
* ``slow_exit`` ``{"seconds": float}``: from now on every exit hook sleeps that long;
* ``ping``: answers ``{"type": "pong"}``.

Layer message ``room.msg`` is sent on to the client as ``{"type": "room", "i": i}``.
The query string ``?connect_delay=<seconds>`` makes ``connect()`` sleep before accepting.

Recorded events: ``connect`` (with ``channel``), ``accepted``, ``enter``/``exit``
(with ``state``; ``exit`` also with ``cause``, the ending's cause or null for an ordinary
transition), ``exit_done``, ``began``/``done`` around ``burst``, ``fanout`` and
``sleep`` (with ``what``), and ``disconnect`` (with ``code`` and ``cause``).

Also served bare, with default lifespan settings (``uvicorn lifecycle_app:bare``):
``bare`` is ``BareEcho.as_asgi()`` (no layer), ``bare_layered`` is
``LifeActor.as_asgi(channel_layer=layer)``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
from interlock.actors import JsonStateActor, JsonWebsocketActor, ProtocolTypeRouter, Scope, URLRouter, path
from interlock.dsl import State, on
from interlock.layers import SQLiteChannelLayer

ALL = "life.all"
ROOM_PREFIX = "life.room."
DB_ENV = "INTERLOCK_LIFE_DB"
RECORDS_ENV = "INTERLOCK_LIFE_RECORDS"


# -- logging: one record per block, so the test can tell the deliberate failures apart -------


class _BlockFormatter(logging.Formatter):
    """``LEVEL logger message``; continuation lines (tracebacks) start with ``| ``."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\n| ")


_handler = logging.StreamHandler(sys.stderr)
_handler.setFormatter(_BlockFormatter("%(levelname)s %(name)s %(message)s"))
_interlock_logger = logging.getLogger("interlock")
_interlock_logger.addHandler(_handler)
_interlock_logger.setLevel(logging.WARNING)
_interlock_logger.propagate = False


# -- the record ---------------------------------------------------------------------------------


class _Recorder:
    """Appends JSON lines to ``<dir>/<pid>.jsonl``; reopened after a fork."""

    def __init__(self, directory: str | None) -> None:
        self._dir = None if directory is None else Path(directory)
        self._fd: int | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def write(self, tag: str, event: str, **fields: Any) -> None:
        if self._dir is None:
            return
        line = json.dumps({"tag": tag, "event": event, "t": time.time(), **fields}) + "\n"
        with self._lock:
            pid = os.getpid()
            if self._fd is None or self._pid != pid:
                self._fd = os.open(self._dir / f"{pid}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._pid = pid
            os.write(self._fd, line.encode())


record = _Recorder(os.environ.get(RECORDS_ENV))

layer = SQLiteChannelLayer(os.environ.get(DB_ENV, "lifecycle.sqlite3"), capacity=1000)


def _tag_of(scope: Scope) -> str:
    return str(scope.get("path", "")).rstrip("/").rpartition("/")[2] or "?"


# -- the actor ------------------------------------------------------------------------------------


class LifeActor(JsonStateActor):
    """A room member that writes every hook call down (see the module's docstring)."""

    groups = (ALL,)

    lobby = State(initial=True)
    in_room = State()
    speaking = State(parent=in_room, initial=True, terminal=True)

    tag: str = "?"
    room_group: str = ""
    exit_delay: float = 0.0

    # -- the handshake and the end ------------------------------------------------------------

    async def connect(self) -> None:
        self.tag = _tag_of(self.scope)
        record.write(self.tag, "connect", channel=self.channel_name)
        query = parse_qs(self.scope.get("query_string", b"").decode())
        delay = float(query.get("connect_delay", ["0"])[0])
        if delay > 0:
            await anyio.sleep(delay)
        await self.accept()
        record.write(self.tag, "accepted")

    async def disconnect(self, code: int) -> None:
        cause = self.ending.cause if self.ending is not None else None
        record.write(self.tag, "disconnect", code=code, cause=cause)

    async def channel_overflowed(self, dropped: int) -> None:
        # The fan-out floods the room on purpose: these tests are about how connections
        # end, so a member that fell behind keeps going (test_limits.py covers the 4008).
        record.write(self.tag, "overflowed", dropped=dropped)

    # -- hooks --------------------------------------------------------------------------------

    async def _exited(self, state: str) -> None:
        cause = self.ending.cause if self.ending is not None else None
        record.write(self.tag, "exit", state=state, cause=cause)
        if self.exit_delay > 0:
            await anyio.sleep(self.exit_delay)
        record.write(self.tag, "exit_done", state=state)

    @lobby.enter
    async def enter_lobby(self) -> None:
        record.write(self.tag, "enter", state="lobby")
        if self.room_group:  # back from a room
            await self.send_json({"type": "left"})

    @lobby.exit
    async def exit_lobby(self) -> None:
        await self._exited("lobby")

    @in_room.enter
    async def enter_room(self) -> None:
        record.write(self.tag, "enter", state="in_room")
        await self.channel_layer.group_add(self.room_group, self.channel_name)

    @in_room.exit
    async def exit_room(self) -> None:
        await self._exited("in_room")

    @speaking.enter
    async def enter_speaking(self) -> None:
        record.write(self.tag, "enter", state="speaking")
        await self.send_json({"type": "joined"})

    @speaking.exit
    async def exit_speaking(self) -> None:
        await self._exited("speaking")

    # -- client events ------------------------------------------------------------------------

    def _room_ok(self, event: dict[str, Any]) -> bool:
        room = event.get("room")
        return isinstance(room, str) and room.replace("-", "").replace("_", "").isalnum()

    @on.client("join", source=lobby, target=in_room, guard=_room_ok)
    async def join(self, event: dict[str, Any]) -> None:
        self.room_group = ROOM_PREFIX + event["room"]

    @on.client("leave", source=in_room, target=lobby)
    async def leave(self, event: dict[str, Any]) -> None:
        """Leave the room (the group stays joined: the channel's closing must leave it)."""

    @on.client("burst")
    async def burst(self, event: dict[str, Any]) -> None:
        n, pad = int(event["n"]), "x" * int(event.get("size", 0))
        record.write(self.tag, "began", what="burst")
        for i in range(n):
            await self.send_json({"type": "burst", "i": i, "pad": pad})
        record.write(self.tag, "done", what="burst")

    @on.client("fanout", source=in_room)
    async def fanout(self, event: dict[str, Any]) -> None:
        record.write(self.tag, "began", what="fanout")
        for i in range(int(event["n"])):
            await self.channel_layer.group_send(self.room_group, {"type": "room.msg", "i": i})
        record.write(self.tag, "done", what="fanout")

    @on.client("boom")
    async def boom(self, event: dict[str, Any]) -> None:
        msg = f"deliberate failure in {self.tag}"
        raise RuntimeError(msg)

    @on.client("sleep")
    async def nap(self, event: dict[str, Any]) -> None:
        record.write(self.tag, "began", what="sleep")
        await anyio.sleep(float(event["seconds"]))
        record.write(self.tag, "done", what="sleep")
        await self.send_json({"type": "slept"})

    @on.client("slow_exit")
    async def slow_exit(self, event: dict[str, Any]) -> None:
        self.exit_delay = float(event["seconds"])
        await self.send_json({"type": "slow_exit", "seconds": self.exit_delay})

    @on.client("ping")
    async def ping(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    # -- layer messages -----------------------------------------------------------------------

    @on.message("room.msg")
    async def room_msg(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "room", "i": event["i"]})


class BareEcho(JsonWebsocketActor):
    """A JSON echo without a channel layer, served as a bare ``as_asgi()`` app."""

    async def connect(self) -> None:
        await self.accept()
        record.write(_tag_of(self.scope), "connect")

    async def receive_json(self, content: Any) -> None:
        await self.send_json({"echo": content})

    async def disconnect(self, code: int) -> None:
        record.write(_tag_of(self.scope), "disconnect", code=code, cause=self.ending and self.ending.cause)


app = ProtocolTypeRouter(
    {"websocket": URLRouter([path("ws/life/<slug:tag>/", LifeActor.as_asgi())])},
    channel_layer=layer,
)
bare = BareEcho.as_asgi()
bare_layered = LifeActor.as_asgi(channel_layer=layer)
