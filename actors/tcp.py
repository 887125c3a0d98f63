"""``interlock.actors.tcp``: a line-based TCP server whose every connection is an actor.

See ``docs/protocols.md``.
"""

import contextlib

from ._tcp import LineActor, TcpServer

__all__ = ["LineActor", "TcpServer"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("interlock.actors._"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = __name__
del _name, _obj
