"""Small builders for ASGI messages shared by actors, routers and communicators."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ._types import Message, Scope

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


def supports_denial(scope: Scope) -> bool:
    """Whether the server lets a WebSocket app answer the handshake with an HTTP response."""
    extensions = scope.get("extensions") or {}
    return DENIAL_EXTENSION in extensions


def denial_messages(scope: Scope, status: int, body: bytes = b"", headers: Headers | None = None) -> list[Message]:
    """Messages that refuse a WebSocket handshake: an HTTP response if the server allows.

    Without the denial extension the only refusal ASGI offers is ``websocket.close``
    before ``websocket.accept``, which servers answer with 403.
    """
    if not supports_denial(scope):
        return [{"type": "websocket.close", "code": 1000}]
    encoded = encode_headers(headers)
    if body and not any(name == b"content-type" for name, _ in encoded):
        encoded.append((b"content-type", b"text/plain; charset=utf-8"))
    encoded.append((b"content-length", str(len(body)).encode()))
    return [
        {"type": "websocket.http.response.start", "status": status, "headers": encoded},
        {"type": "websocket.http.response.body", "body": body, "more_body": False},
    ]
