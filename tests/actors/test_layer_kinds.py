"""How an actor tells what its layer can do: asked once per layer class, unless the class is a proxy."""

from __future__ import annotations

from typing import Any

from interlock.actors._base import _LAYER_KINDS, _layer_kinds
from interlock.layers import InMemoryChannelLayer


class Plain:
    """A layer that can neither watch a channel nor count drops."""

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Send nothing anywhere."""


class Proxy:
    """Answers every attribute from the layer it wraps: what it can do depends on that layer."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_layer_class_is_asked_once() -> None:
    assert _layer_kinds(InMemoryChannelLayer()) == (True, True)
    assert _LAYER_KINDS[InMemoryChannelLayer] == (True, True)
    assert _layer_kinds(Plain()) == (False, False)
    assert _LAYER_KINDS[Plain] == (False, False)


def test_a_proxy_is_asked_every_time() -> None:
    assert _layer_kinds(Proxy(InMemoryChannelLayer())) == (True, True)
    assert _layer_kinds(Proxy(Plain())) == (False, False)  # not the first proxy's answer
    assert Proxy not in _LAYER_KINDS
