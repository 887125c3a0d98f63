"""The servers the security tests run under, each with its own way of refusing a handshake.

* ``uvicorn``: default options. Its default WebSocket protocol (websockets-sansio when
  ``websockets`` is installed) logs an ERROR after a denial response, so refusals there
  are a close before accept, answered 403 without a body.
* ``uvicorn-wsproto``: ``--ws wsproto``, which sends the denial response (status, body).
* ``hypercorn``: ``hypercorn -k trio``, denial response too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["uvicorn", "uvicorn-wsproto", "hypercorn"]
BODIES = {"uvicorn": False, "uvicorn-wsproto": True, "hypercorn": True}
"""Whether a refused handshake's body (the reason) reaches the client."""


@contextmanager
def run(app: str, kind: str, env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    """Serve *app* (``module:attr`` importable from the repository root) with server *kind*."""
    backend = "trio" if kind == "hypercorn" else "asyncio"
    extra = ["--ws", "wsproto"] if kind == "uvicorn-wsproto" else []
    with serve(app, backend=backend, app_dir=str(ROOT), env=env, extra_args=extra) as server:
        yield server


def assert_clean(logs: str) -> None:
    """The server logged no error and no traceback."""
    assert "Traceback" not in logs, logs
    assert "ERROR" not in logs, logs
