"""dispatch() remembers which handler a message type found; a type that found none is judged every time."""

from __future__ import annotations

from typing import Any

import pytest
from interlock.actors import BaseActor, UnknownMessageType, handler
from interlock.actors._base import NOT_HANDLED


class Chat(BaseActor):
    unhandled = "raise"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[dict[str, Any]] = []

    @handler
    async def chat_message(self, event: dict[str, Any]) -> str:
        self.seen.append(event)
        return "done"

    async def not_marked(self, event: dict[str, Any]) -> None:
        """A method, but no handler."""


class Other(BaseActor):
    unhandled = "ignore"

    @handler
    async def chat_message(self, event: dict[str, Any]) -> str:
        return "other"


async def test_a_type_finds_its_handler_every_time() -> None:
    actor = Chat()
    for _ in range(3):
        assert await actor.dispatch({"type": "chat.message", "n": 1}) == "done"
    assert await actor.dispatch({"type": "chat_message"}) == "done"  # another spelling, the same handler
    assert len(actor.seen) == 4
    assert Chat._handler_names == {"chat.message": "chat_message", "chat_message": "chat_message"}


async def test_a_type_without_a_handler_is_refused_every_time() -> None:
    actor = Chat()
    for _ in range(2):
        with pytest.raises(UnknownMessageType, match="not marked as a handler"):
            await actor.dispatch({"type": "not.marked"})
        with pytest.raises(UnknownMessageType, match="private"):
            await actor.dispatch({"type": "_seen"})
    assert "not.marked" not in Chat._handler_names


async def test_each_class_has_its_own_names() -> None:
    assert await Chat().dispatch({"type": "chat.message"}) == "done"
    assert await Other().dispatch({"type": "chat.message"}) == "other"
    assert await Other().dispatch({"type": "nothing.here"}) is NOT_HANDLED
