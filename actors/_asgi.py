"""Small builders for ASGI messages shared by actors, routers and communicators."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ._types import Message, Scope, Send

__all__ = ["DENIAL_EXTENSION", "Headers", "denial_messages", "encode_headers", "supports_denial"]

DENIAL_EXTENSION: Final = "websocket.http.response"

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def _bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1")
    msg = f"header {what} must be str or bytes, not {type(value).__name__} ({value!r})"
    raise TypeError(msg)


def encode_headers(headers: Headers | None) -> list[tuple[bytes, bytes]]:
    """Turn a mapping or pairs of str/bytes into ASGI's list of byte pairs."""
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(_bytes(name, "name").lower(), _bytes(value, "value")) for name, value in pairs]


# Servers whose WebSocket protocol logs an ERROR after a denial response it sent well:
# uvicorn's websockets-sansio implementation (its default when websockets is installed)
# never marks the handshake done on that path, so when the app returns it logs "ASGI
# callable returned without completing handshake." (Kludex/uvicorn#3138, open as of
# uvicorn 0.54). A websocket.close before accept, answered 403, is the refusal it takes
# quietly. uvicorn's wsproto and legacy websockets protocols and hypercorn send a
# denial response without complaint.
_DENIAL_LOGS_AN_ERROR: Final = frozenset({"uvicorn.protocols.websockets.websockets_sansio_impl"})


def _denial_logs_an_error(send: Send | None) -> bool:
    """Whether *send* belongs to a server protocol that logs an ERROR after a denial response.

    Only a ``send`` the server handed over as its own bound method can be recognised;
    behind middleware that wraps it the answer is False and the denial goes out.
    """
    owner = getattr(send, "__self__", None)
    return type(owner).__module__ in _DENIAL_LOGS_AN_ERROR


def supports_denial(scope: Scope, send: Send | None = None) -> bool:
    """Whether the server lets a WebSocket app answer the handshake with an HTTP response.

    With *send*, also whether it takes one without logging an error (see above).
    """
    extensions = scope.get("extensions") or {}
    return DENIAL_EXTENSION in extensions and not _denial_logs_an_error(send)


def denial_messages(
    scope: Scope, status: int, body: bytes = b"", headers: Headers | None = None, *, send: Send | None = None
) -> list[Message]:
    """Messages that refuse a WebSocket handshake: an HTTP response if the server allows.

    Without the denial extension the only refusal ASGI offers is ``websocket.close``
    before ``websocket.accept``, which servers answer with 403.
    """
    if not supports_denial(scope, send):
        return [{"type": "websocket.close", "code": 1000}]
    encoded = encode_headers(headers)
    if body and not any(name == b"content-type" for name, _ in encoded):
        encoded.append((b"content-type", b"text/plain; charset=utf-8"))
    encoded.append((b"content-length", str(len(body)).encode()))
    return [
        {"type": "websocket.http.response.start", "status": status, "headers": encoded},
        {"type": "websocket.http.response.body", "body": body, "more_body": False},
    ]
