"""The example chat (examples/chat.py) on a RedisChannelLayer, for the end-to-end tests.

Served with ``app_dir`` set to this folder: the URL and the key prefix come from
``INTERLOCK_TEST_REDIS`` and ``INTERLOCK_TEST_PREFIX``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from chat import HISTORY, make_app
from interlock.layers import RedisChannelLayer

app = make_app(
    RedisChannelLayer(os.environ["INTERLOCK_TEST_REDIS"], prefix=os.environ["INTERLOCK_TEST_PREFIX"], history=HISTORY)
)
