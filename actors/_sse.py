"""Server-sent events: an HTTP actor whose response is an endless ``text/event-stream``.

Theory of operation
-------------------
``handle()`` (by default) calls :meth:`SseActor.start_stream`: status 200 with
``text/event-stream``, ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (nginx
must not buffer it). From then on the response is ``streaming`` and every
:meth:`SseActor.send_event` is one ``http.response.body`` part with ``more_body=True``.

* **Heartbeats**: a small task of the actor's wakes every ``heartbeat`` seconds and, if
  nothing was sent since its last wake-up, posts a beat to the mailbox; the actor sends a
  comment line (``: ping``) in turn, so proxies keep the connection open. (A task, not a
  deadline of the actor's loop: a loop that waits with a deadline pays a cancel scope per
  wait, that is per event, which the fan-out benchmark measured.)
* **Groups** deliver events without a handler: a layer message ``{"type": "sse.event",
  "data": ..., "event": ..., "id": ..., "retry": ...}`` (see :func:`sse_message`) becomes
  that event; other types go to their ``@handler`` methods as for any actor.
* **Resumption**: the ``Last-Event-ID`` header a reconnecting ``EventSource`` sends is
  ``self.last_event_id``.
* **Backpressure**: a reader slower than the events blocks the server's ``send()``; the
  actor's mailbox (``mailbox_size``) and then its layer channel (the layer's capacity)
  fill, and the layer drops what no longer fits, counted. The actor hears of it
  (``channel_overflowed``) and ends the stream by default, so the client reconnects with
  its ``Last-Event-ID`` instead of missing events silently. Memory stays bounded.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable
from threading import get_ident
from typing import Any, ClassVar, Final

import anyio
from interlock.dsl.http import STREAMING

from ._asgi import Headers, encode_headers
from ._base import Flush, inline, library_class
from ._http import HttpActor
from ._mailbox import INTERNAL
from ._types import Message

__all__ = ["SSE_EVENT", "SseActor", "format_event", "sse_message"]

logger = logging.getLogger("interlock.actors")

SSE_EVENT: Final = "sse.event"
"""The layer message type an :class:`SseActor` turns into an event by itself."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PING: Final = b": ping\n\n"
_BEAT: Final = "heartbeat"
_HEADERS: Final = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


def _field(name: str, value: object) -> str:
    text = str(value)
    if "\n" in text or "\r" in text or (name == "id" and "\0" in text):
        msg = f"send_event({name}={value!r}): an event's {name} must be one line" + (
            " without NUL" if name == "id" else ""
        )
        raise ValueError(msg)
    return text


def format_event(data: Any, event: str | None = None, id: str | int | None = None, retry: int | None = None) -> bytes:
    """One event in the ``text/event-stream`` format, ready to send.

    *data* that is not a str is encoded as JSON; a multi-line str becomes one ``data:``
    line per line, as the format requires.
    """
    if event is None and id is None and retry is None and type(data) is str and "\n" not in data and "\r" not in data:
        return b"data: " + data.encode() + b"\n\n"  # the usual event: one line of data
    lines: list[str] = []
    if event is not None:
        lines.append(f"event: {_field('event', event)}")
    if id is not None:
        lines.append(f"id: {_field('id', id)}")
    if retry is not None:
        if type(retry) is not int or retry < 0:
            msg = f"send_event(retry={retry!r}): retry is a reconnection delay in milliseconds, an int >= 0"
            raise ValueError(msg)
        lines.append(f"retry: {retry}")
    text = data if isinstance(data, str) else json.dumps(data)
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(text))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_message(
    data: Any, event: str | None = None, id: str | int | None = None, retry: int | None = None
) -> dict[str, Any]:
    """A layer message that every :class:`SseActor` receiving it sends on as an event.

    ``await layer.group_send("news", sse_message({"title": "..."}, event="story", id=7))``
    """
    message: dict[str, Any] = {"type": SSE_EVENT, "data": data}
    if event is not None:
        message["event"] = event
    if id is not None:
        message["id"] = id
    if retry is not None:
        message["retry"] = retry
    return message


