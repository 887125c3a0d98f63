"""Run an ASGI app in a real server subprocess on 127.0.0.1 for end-to-end tests.

``backend="asyncio"`` uses uvicorn, ``backend="trio"`` uses ``hypercorn -k trio``,
``backend="daphne"`` uses daphne (asyncio; ``app_dir`` goes on ``PYTHONPATH``)::

    with serve("chat:app", backend="trio", app_dir=str(EXAMPLES)) as server:
        async with await WSClient.connect(server.host, server.port, "/ws") as ws:
            ...
        assert "Traceback" not in server.logs()

The child's stdout and stderr go to a temporary log file readable through
:meth:`RunningServer.logs` (also after the ``with`` block: the text is kept
when the file is removed).  The server is always stopped on exit: SIGTERM,
up to 5 s grace, then SIGKILL of its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

__all__ = ["RunningServer", "ServerLog", "free_port", "serve"]

HOST = "127.0.0.1"
_TERM_GRACE = 5.0
_START_ATTEMPTS = 3
_PORT_CLASH_MARKERS = ("address already in use", "errno 98", "eaddrinuse")
_PROBE = b"INTERLOCK-READINESS-PROBE\r\n\r\n"


@attrs.define
class ServerLog:
    """A server subprocess's captured output: a temp file, snapshotted when removed."""

    path: Path
    _final: str | None = None

    def read(self) -> str:
        """Return everything the server has written so far."""
        if self._final is not None:
            return self._final
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def finalize(self) -> None:
        """Keep the current text in memory and delete the file."""
        if self._final is None:
            self._final = self.read()
            with contextlib.suppress(OSError):
                self.path.unlink()


@attrs.frozen
class RunningServer:
    """A server subprocess listening on ``host:port``.

    ``kind`` is the server program (``"uvicorn"`` or ``"hypercorn"``) and
    ``backend`` the event loop it runs the app on (``"asyncio"`` or ``"trio"``).
    """

    host: str
    port: int
    process: subprocess.Popen[bytes]
    kind: str
    backend: str
    log: ServerLog = attrs.field(repr=False)

    @property
    def log_path(self) -> Path:
        """Path of the temporary file capturing the child's stdout and stderr."""
        return self.log.path

    def logs(self) -> str:
        """Return the child's captured stderr (and stdout) so far."""
        return self.log.read()

    def http_url(self, path: str = "/") -> str:
        """``http://host:port`` + ``path``."""
        return f"http://{self.host}:{self.port}{path}"

    def ws_url(self, path: str = "/") -> str:
        """``ws://host:port`` + ``path``."""
        return f"ws://{self.host}:{self.port}{path}"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind 0, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _command(
    app: str,
    backend: str,
    port: int,
    app_dir: str | None,
    workers: int,
    extra_args: Sequence[str],
) -> tuple[str, list[str]]:
    if backend == "asyncio":
        cmd = [
            sys.executable, "-m", "uvicorn", app,
            "--host", HOST, "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        if workers != 1:
            cmd += ["--workers", str(workers)]
        if app_dir is not None:
            cmd += ["--app-dir", app_dir]
        return "uvicorn", cmd + list(extra_args)
    if backend == "daphne":  # asyncio, under Twisted: the server Channels users deploy
        cmd = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), *extra_args, app]
        return "daphne", cmd
    if backend == "trio":
        cmd = [
            sys.executable, "-m", "hypercorn", "-k", "trio",
            "--bind", f"{HOST}:{port}", "--workers", str(workers),
        ]  # fmt: skip
        return "hypercorn", cmd + list(extra_args) + [app]
    raise ValueError(f"unknown backend {backend!r}: expected 'asyncio', 'trio' or 'daphne'")


