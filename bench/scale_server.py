"""One uvicorn process of ``bench/scale.py``: the file limit raised, then ``uvicorn.run``.

Run by the runner as ``python bench/scale_server.py APP PORT LOOP``. With ``SCALE_PROFILE``
set to a path, the process runs cProfile between two ``SIGUSR2`` (the runner sends them
before the bursts and after) and writes its statistics there at exit;
with ``SCALE_GCLOG`` set to a path, it writes there each garbage collection's start
(``time.monotonic()``), generation, milliseconds and objects collected; with ``SCALE_GC=off``
it runs without the collector.
"""

from __future__ import annotations

import cProfile
import os
import resource
import signal
import sys
from pathlib import Path

import uvicorn


def raise_file_limit() -> None:
    """Raise RLIMIT_NOFILE to its hard limit (20,000 here)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def log_collections(path: str) -> None:
    """Write every garbage collection's generation and duration to *path* at exit."""
    import atexit  # noqa: PLC0415 - only when asked
    import gc  # noqa: PLC0415
    import time  # noqa: PLC0415

    started: list[float] = [0.0]
    seen: list[tuple[float, int, float, int]] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        else:
            seen.append((started[0], info["generation"], time.monotonic() - started[0], info["collected"]))

    gc.callbacks.append(callback)

    def write() -> None:
        with Path(path).open("w") as out:
            for at, generation, seconds, collected in seen:
                out.write(f"{at:.6f} {generation} {seconds * 1000:.3f} {collected}\n")

    atexit.register(write)


def _freeze(*_: object) -> None:
    """Move every object alive now to the collector's permanent generation (``gc.freeze()``)."""
    import gc  # noqa: PLC0415 - only when asked

    gc.freeze()


def main() -> None:
    """Serve ``scale_apps:make_APP`` on 127.0.0.1:PORT."""
    app, port, loop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    raise_file_limit()
    # uvicorn raises the signal again once it has shut down: let that be a clean exit,
    # so that the profile and the collections' log are written
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGUSR1, _freeze)  # scale.py --freeze: once every connection is open
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if os.environ.get("SCALE_GC") == "off":  # an experiment: what the collector costs
        import gc  # noqa: PLC0415

        gc.disable()
    if os.environ.get("SCALE_GCLOG"):
        log_collections(os.environ["SCALE_GCLOG"])
    profile = os.environ.get("SCALE_PROFILE")
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:  # scale.py --profile: SIGUSR2 before the bursts and after them
        running = [False]

        def toggle(*_: object) -> None:
            running[0] = not running[0]
            profiler.enable() if running[0] else profiler.disable()

        signal.signal(signal.SIGUSR2, toggle)
    try:
        uvicorn.run(
            f"scale_apps:make_{app}", factory=True, host="127.0.0.1", port=port, loop=loop,
            ws="websockets", ws_per_message_deflate=False, lifespan="off", log_level="warning",
            access_log=False, backlog=4096, timeout_graceful_shutdown=30,
        )  # fmt: skip
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)


if __name__ == "__main__":
    main()
