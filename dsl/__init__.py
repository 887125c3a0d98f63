"""The state-machine core of interlock: pure tables, no I/O and no event loop.

Today it holds the built-in actor lifecycle (``connecting → open → closing → closed``);
the user-facing DSL that nests states under ``open`` builds on the same compiled form.
"""

from ._errors import IllegalTransition
from ._lifecycle import CLOSED, CLOSING, CONNECTING, LIFECYCLE, OPEN, Edge, Lifecycle

__all__ = ["CLOSED", "CLOSING", "CONNECTING", "LIFECYCLE", "OPEN", "Edge", "IllegalTransition", "Lifecycle"]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("interlock.dsl."):
        _obj.__module__ = __name__
del _name, _obj
