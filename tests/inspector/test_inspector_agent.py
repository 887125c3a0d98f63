"""The inspector's agent in process: the directory group, asks between two layer instances, errors.

Two ``SQLiteChannelLayer`` instances on one file are two processes to the layer (each its
own lease and channels), so two agents in one test stand for two processes; the servers'
end-to-end test is ``test_inspector_processes.py``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from interlock.actors import ProtocolTypeRouter, URLRouter, path
from interlock.actors._inspect_agent import GROUP, SUMMARY, AgentUnreachable, agent_for, inspectors_in
from interlock.actors.inspector import Inspector
from interlock.actors.security import AllowedHostsOriginValidator
from interlock.layers import InMemoryChannelLayer, SQLiteChannelLayer

TOKEN = "a-token-of-enough-length"


async def test_an_inspector_joins_the_directory_and_leaves_it(tmp_path: Path) -> None:
    async with SQLiteChannelLayer(tmp_path / "layer.sqlite3") as layer:
        inspector = Inspector(token=TOKEN, channel_layer=layer)
        await inspector.start()
        await inspector.start()  # idempotent
        agent = agent_for(layer)
        assert agent.process is not None
        assert await agent.members() == {agent.process: agent.channel}
        assert len(await layer.group_members(GROUP)) == 1
        await inspector.stop()
        assert await layer.group_members(GROUP) == frozenset()


async def test_one_process_asks_another_and_a_closed_one_is_gone(tmp_path: Path) -> None:
    file = tmp_path / "layer.sqlite3"
    async with SQLiteChannelLayer(file) as here, SQLiteChannelLayer(file) as there:
        mine, theirs = agent_for(here), agent_for(there)
        await mine.start()
        await theirs.start()
        assert theirs.process is not None
        assert set(await mine.members()) == {mine.process, theirs.process}
        channel = await mine.channel_of(theirs.process)
        content = await mine.ask(channel, {"type": SUMMARY, "query": {"limit": ["0"]}})
        assert content["process"]["id"] == theirs.process
        assert content["actors"] == []
        rows = await mine.processes(watch=False)
        assert [row["id"] for row in rows] == [mine.process, theirs.process]
        assert [row["this"] for row in rows] == [True, False]

        with pytest.raises(AgentUnreachable, match="failed to answer: ValueError"):  # a bad filter, theirs to say
            await mine.ask(channel, {"type": SUMMARY, "query": {"limit": ["many"]}})
        with pytest.raises(AgentUnreachable, match=r"answers 'interlock\.inspector\.summary'"):
            await mine.ask(channel, {"type": "interlock.inspector.nonsense"})
        with pytest.raises(LookupError, match="no inspecting process 'nope'"):
            await mine.channel_of("nope")

        await theirs.stop()
        with anyio.fail_after(5), pytest.raises(AgentUnreachable, match="gone"):  # at once: SQLite watches peers
            await mine.ask(channel, {"type": SUMMARY, "query": {}})
        assert set(await mine.members()) == {mine.process}


def test_the_routers_find_the_inspectors_mounted_in_them() -> None:
    first, second = Inspector(token=TOKEN), Inspector(token=TOKEN)
    app = ProtocolTypeRouter(
        {
            "http": URLRouter([*first.routes("_i/"), path("api/", URLRouter(second.routes("inner/")))]),
            "websocket": AllowedHostsOriginValidator(URLRouter([])),
        },
        channel_layer=InMemoryChannelLayer(),
    )
    assert {id(found) for found in inspectors_in(app)} == {id(first), id(second)}
    assert list(inspectors_in(URLRouter([]))) == []
