"""Typed messages: attrs classes with a ``type`` class attribute, carried as dicts.

A layer or client message ``{"type": "chat.message", "text": "hi"}`` becomes
``ChatMessage(text="hi")`` for a handler declared with ``@on.message(ChatMessage)``;
:func:`to_message` turns an instance back into a dict any layer can carry.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs

__all__ = ["MessageFormatError", "from_message", "to_message"]

T = TypeVar("T")

_converter = cattrs.Converter(forbid_extra_keys=True)


class MessageFormatError(ValueError):
    """A message dict does not fit the attrs class its handler expects."""

    def __init__(self, cls: type, problems: list[str]) -> None:
        self.cls = cls
        self.problems = problems
        super().__init__(f"message does not fit {cls.__qualname__}: {'; '.join(problems)}")


def from_message(message: dict[str, Any], cls: type[T]) -> T:
    """Build *cls* from *message* (its ``type`` key aside); raise :class:`MessageFormatError`."""
    fields = {key: value for key, value in message.items() if key != "type"}
    try:
        return _converter.structure(fields, cls)
    except Exception as exc:  # cattrs raises ClassValidationError and friends
        problems = cattrs.transform_error(exc) if isinstance(exc, cattrs.BaseValidationError) else [str(exc)]
        raise MessageFormatError(cls, problems) from exc


def to_message(obj: Any) -> dict[str, Any]:
    """Turn an attrs message instance into a layer message dict with its ``type``."""
    cls = type(obj)
    kind = getattr(cls, "type", None)
    if not attrs.has(cls) or not isinstance(kind, str):
        msg = f"to_message() takes an attrs instance whose class has a str `type`, not {obj!r}"
        raise TypeError(msg)
    data: dict[str, Any] = _converter.unstructure(obj)
    return {"type": kind, **data}
