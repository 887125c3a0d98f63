"""Channel layers: named channels and groups that let actors talk across tasks and processes.

The contract is :class:`ChannelLayer` / :class:`GroupLayer` / :class:`ListableGroupLayer`,
written out in ``docs/layer-spec.md`` and checked by :mod:`interlock.layers.testing`.
"""

from ._background import spawn_system_task
from ._errors import (
    ChannelFull,
    ChannelLayerError,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    LayerBusy,
    LayerClosed,
    LayerFileError,
    LayerFileReplaced,
    LayerUnavailable,
    UnserializableMessage,
)
from ._history import POSITION, GroupHistory, HistoryLayer, HistoryPage, InvalidHistoryPosition
from ._memory import InMemoryChannelLayer
from ._redis import RedisChannelLayer
from ._sqlite import SQLiteChannelLayer
from ._types import (
    ChannelLayer,
    DropCountingLayer,
    GroupLayer,
    ListableGroupLayer,
    Message,
    PeerWatchingLayer,
    WatchableLayer,
)
from ._validation import MAX_NAME_LENGTH, check_message, require_channel_name, require_group_name

__all__ = [
    "MAX_NAME_LENGTH",
    "POSITION",
    "ChannelFull",
    "ChannelLayer",
    "ChannelLayerError",
    "DropCountingLayer",
    "GroupHistory",
    "GroupLayer",
    "HistoryLayer",
    "HistoryPage",
    "InMemoryChannelLayer",
    "InvalidChannelName",
    "InvalidGroupName",
    "InvalidHistoryPosition",
    "InvalidMessage",
    "LayerBusy",
    "LayerClosed",
    "LayerFileError",
    "LayerFileReplaced",
    "LayerUnavailable",
    "ListableGroupLayer",
    "Message",
    "PeerWatchingLayer",
    "RedisChannelLayer",
    "SQLiteChannelLayer",
    "UnserializableMessage",
    "WatchableLayer",
    "check_message",
    "require_channel_name",
    "require_group_name",
    "spawn_system_task",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("interlock.layers."):
        _obj.__module__ = __name__
del _name, _obj
