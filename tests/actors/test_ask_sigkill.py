"""An ask to an actor whose process is SIGKILLed ends with PeerGone within the lease's grace.

The asked actor runs in a real server process (uvicorn on asyncio, hypercorn -k trio on
trio) on a SQLite file or a Redis prefix, with a lease and a grace of 0.3 s each; the asker
runs here, on its own layer instance on the same file or prefix, and asks for an answer that
would take a minute. The server is killed with SIGKILL mid-ask: the asker gets ``PeerGone``
(reason ``lease``) once the dead process is pruned, long before the ask's 30 s timeout.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from interlock.actors import PeerGone, ProtocolTypeRouter
from interlock.actors.testing import WebsocketCommunicator
from interlock.layers import RedisChannelLayer, SQLiteChannelLayer

from tests.actors.test_ask import Asker, redis_is_up
from tests.support.servers import serve
from tests.support.wsclient import WSClient

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "kind",
    ["sqlite", pytest.param("redis", marks=pytest.mark.skipif(not redis_is_up(), reason="needs Redis"))],
)
async def test_the_asker_hears_of_a_killed_process_within_the_grace(
    kind: str, anyio_backend: str, tmp_path: Path
) -> None:
    db, prefix = tmp_path / "ask.sqlite3", f"interlock-test:{secrets.token_hex(6)}"
    env = {"ASK_LAYER": kind, "ASK_DB": str(db), "ASK_PREFIX": prefix}
    layer: Any = (
        RedisChannelLayer("redis://127.0.0.1:6379/0", prefix=prefix, lease=0.3, grace=0.3)
        if kind == "redis"
        else SQLiteChannelLayer(db, lease=0.3, grace=0.3)
    )
    with serve("ask_app:app", backend=anyio_backend, app_dir=str(HERE), env=env) as server:
        async with await WSClient.connect(server.host, server.port, "/") as asked:
            await asked.send_json({})
            channel = (await asked.receive_json())["channel"]
            app = ProtocolTypeRouter({"websocket": Asker.as_asgi()}, channel_layer=layer)
            async with WebsocketCommunicator(app, "/", timeout=30) as asker:
                assert (await asker.connect()).accepted
                await asker.send_json_to({"to": channel, "message": {"type": "slow", "seconds": 60}, "timeout": 30})
                await asker.receive_nothing(0.5)  # the ask is under way
                killed = time.monotonic()
                os.killpg(server.process.pid, signal.SIGKILL)
                reply = await asker.receive_json_from(timeout=25)
                waited = time.monotonic() - killed
    await layer.close()
    assert reply["error"] == PeerGone.__name__, reply
    assert "gone (lease)" in reply["text"]
    assert waited < 10, f"PeerGone came {waited:.1f} s after the kill (lease 0.3 s + grace 0.3 s)"
