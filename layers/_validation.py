"""Checks every layer applies before it accepts a name or a message.

Rules (the layer spec in ``docs/layer-spec.md`` states them for users):

1. Channel and group names are 1 to 100 ASCII characters from ``A-Z a-z 0-9 - _ .``.
   A channel name may hold one ``!``: what comes before it names the process that
   owns the channel (``specific.abc123!x9``); such channels are *process-local*.
2. A message is a ``dict`` whose keys are ``str`` and whose ``"type"`` is a non-empty
   ``str``. Values are ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, and
   lists, tuples and dicts (with ``str`` keys) of those, nested at most 32 deep.
3. Messages are checked when they are *sent*, never when received, and the receiver
   gets its own copy: tuples arrive as lists, as they would through any wire format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final, cast

from ._errors import InvalidChannelName, InvalidGroupName, InvalidMessage, UnserializableMessage

__all__ = [
    "MAX_NAME_LENGTH",
    "require_capacity",
    "require_positive",
    "check_message",
    "copy_message",
    "copy_sized",
    "message_size",
    "require_channel_name",
    "require_group_name",
]

MAX_NAME_LENGTH: Final = 100
MAX_DEPTH: Final = 32

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_CHANNEL = re.compile(r"[A-Za-z0-9_.\-]+(?:![A-Za-z0-9_.\-]*)?")
_SCALARS: Final = (str, int, float, bool, bytes, type(None))
_ALLOWED_CHARS = "ASCII letters, digits, '-', '_' and '.'"


def require_positive(name: str, value: float) -> float:
    """Return *value* as a float if it is a finite number of seconds above zero."""
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        msg = f"{name} must be a positive number of seconds, got {value!r}"
        raise ValueError(msg)
    return float(value)


def require_capacity(name: str, value: int) -> int:
    """Return *value* if it is an int of at least 1 (a number of messages, or of bytes)."""
    if type(value) is not int or value < 1:
        msg = f"{name} must be an int of at least 1, got {value!r}"
        raise ValueError(msg)
    return value


def _describe(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _name_problem(name: str, allowed: str) -> str:
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is {len(name)} characters long, the limit is {MAX_NAME_LENGTH}"
    bad = next((c for c in name if not (c.isascii() and (c.isalnum() or c in allowed))), None)
    if bad is not None:
        return f"it contains {bad!r}"
    return "it is malformed"


def require_channel_name(name: object) -> str:
    """Return *name* if it is a valid channel name, else raise :class:`InvalidChannelName`."""
    if type(name) is str and len(name) <= MAX_NAME_LENGTH and _CHANNEL.fullmatch(name):
        return name
    if not isinstance(name, str):
        msg = f"channel name must be a str, not {type(name).__name__} ({_describe(name)})"
        raise InvalidChannelName(msg)
    if type(name) is not str:  # a str subclass, such as a StrEnum member: check its value
        return require_channel_name(str.__str__(name))
    if name.count("!") > 1 or name.startswith("!"):
        problem = "a '!' may appear once, after a non-empty prefix"
    else:
        problem = _name_problem(name, "-_.!")
    msg = (
        f"invalid channel name {_describe(name)}: {problem}; channel names are 1 to "
        f"{MAX_NAME_LENGTH} {_ALLOWED_CHARS}, with at most one '!' marking a process-local channel"
    )
    raise InvalidChannelName(msg)


def require_group_name(name: object) -> str:
    """Return *name* if it is a valid group name, else raise :class:`InvalidGroupName`."""
    if type(name) is str and _NAME.fullmatch(name):
        return name
    if not isinstance(name, str):
        msg = f"group name must be a str, not {type(name).__name__} ({_describe(name)})"
        raise InvalidGroupName(msg)
    if type(name) is not str:  # a str subclass, such as a StrEnum member: check its value
        return require_group_name(str.__str__(name))
    problem = _name_problem(name, "-_.")
    msg = f"invalid group name {_describe(name)}: {problem}; group names are 1 to {MAX_NAME_LENGTH} {_ALLOWED_CHARS}"
    raise InvalidGroupName(msg)


def _check_text(text: str, path: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            msg = f"message text at {path} holds {exc.object[exc.start : exc.end]!r}, which is not valid Unicode"
            raise UnserializableMessage(msg) from None


def _check_value(value: object, path: str, depth: int) -> None:
    kind = type(value)
    if kind is str:
        _check_text(value, path)  # type: ignore[arg-type]
        return
    if kind in _SCALARS:
        return
    if depth >= MAX_DEPTH:
        msg = f"message value at {path} is nested deeper than {MAX_DEPTH} levels"
        raise UnserializableMessage(msg)
    if kind is dict:
        for key, item in cast("dict[object, object]", value).items():
            if type(key) is not str:
                msg = f"message key {key!r} at {path} must be a str, not {type(key).__name__}"
                raise InvalidMessage(msg)
            _check_text(key, path)
            _check_value(item, f"{path}[{key!r}]", depth + 1)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(cast("list[object]", value)):
            _check_value(item, f"{path}[{index}]", depth + 1)
        return
    msg = (
        f"message value at {path} is {_article(kind.__name__)} {kind.__name__} ({_describe(value)}), which a channel "
        "layer cannot carry; use None, bool, int, float, str, bytes, list, tuple or dict"
    )
    raise UnserializableMessage(msg)


def check_message(message: object) -> dict[str, Any]:
    """Raise unless *message* may travel through a layer; return it, typed."""
    if type(message) is not dict:
        msg = f"a message must be a dict with a 'type' key, not {type(message).__name__} ({_describe(message)})"
        raise InvalidMessage(msg)
    kind = message.get("type")
    if type(kind) is not str or not kind:
        msg = f"a message needs a non-empty str 'type', got {_describe(kind)} in {_describe(message)}"
        raise InvalidMessage(msg)
    for key, value in message.items():
        if type(key) is not str:
            msg = f"message key {key!r} must be a str, not {type(key).__name__}"
            raise InvalidMessage(msg)
        _check_text(key, "the top level")
        kind = type(value)
        if kind is str:
            _check_text(value, f"[{key!r}]")
        elif kind not in _SCALARS:
            _check_value(value, f"[{key!r}]", 1)
    return message


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _copy_value(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_copy_value(v) for v in value]
    return value


def message_size(message: dict[str, Any]) -> int:
    """About how many bytes *message* holds: its text and bytes, 8 for any other value.

    What a channel's byte bound counts (``capacity_bytes``); text counts a byte per
    character, which is exact for ASCII and close enough to bound memory otherwise;
    top-level keys are not counted.
    """
    return sum(_value_size(value) for value in message.values())


def _value_size(value: Any) -> int:
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if isinstance(value, dict):
        return sum(_value_size(k) + _value_size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_value_size(v) for v in value) + 8
    return 8


def copy_sized(message: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """:func:`copy_message` and :func:`message_size` in one pass."""
    out = message.copy()
    size = 0
    for key, value in out.items():
        kind = type(value)
        if kind is str or kind is bytes:
            size += len(value)
        elif kind in _SCALARS:
            size += 8
        else:
            out[key] = _copy_value(value)
            size += _value_size(value)
    return out, size


def copier(message: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The cheapest function that copies the checked *message* as :func:`copy_message` does.

    ``dict.copy`` when every value is immutable (the usual event: a type and some text),
    a call in C where :func:`copy_message` looks at every value again: a group send finds
    this once, and each of its members' copies is made with it.
    """
    for value in message.values():
        if type(value) not in _SCALARS:
            return copy_message
    return dict.copy


def copy_message(message: dict[str, Any]) -> dict[str, Any]:
    """Copy a checked message: containers are new, immutable scalars are shared."""
    out = message.copy()
    for key, value in out.items():
        if type(value) not in _SCALARS:
            out[key] = _copy_value(value)
    return out
