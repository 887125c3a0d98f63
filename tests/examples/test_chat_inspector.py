"""The chat mounts the inspector only when the environment names a token."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from interlock.actors.testing import HttpCommunicator
from interlock.layers import InMemoryChannelLayer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "a-long-enough-inspector-token"


def chat_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("INTERLOCK_CHAT_LAYER", "memory")
    sys.modules.pop("chat", None)
    return importlib.import_module("chat")


async def get(app: object, path: str, token: str | None = None) -> tuple[int, bytes]:
    headers = [("authorization", f"Bearer {token}")] if token else []
    async with HttpCommunicator(app, "GET", path, headers=headers) as http:  # type: ignore[arg-type]
        response = await http.get_response()
    return response.status, response.body


async def test_without_a_token_there_is_no_inspector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERLOCK_INSPECTOR_TOKEN", raising=False)
    chat = chat_module(monkeypatch)
    status, _ = await get(chat.make_app(InMemoryChannelLayer()), "/_interlock/api/summary", TOKEN)
    assert status == 404


async def test_with_a_token_the_inspector_answers_only_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERLOCK_INSPECTOR_TOKEN", TOKEN)
    chat = chat_module(monkeypatch)
    app = chat.make_app(InMemoryChannelLayer())
    status, body = await get(app, "/_interlock/api/summary", TOKEN)
    assert status == 200
    assert "classes" in json.loads(body)
    assert (await get(app, "/_interlock/api/summary"))[0] == 401
    assert (await get(app, "/_interlock/api/summary", "wrong-token-of-some-length"))[0] == 403
    assert (await get(app, "/"))[0] == 200  # the page is still there
