"""One uvicorn process of ``bench/scale.py``: the file limit raised, then ``uvicorn.run``.

Run by the runner as ``python bench/scale_server.py APP PORT LOOP``. With ``SCALE_PROFILE``
set to a path, the process runs under cProfile and writes its statistics there at exit.
"""

from __future__ import annotations

import cProfile
import os
import resource
import sys
from pathlib import Path

import uvicorn


def raise_file_limit() -> None:
    """Raise RLIMIT_NOFILE to its hard limit (20,000 here)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    """Serve ``scale_apps:make_APP`` on 127.0.0.1:PORT."""
    app, port, loop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    raise_file_limit()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    profile = os.environ.get("SCALE_PROFILE")
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        uvicorn.run(
            f"scale_apps:make_{app}", factory=True, host="127.0.0.1", port=port, loop=loop,  # type: ignore[arg-type]
            ws="websockets", ws_per_message_deflate=False, lifespan="off", log_level="warning",
            access_log=False, backlog=4096, timeout_graceful_shutdown=30,
        )  # fmt: skip
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)


if __name__ == "__main__":
    main()
