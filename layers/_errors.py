"""Errors raised by channel layers.

Each error subclasses the builtin that fits, so callers can catch by meaning:
bad names and bad messages are ``ValueError``/``TypeError``, a full channel is
a ``RuntimeError`` a sender may retry later.
"""

from __future__ import annotations

__all__ = [
    "ChannelFull",
    "ChannelLayerError",
    "InvalidChannelName",
    "InvalidGroupName",
    "InvalidMessage",
    "LayerBusy",
    "LayerClosed",
    "LayerFileError",
    "LayerFileReplaced",
    "LayerUnavailable",
    "UnserializableMessage",
]


class ChannelLayerError(Exception):
    """Base class of every error a channel layer raises on purpose."""


class ChannelFull(ChannelLayerError, RuntimeError):
    """A channel already holds as many undelivered messages as its capacity allows."""


class LayerClosed(ChannelLayerError, RuntimeError):
    """The layer was closed while an operation waited on it."""


class LayerFileError(ChannelLayerError, ValueError):
    """A layer file cannot be used: not SQLite, corrupt, another application's, or too new."""


class LayerFileReplaced(LayerFileError):
    """The layer file was deleted or replaced while this process used it.

    The process still holds the old file, which no new process will ever open: messages
    between it and processes that started since would be lost both ways.  Every call of
    the layer raises this until ``close()``; the next call after that opens the file now
    at the path.
    """


class LayerBusy(ChannelLayerError, RuntimeError):
    """Another process kept the layer file locked for longer than the layer waits."""


class LayerUnavailable(ChannelLayerError, ConnectionError):
    """The layer's server (Redis) cannot be reached, or did not answer in time.

    The message names the address and what went wrong.  An operation that raised this may
    or may not have taken effect: a send that raised it may still be delivered, never
    the other way round.
    """


class InvalidChannelName(ChannelLayerError, ValueError):
    """A channel name broke the naming rules (see :doc:`the layer spec </layer-spec>`)."""


class InvalidGroupName(ChannelLayerError, ValueError):
    """A group name broke the naming rules (see :doc:`the layer spec </layer-spec>`)."""


class InvalidMessage(ChannelLayerError, TypeError):
    """A message was not a dict with a string ``type`` and string keys."""


class UnserializableMessage(InvalidMessage):
    """A message held a value a layer cannot carry (only JSON-like values and bytes travel)."""