def _child_env(app_dir: str | None, env: dict[str, str] | None) -> dict[str, str]:
    child = dict(os.environ)
    if env:
        child.update(env)
    child["PYTHONUNBUFFERED"] = "1"
    if app_dir is not None:
        # hypercorn has no --app-dir, and uvicorn's multiprocess workers are
        # happier with it on the path too.
        parts = [app_dir, *filter(None, [child.get("PYTHONPATH")])]
        child["PYTHONPATH"] = os.pathsep.join(parts)
    return child


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server, wait up to 5 s, then SIGKILL its process group; reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_TERM_GRACE)
    # The child leads its own session: kill stragglers (workers) and a hung parent.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _http_answers(sock: socket.socket, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Send a malformed request line; True once the server answers it (a 400)."""
    sock.sendall(_PROBE)
    while time.monotonic() < deadline and process.poll() is None:
        try:
            data = sock.recv(64)
        except TimeoutError:
            continue
        return data.startswith(b"HTTP/")
    return False


def _wait_ready(process: subprocess.Popen[bytes], port: int, deadline: float, *, probe_http: bool) -> bool:
    """Poll until the server accepts connections (True) or the process exits (False).

    Readiness is a successful TCP connect.  With ``probe_http`` the server must
    also answer a malformed request: hypercorn listens *before* its worker
    imports the app and runs lifespan startup, so a bare connect proves little
    there.  The malformed request is answered by the HTTP parser (400) without
    reaching the app, and hypercorn does not log it.  (uvicorn would log a
    warning for it; a single uvicorn process only listens once the app is
    loaded and started, so a connect suffices.)
    """
    while True:
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise TimeoutError
        try:
            with socket.create_connection((HOST, port), timeout=0.25) as sock:
                if not probe_http or _http_answers(sock, process, deadline):
                    # A connect could reach someone else's listener on a reused
                    # port: make sure our server is still alive.
                    return process.poll() is None
        except OSError:
            pass
        time.sleep(0.05)


@contextlib.contextmanager
def serve(
    app: str,
    *,
    backend: str,
    app_dir: str | None = None,
    env: dict[str, str] | None = None,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 20,
) -> Iterator[RunningServer]:
    """Run ``app`` (an import string like ``"chat:app"``) in a server on 127.0.0.1.

    ``backend="asyncio"`` starts uvicorn, ``backend="trio"`` starts
    ``hypercorn -k trio``.  ``app_dir`` is a directory to import the app from;
    ``env`` entries are added to the child's environment; ``extra_args`` are
    appended to the server's command line.

    Yields once a TCP connect to the port succeeds (for hypercorn, once it
    also answers HTTP: see :func:`_wait_ready`).  Raises
    :class:`RuntimeError` (with the captured output) if the server exits
    before listening or is not listening within ``startup_timeout`` seconds;
    a start that fails because the port was taken meanwhile is retried on a
    new port.
    """
    child_env = _child_env(app_dir, env)
    deadline = time.monotonic() + startup_timeout
    server: RunningServer | None = None
    failures: list[str] = []
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        kind, cmd = _command(app, backend, port, app_dir, workers, extra_args)
        fd, log_name = tempfile.mkstemp(prefix=f"interlock-{kind}-{port}-", suffix=".log")
        log = ServerLog(Path(log_name))
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
            )
        candidate = RunningServer(HOST, port, process, kind, backend, log)
        try:
            listening = _wait_ready(process, port, deadline, probe_http=kind == "hypercorn")
        except TimeoutError:
            _stop(process)
            log.finalize()
            raise RuntimeError(
                f"{kind} ({' '.join(cmd)}) was not listening on {HOST}:{port} "
                f"within {startup_timeout}s; output:\n{log.read()}"
            ) from None
        except BaseException:
            _stop(process)
            log.finalize()
            raise
        if listening:
            server = candidate
            break
        _stop(process)
        log.finalize()
        output = log.read()
        message = (
            f"{kind} ({' '.join(cmd)}) exited with code {process.returncode} "
            f"before accepting connections; output:\n{output}"
        )
        clash = any(marker in output.lower() for marker in _PORT_CLASH_MARKERS)
        if not clash or attempt == _START_ATTEMPTS or time.monotonic() > deadline:
            failures.append(message)
            raise RuntimeError("\n\n".join(failures))
        failures.append(f"attempt {attempt}: port clash on {port}")
    assert server is not None
    try:
        yield server
    finally:
        _stop(server.process)
        server.log.finalize()
