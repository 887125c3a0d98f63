"""The state-machine DSL of interlock: declare an actor's states, events and timers.

Pure: no I/O and no event loop. :mod:`interlock.actors` runs what this package
compiles (``StateActor``, ``JsonStateActor``); :mod:`interlock.dsl` declares, checks
and draws it.
"""

from ._compile import MachineDefinitionError, MachineSpec, StateInfo, Transition, compile_machine
from ._declare import Crossing, EventKind, Frame, HandlerDecl, History, State, StateRef, TaskFailed, Timeout, on
from ._diagram import FORMATS, DiagramError, DiagramFormat, render
from ._diagram_flat import FlatChart, render_flat
from ._errors import IllegalTransition
from ._lifecycle import CLOSED, CLOSING, CONNECTING, LIFECYCLE, OPEN, Edge, Lifecycle
from ._messages import MessageFormatError, from_message, to_message
from ._plan import Entry, Exit, Plan, plan_crossing, select, target_of

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "LIFECYCLE",
    "OPEN",
    "FORMATS",
    "Crossing",
    "DiagramError",
    "DiagramFormat",
    "Edge",
    "Entry",
    "EventKind",
    "Exit",
    "FlatChart",
    "Frame",
    "HandlerDecl",
    "History",
    "IllegalTransition",
    "Lifecycle",
    "MachineDefinitionError",
    "MachineSpec",
    "MessageFormatError",
    "Plan",
    "State",
    "StateInfo",
    "StateRef",
    "TaskFailed",
    "Timeout",
    "Transition",
    "compile_machine",
    "from_message",
    "on",
    "plan_crossing",
    "render",
    "render_flat",
    "select",
    "target_of",
    "to_message",
]

for _name in __all__:
    _obj = globals()[_name]
    if callable(_obj) and getattr(_obj, "__module__", "").startswith("interlock.dsl."):
        _obj.__module__ = __name__
del _name, _obj