@library_class
class SseActor(HttpActor):
    """An HTTP actor that streams server-sent events: call :meth:`send_event`.

    By default ``handle()`` starts the stream at once; override it to check the request
    first (answer an error with ``send_response`` or :class:`~interlock.actors.HttpError`),
    then call ``await self.start_stream()``. Members of ``groups`` receive every
    ``sse.event`` message sent to them as an event (:func:`sse_message`).
    """

    watch_client: ClassVar[bool] = True

    heartbeat: ClassVar[float | None] = 15.0
    """A comment line (``: ping``) ends every interval of this many seconds in which nothing
    else was sent (None: never)."""

    retry: ClassVar[int | None] = None
    """If set, the reconnection delay (milliseconds) sent to the client when the stream starts."""

    last_event_id: str | None = None
    """The ``Last-Event-ID`` header of a reconnecting client, to resume from (None: a first visit)."""

    _beating: bool = False

    def __init__(self, **initkwargs: Any) -> None:
        super().__init__(**initkwargs)
        heartbeat = self.heartbeat
        if heartbeat is not None and (not isinstance(heartbeat, (int, float)) or heartbeat <= 0):
            msg = f"{type(self).__qualname__}.heartbeat = {heartbeat!r}: expected a positive number of seconds or None"
            raise ValueError(msg)

    @inline
    def handle(self, body: bytes) -> Awaitable[None] | None:
        """Start the stream (override to check the request first)."""
        return self.start_stream()

    # -- operations -----------------------------------------------------------------------------

    def start_stream(self, headers: Headers | None = None) -> Flush:
        """Send the event-stream headers (plus *headers*), and ``retry`` if set."""
        self.last_event_id = self.header("last-event-id")
        extra = encode_headers(headers)
        names = {name for name, _ in extra}
        self.send_headers(200, [pair for pair in _HEADERS if pair[0] not in names] + extra)
        self._start_beat()
        if self.retry is not None:
            return self.send_body(f"retry: {int(self.retry)}\n\n".encode(), more_body=True)
        return self.send_body(b"", more_body=True)  # the headers go out now, not with the first event

    def send_event(
        self, data: Any, event: str | None = None, id: str | int | None = None, retry: int | None = None
    ) -> Flush:
        """Send one event; *data* that is not a str is sent as JSON."""
        return self.send_body(format_event(data, event, id, retry), more_body=True)

    def send_comment(self, text: str = "") -> Flush:
        """Send a comment line (ignored by ``EventSource``; keeps the connection alive)."""
        lines = _LINE_BREAK.split(text)
        return self.send_body("".join(f": {line}\n" for line in lines).encode() + b"\n", more_body=True)

    def finish(self) -> Flush:
        """End the stream (an ``EventSource`` reconnects after ``retry``; close it client-side to stop)."""
        return self.send_body(b"", more_body=False)

    # -- the runtime ------------------------------------------------------------------------------

    def _start_beat(self) -> None:
        if self.heartbeat is None or self._beating or self._receive is not None:
            return  # (direct mode, watch_client turned off without a layer: nothing to beat for)
        if get_ident() != self._loop_thread:  # start_stream() in a sync handler, in a worker thread
            anyio.from_thread.run_sync(self._start_beat)
            return
        self._beating = True
        self._tasks.start_soon(self._beat, self.heartbeat)

    async def _beat(self, seconds: float) -> None:
        """Every *seconds*: if nothing went out since the last time, have the actor send a ping."""
        seen = self._delivered
        while True:
            await anyio.sleep(seconds)
            if self._delivered == seen:
                await self._mailbox.put((INTERNAL, _BEAT))
            seen = self._delivered

    async def _on_internal(self, payload: Any) -> bool:
        if payload is _BEAT and self.response_state == STREAMING:
            await self._emit({"type": "http.response.body", "body": _PING, "more_body": True})
        return False

    async def dispatch(self, message: Message) -> None:
        """``sse.event`` messages become events; other types go to their handlers."""
        if message.get("type") == SSE_EVENT and self._handled:
            if self.response_state == STREAMING:
                await self.send_event(
                    message.get("data", ""), message.get("event"), message.get("id"), message.get("retry")
                )
            else:
                logger.debug("%r dropped an sse.event: state is %s", self, self.response_state)
            return
        await super().dispatch(message)

    @inline
    def channel_overflowed(self, dropped: int) -> Awaitable[None] | None:
        """The layer dropped *dropped* events for this slow reader: end the stream, so it resumes.

        The client reconnects with ``Last-Event-ID``; override to resynchronise otherwise.
        """
        logger.warning("%r ends its stream: the reader is too slow and lost %d event(s)", self, dropped)
        if self.response_state == STREAMING:
            return self.finish()
        return None
