"""Drive ASGI apps in tests, without a server: communicators for any app, WebSocket and HTTP.

Every wait has a timeout, so a broken actor fails a test instead of hanging it, and
results are small typed objects, not tuples. Communicators are async context
managers and work on asyncio and trio::

    async with WebsocketCommunicator(app, "/ws/chat/lobby/") as ws:
        handshake = await ws.connect()
        assert handshake.accepted
        await ws.send_to(text_data="hello")
        assert await ws.receive_from() == "hello"
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._types import ASGIApp, Message, Scope

__all__ = [
    "ApplicationCommunicator",
    "ApplicationFailed",
    "Close",
    "Handshake",
    "HttpCommunicator",
    "HttpResponse",
    "WebsocketCommunicator",
]


class ApplicationFailed(RuntimeError):
    """The application under test raised; its exception is ``error`` and ``__cause__``.

    Raised by the communicator call that found it out, so the traceback shows both where
    the test was waiting and, as the cause, where the app raised.
    """

    def __init__(self, error: Exception, how: str = "") -> None:
        self.error = error
        text = f"{type(error).__qualname__}: {error}" if str(error) else type(error).__qualname__
        super().__init__(f"the application raised {text}{how}")


class ApplicationCommunicator:
    """Run one ASGI app instance for *scope*; feed it input, read its output.

    If the app raises, the next ``receive_output``/``receive_nothing``/``wait`` raises
    :class:`ApplicationFailed` naming the app's exception, with that exception as its
    ``__cause__``.
    """

    def __init__(self, application: ASGIApp, scope: Scope, *, timeout: float = 1.0) -> None:
        self.application = application
        self.scope = scope
        self.timeout = timeout
        self._input_send: MemoryObjectSendStream[Message]
        self._input_receive: MemoryObjectReceiveStream[Message]
        self._output_send: MemoryObjectSendStream[Message]
        self._output_receive: MemoryObjectReceiveStream[Message]
        self._tasks: TaskGroup | None = None
        self._done = anyio.Event()
        self._error: Exception | None = None

    async def __aenter__(self) -> Self:
        # The streams are made here, not in __init__: a communicator that is never entered
        # must not leave unclosed streams behind (a ResourceWarning, an error under pytest).
        self._input_send, self._input_receive = anyio.create_memory_object_stream[Message](math.inf)
        self._output_send, self._output_receive = anyio.create_memory_object_stream[Message](math.inf)
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._run_app)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tasks is not None
        self._tasks.cancel_scope.cancel()
        try:
            await self._tasks.__aexit__(None, None, None)
        finally:
            for stream in (self._input_send, self._input_receive, self._output_send, self._output_receive):
                stream.close()

    async def _run_app(self) -> None:
        try:
            await self.application(self.scope, self._receive, self._send)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the test through receive_output/wait
            self._error = exc
        finally:
            self._done.set()
            self._output_send.close()

    async def _receive(self) -> Message:
        try:
            return await self._input_receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            # the communicator is closing: tell the app its peer went away, as a server would
            kind = "websocket" if self.scope.get("type") == "websocket" else "http"
            return {"type": f"{kind}.disconnect", "code": 1006} if kind == "websocket" else {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        await self._output_send.send(message)

    def _require_started(self) -> None:
        if self._tasks is None:
            msg = f"use {type(self).__name__} as `async with {type(self).__name__}(...) as c:`"
            raise RuntimeError(msg)

    async def send_input(self, message: Message) -> None:
        """Give the app one event, as the server would."""
        self._require_started()
        await self._input_send.send(message)

    async def receive_output(self, timeout: float | None = None) -> Message:
        """Return the app's next message; raise ``TimeoutError`` if none comes in time.

        Raises :class:`ApplicationFailed` if the app raised instead, and ``AssertionError``
        if it returned without sending anything more.
        """
        self._require_started()
        limit = self.timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                return await self._output_receive.receive()
        except TimeoutError:
            msg = f"the application sent nothing within {limit} s"
            raise TimeoutError(msg) from None
        except anyio.EndOfStream:
            if self._error is not None:
                raise ApplicationFailed(self._error, " instead of sending another message") from self._error
            msg = "the application finished without sending another message"
            raise AssertionError(msg) from None

    async def receive_nothing(self, timeout: float = 0.1) -> None:
        """Assert that the app sends nothing for *timeout* seconds (returning is fine, raising is not)."""
        self._require_started()
        with anyio.move_on_after(timeout):
            try:
                message = await self._output_receive.receive()
            except anyio.EndOfStream:
                if self._error is not None:
                    raise ApplicationFailed(self._error) from self._error
                return
            msg = f"expected no output, but the application sent {message!r}"
            raise AssertionError(msg)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the app to return; raise :class:`ApplicationFailed` if it raised."""
        self._require_started()
        limit = self.timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                await self._done.wait()
        except TimeoutError:
            msg = f"the application did not finish within {limit} s"
            raise TimeoutError(msg) from None
        if self._error is not None:
            raise ApplicationFailed(self._error) from self._error

    @property
    def finished(self) -> bool:
        """Whether the app has returned (or raised)."""
        return self._done.is_set()


