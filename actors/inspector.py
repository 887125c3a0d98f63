"""The inspector: a page, a JSON summary and a live stream of the actors running in a process.

Mount :class:`Inspector` on an HTTP route of your app (it refuses to be built without an
access check), open it in a browser, or read it from a terminal with ``interlock inspect
URL``. See ``docs/inspector.md``.
"""

from __future__ import annotations

import contextlib

from ._inspect_app import AccessCheck, Inspector
from ._inspect_cli import format_summary

__all__ = ["AccessCheck", "Inspector", "format_summary"]

for _name in ("Inspector", "format_summary"):
    _obj = globals()[_name]
    with contextlib.suppress(AttributeError, TypeError):
        _obj.__module__ = __name__
del _name, _obj
