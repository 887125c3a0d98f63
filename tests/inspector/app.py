"""The chat example's actors, plus the state-machine chat, with the inspector mounted.

Served by the e2e tests as ``tests.inspector.app:app`` (uvicorn, or hypercorn -k trio):

* ``/`` and ``/api/rooms...``: the chat example's page, room listing and feeds;
* ``/ws/chat/<room>/``: the chat example's :class:`ChatActor`;
* ``/ws/state/``: the state-machine chat's :class:`StateChat` (a state actor, so the
  inspector shows its transitions);
* ``/_interlock/``: the inspector, with the token :data:`TOKEN`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from chat import ChatActor, make_http, make_layer  # noqa: E402 - examples/ goes on sys.path first
from interlock.actors import ProtocolTypeRouter, URLRouter, path  # noqa: E402
from interlock.actors.inspector import Inspector  # noqa: E402
from statechat import StateChat  # noqa: E402

TOKEN = os.environ.get("INSPECTOR_TOKEN", "test-inspector-token-0123456789")

layer = make_layer()  # INTERLOCK_CHAT_LAYER: memory in the tests
inspector = Inspector(token=TOKEN, interval=float(os.environ.get("INSPECTOR_INTERVAL", "0.25")))
chat_http = make_http(layer)

app = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                *inspector.routes("_interlock/"),
                path("", chat_http),
                path("<path:rest>", chat_http),
            ]
        ),
        "websocket": URLRouter(
            [
                path("ws/chat/<str:room>/", ChatActor.as_asgi()),
                path("ws/state/", StateChat.as_asgi()),
            ]
        ),
    },
    channel_layer=layer,
)