@attrs.frozen
class Handshake:
    """How the app answered a WebSocket handshake."""

    accepted: bool
    subprotocol: str | None = None
    headers: list[tuple[bytes, bytes]] = attrs.Factory(list)
    status: int | None = None
    """HTTP status of a refusal (403 for a plain ``websocket.close`` before accept)."""
    body: bytes = b""
    close_code: int | None = None


@attrs.frozen
class Close:
    """A close frame the app sent."""

    code: int
    reason: str = ""


def _scope_for(kind: str, path: str, headers: Iterable[tuple[str | bytes, str | bytes]] | None) -> Scope:
    raw_path, _, query = path.partition("?")
    encoded = [
        (k.encode("latin-1") if isinstance(k, str) else k, v.encode("latin-1") if isinstance(v, str) else v)
        for k, v in (headers or [])
    ]
    return {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(k.lower(), v) for k, v in encoded],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


class WebsocketCommunicator(ApplicationCommunicator):
    """Talk to a WebSocket app as a client would.

    The denial extension (``websocket.http.response``) is offered unless
    ``denial_extension=False``, so both kinds of refusal can be tested.
    """

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        *,
        headers: Iterable[tuple[str | bytes, str | bytes]] | None = None,
        subprotocols: Iterable[str] = (),
        denial_extension: bool = True,
        timeout: float = 1.0,
    ) -> None:
        scope = _scope_for("websocket", path, headers)
        scope["scheme"] = "ws"
        scope["subprotocols"] = list(subprotocols)
        scope["extensions"] = {"websocket.http.response": {}} if denial_extension else {}
        super().__init__(application, scope, timeout=timeout)
        self.handshake: Handshake | None = None

    async def connect(self, timeout: float | None = None) -> Handshake:
        """Send the handshake and return how the app answered."""
        await self.send_input({"type": "websocket.connect"})
        first = await self.receive_output(timeout)
        if first["type"] == "websocket.accept":
            result = Handshake(True, first.get("subprotocol"), list(first.get("headers") or []))
        elif first["type"] == "websocket.close":
            result = Handshake(False, status=403, close_code=first.get("code", 1000))
        elif first["type"] == "websocket.http.response.start":
            body = b""
            while True:
                part = await self.receive_output(timeout)
                body += part.get("body", b"")
                if not part.get("more_body", False):
                    break
            result = Handshake(False, headers=list(first.get("headers") or []), status=first["status"], body=body)
        else:
            msg = f"expected websocket.accept, websocket.close or a denial response, got {first!r}"
            raise AssertionError(msg)
        self.handshake = result
        return result

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one text or binary message to the app."""
        if (text_data is None) == (bytes_data is None):
            msg = "send_to() takes exactly one of text_data and bytes_data"
            raise ValueError(msg)
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send *data* as a JSON text message."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float | None = None) -> str | bytes:
        """Return the next message the app sent; fail on a close frame."""
        message = await self.receive_output(timeout)
        if message["type"] != "websocket.send":
            msg = f"expected a websocket.send message, got {message!r}"
            raise AssertionError(msg)
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def receive_json_from(self, timeout: float | None = None) -> Any:
        """Return the next message the app sent, decoded from JSON."""
        data = await self.receive_from(timeout)
        if not isinstance(data, str):
            msg = f"expected a JSON text message, got {len(data)} bytes of binary"
            raise AssertionError(msg)
        return json.loads(data)

    async def receive_close(self, timeout: float | None = None) -> Close:
        """Return the close frame the app sends next; fail on anything else."""
        message = await self.receive_output(timeout)
        if message["type"] != "websocket.close":
            msg = f"expected websocket.close, got {message!r}"
            raise AssertionError(msg)
        return Close(message.get("code") or 1000, message.get("reason") or "")

    async def disconnect(self, code: int = 1000, timeout: float | None = None) -> None:
        """Tell the app the client went away, and wait for it to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


@attrs.frozen
class HttpResponse:
    """A complete HTTP response."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header *name*, decoded, or None."""
        key = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k.lower() == key), None)


class HttpCommunicator(ApplicationCommunicator):
    """Make one HTTP request to an app and collect the response."""

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str | bytes, str | bytes]] | None = None,
        timeout: float = 1.0,
    ) -> None:
        scope = _scope_for("http", path, headers)
        scope["method"] = method.upper()
        scope["scheme"] = "http"
        super().__init__(application, scope, timeout=timeout)
        self.body = body

    async def get_response(self, timeout: float | None = None) -> HttpResponse:
        """Send the request and return the full response."""
        await self.send_input({"type": "http.request", "body": self.body, "more_body": False})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            msg = f"expected http.response.start, got {start!r}"
            raise AssertionError(msg)
        body = b""
        while True:
            part = await self.receive_output(timeout)
            if part["type"] != "http.response.body":
                msg = f"expected http.response.body, got {part!r}"
                raise AssertionError(msg)
            body += part.get("body", b"")
            if not part.get("more_body", False):
                break
        return HttpResponse(start["status"], list(start.get("headers") or []), body)
