"""Typed messages: attrs classes with a ``type`` class attribute, carried as dicts.

A layer or client message ``{"type": "chat.message", "text": "hi"}`` becomes
``ChatMessage(text="hi")`` for a handler declared with ``@on.message(ChatMessage)``;
:func:`to_message` turns an instance back into a dict any layer can carry.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import list_structure_factory

__all__ = ["MessageFormatError", "from_message", "to_message"]

T = TypeVar("T")

_converter = cattrs.Converter(forbid_extra_keys=True)


def _exact(kind: type) -> Any:
    """A structure hook that takes a value of *kind* as it is and refuses anything else."""

    def structure(value: Any, _: type) -> Any:
        if type(value) is kind:
            return value
        if kind is float and type(value) is int:  # JSON has one number type: 2 is a fine 2.0
            return float(value)
        msg = f"expected {kind.__name__}, got {type(value).__name__} {value!r}"
        raise TypeError(msg)

    return structure


for _kind in (str, int, float, bool, bytes):
    # cattrs would turn 3 into "3", "x" into ["x"] and 3.7 into 3: client input deserves no such mercy
    _converter.register_structure_hook(_kind, _exact(_kind))


def _is_list(cls: Any) -> bool:
    return cls is list or getattr(cls, "__origin__", None) is list


def _list_hook(cls: Any) -> Any:
    """Structure sequences from real lists only (cattrs would iterate a str)."""
    base = list_structure_factory(cls, _converter)

    def structure(value: Any, kind: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            msg = f"expected a list, got {type(value).__name__} {value!r}"
            raise TypeError(msg)
        return base(value, kind)

    return structure


_converter.register_structure_hook_factory(_is_list, _list_hook)


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
