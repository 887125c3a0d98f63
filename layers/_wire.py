"""The wire format of layer messages that leave the process: JSON, with bytes tagged.

Rules:

1. It carries exactly the values :mod:`._validation` lets through: ``None``, ``bool``,
   ``int`` (any size), ``float`` (NaN and infinities included), ``str``, ``bytes``, lists
   and dicts with ``str`` keys.  Tuples become lists, as the in-process path delivers them.
2. ``bytes`` travel as a one-key object ``{"\\u0000b": "<base64>"}``.  A user dict whose
   key starts with NUL gets one more NUL in front of that key on the wire, so no user
   dict can ever be mistaken for a tag; decoding strips it again.
3. The text is ASCII (``ensure_ascii``): SQLite stores it as-is, whatever the message
   holds, and since JSON escapes every control character, a NUL can only appear as the
   six characters ``\\u0000``.  Text without them (almost every message) is decoded by
   the plain C decoder, with no hook.

Never pickle: a layer file is shared by processes, and reading it must not run code.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

__all__ = ["decode", "encode"]

_TAG: Final = "\x00b"
_NUL_ESCAPE: Final = "\\u0000"


def _tag_bytes(value: object) -> dict[str, str]:
    if type(value) is bytes:
        return {_TAG: base64.b64encode(value).decode("ascii")}
    msg = f"cannot encode {type(value).__name__} (the message was not checked)"
    raise TypeError(msg)


def _escape_keys(value: Any) -> Any:
    """Prefix a NUL to every dict key that starts with NUL (rare: only when needed)."""
    kind = type(value)
    if kind is dict:
        return {("\x00" + key if key.startswith("\x00") else key): _escape_keys(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_escape_keys(item) for item in value]
    return value


def _has_nul_key(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return any(key.startswith("\x00") or _has_nul_key(item) for key, item in value.items())
    if kind is list or kind is tuple:
        return any(_has_nul_key(item) for item in value)
    return False


def encode(message: dict[str, Any]) -> str:
    """Encode a checked message (see :func:`~._validation.check_message`) as ASCII JSON."""
    text = json.dumps(message, default=_tag_bytes, separators=(",", ":"))
    if _NUL_ESCAPE in text and _has_nul_key(message):
        text = json.dumps(_escape_keys(message), default=_tag_bytes, separators=(",", ":"))
    return text


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _TAG in obj:
        return base64.b64decode(obj[_TAG])
    if any(key.startswith("\x00") for key in obj):
        return {(key[1:] if key.startswith("\x00") else key): value for key, value in obj.items()}
    return obj


def decode(text: str) -> dict[str, Any]:
    """Decode what :func:`encode` produced back into an equal message."""
    if _NUL_ESCAPE in text:
        result: dict[str, Any] = json.loads(text, object_hook=_untag)
    else:
        result = json.loads(text)
    return result
