"""A Django project's channel layers, configured once in settings.

``INTERLOCK_CHANNEL_LAYERS`` (or, if it is absent, Channels' ``CHANNEL_LAYERS``) maps
an alias to a layer, in Channels' shape::

    INTERLOCK_CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "interlock.layers.SQLiteChannelLayer",
            "CONFIG": {"path": BASE_DIR / "layer.sqlite3"},
        },
    }

``BACKEND`` is the dotted path of a layer class and ``CONFIG`` its keyword arguments.
:func:`get_channel_layer` builds each alias's layer once per process and returns the
same object every time, so the ASGI app, views and workers share it. Channels'
``channels.layers.InMemoryChannelLayer`` is read as interlock's (its ``expiry``,
``group_expiry``, ``capacity`` and ``channel_capacity`` mean the same); Channels' other
backends (``channels_redis``) are refused with what to use instead.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from interlock.layers import GroupLayer

__all__ = ["DEFAULT_CHANNEL_LAYER", "get_channel_layer", "layer_settings"]

DEFAULT_CHANNEL_LAYER = "default"

_CHANNELS_BACKENDS = {"channels.layers.InMemoryChannelLayer": "interlock.layers.InMemoryChannelLayer"}
_layers: dict[str, GroupLayer] = {}
_lock = threading.Lock()  # views in several threads may ask first at once


def layer_settings() -> tuple[str, dict[str, Any]]:
    """The name of the setting in use and its value (``{}`` when neither is set)."""
    from django.conf import settings  # noqa: PLC0415 - read at call time: settings may come late

    for name in ("INTERLOCK_CHANNEL_LAYERS", "CHANNEL_LAYERS"):
        value = getattr(settings, name, None)
        if value is not None:
            if not isinstance(value, dict):
                msg = f"settings.{name} must be a dict of alias -> {{'BACKEND': ..., 'CONFIG': {{...}}}}, not {value!r}"
                raise ImproperlyConfigured(msg)
            return name, value
    return "INTERLOCK_CHANNEL_LAYERS", {}


def _build(setting: str, alias: str, config: Any) -> GroupLayer:
    where = f"settings.{setting}[{alias!r}]"
    if not isinstance(config, dict) or not isinstance(config.get("BACKEND"), str):
        msg = (
            f"{where} must be a dict with a 'BACKEND' (a layer class's dotted path) "
            f"and an optional 'CONFIG', not {config!r}"
        )
        raise ImproperlyConfigured(msg)
    unknown = sorted(set(config) - {"BACKEND", "CONFIG"})
    if unknown:
        msg = f"{where} has unknown keys {unknown}: a layer takes 'BACKEND' and 'CONFIG' (its keyword arguments)"
        raise ImproperlyConfigured(msg)
    backend = str(config["BACKEND"])
    backend = _CHANNELS_BACKENDS.get(backend, backend)
    if backend.startswith(("channels.", "channels_redis.")):
        msg = (
            f"{where}['BACKEND'] is Channels' {backend!r}, which interlock cannot drive; use "
            "'interlock.layers.SQLiteChannelLayer' (CONFIG: {'path': ...}) or 'interlock.layers.InMemoryChannelLayer'"
        )
        raise ImproperlyConfigured(msg)
    options = config.get("CONFIG") or {}
    if not isinstance(options, dict):
        msg = f"{where}['CONFIG'] must be a dict of keyword arguments for {backend}, not {options!r}"
        raise ImproperlyConfigured(msg)
    try:
        factory = import_string(backend)
    except ImportError as exc:
        msg = f"{where}['BACKEND'] = {backend!r} cannot be imported: {exc}"
        raise ImproperlyConfigured(msg) from exc
    try:
        layer = factory(**options)
    except (TypeError, ValueError) as exc:
        msg = f"{where}: {backend}(**{options!r}) failed: {exc}"
        raise ImproperlyConfigured(msg) from exc
    if not isinstance(layer, GroupLayer):
        msg = f"{where}['BACKEND'] = {backend!r} built {layer!r}, which is not a channel layer with groups (GroupLayer)"
        raise ImproperlyConfigured(msg)
    return layer


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> GroupLayer:
    """The project's layer for *alias*, built from settings on first use, then the same object.

    Raises ``ImproperlyConfigured`` naming the setting when the alias is missing or its
    entry is wrong (Channels returns None for a missing alias; a layer that silently is
    not there only fails later).
    """
    layer = _layers.get(alias)
    if layer is not None:
        return layer
    with _lock:
        layer = _layers.get(alias)
        if layer is None:
            setting, layers = layer_settings()
            if alias not in layers:
                configured = f"it has {sorted(layers)}" if layers else "it is not set"
                msg = (
                    f"no channel layer {alias!r} in settings.{setting} ({configured}); add e.g. "
                    f"{setting} = {{{alias!r}: {{'BACKEND': 'interlock.layers.SQLiteChannelLayer', "
                    "'CONFIG': {'path': BASE_DIR / 'layer.sqlite3'}}}"
                )
                raise ImproperlyConfigured(msg)
            layer = _layers[alias] = _build(setting, alias, layers[alias])
    return layer


def forget_channel_layers() -> None:
    """Drop the built layers (tests that change the setting); the next call builds anew."""
    with _lock:
        _layers.clear()
