"""Actors for ASGI apps: one per connection, one event at a time, a state machine inside.

Start with :class:`WebsocketActor` (or :class:`JsonWebsocketActor`), route it with
:class:`URLRouter` and :class:`ProtocolTypeRouter`, and pass a channel layer to the
router so actors can talk to each other.
"""

import contextlib

from interlock.dsl import IllegalTransition

from ._base import ActorApp, BaseActor, Flush, UnhandledPolicy, handler
from ._conversations import Recovered, Recovery, RecoveryRefused
from ._ending import EndCause, Ending
from ._errors import (
    AskDeadlock,
    AskError,
    AskFailed,
    AskTimeout,
    ClientGone,
    ClientTooSlow,
    DenyConnection,
    MalformedMessage,
    NoChannelLayer,
    PeerGone,
    RouteNotFound,
    StopActor,
    UnknownMessageType,
)
from ._generic import Actor
from ._http import HttpActor, HttpError, RequestTooLarge
from ._http_machine import HttpStateActor
from ._longpoll import LongPollActor
from ._machine import EventlessLoop, JsonStateActor, StateActor, TransitionRecord, UnhandledEvent
from ._routing import ChannelNameRouter, ProtocolTypeRouter, Route, URLRouter, path, re_path
from ._sse import SseActor, format_event, sse_message
from ._sync import async_to_sync, sync_to_async
from ._types import ASGIApp, Message, Receive, Scope, Send
from ._websocket import JsonWebsocketActor, WebsocketActor
from ._worker import WorkerStopped, run_worker

__all__ = [
    "ASGIApp",
    "Actor",
    "ActorApp",
    "AskDeadlock",
    "AskError",
    "AskFailed",
    "AskTimeout",
    "BaseActor",
    "ChannelNameRouter",
    "ClientGone",
    "ClientTooSlow",
    "DenyConnection",
    "EndCause",
    "Ending",
    "EventlessLoop",
    "Flush",
    "HttpActor",
    "HttpError",
    "HttpStateActor",
    "IllegalTransition",
    "JsonStateActor",
    "JsonWebsocketActor",
    "LongPollActor",
    "MalformedMessage",
    "Message",
    "NoChannelLayer",
    "PeerGone",
    "ProtocolTypeRouter",
    "Receive",
    "Recovered",
    "Recovery",
    "RecoveryRefused",
    "RequestTooLarge",
    "Route",
    "RouteNotFound",
    "Scope",
    "Send",
    "SseActor",
    "StateActor",
    "StopActor",
    "TransitionRecord",
    "URLRouter",
    "UnhandledEvent",
    "UnhandledPolicy",
    "UnknownMessageType",
    "WebsocketActor",
    "WorkerStopped",
    "async_to_sync",
    "format_event",
    "handler",
    "path",
    "re_path",
    "run_worker",
    "sse_message",
    "sync_to_async",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("interlock.actors._"):
        with contextlib.suppress(AttributeError, TypeError):  # type aliases keep theirs
            _obj.__module__ = __name__
del _name, _obj
