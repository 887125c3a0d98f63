"""Helpers for the protocol tests: a broker of one's own, unique topics, waiting for conditions."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

BROKER = "mqtt://127.0.0.1:1883"


def broker_running(port: int = 1883) -> bool:
    """Whether an MQTT broker listens on 127.0.0.1:*port*."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


needs_broker = pytest.mark.skipif(not broker_running(), reason="no MQTT broker on 127.0.0.1:1883 (.ci/run starts one)")
needs_mosquitto = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed")


def unique_prefix() -> str:
    """A topic prefix no other test (or run) uses on the shared broker."""
    return f"interlock-test/{secrets.token_hex(4)}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """A Mosquitto of the test's own, on *port*, that can be stopped and started again."""

    def __init__(self, directory: Path, port: int, *, anonymous: bool = True) -> None:
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.config = directory / f"mosquitto-{port}.conf"
        self.config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous {'true' if anonymous else 'false'}\n")
        self.log = directory / f"mosquitto-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not broker_running(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                msg = f"mosquitto did not start on {self.port}: {self.log.read_text()}"
                raise RuntimeError(msg)
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@contextmanager
def mosquitto(directory: Path, *, anonymous: bool = True) -> Iterator[Mosquitto]:
    """Run a Mosquitto of one's own for the block (refusing anonymous clients if not *anonymous*)."""
    broker = Mosquitto(directory, free_port(), anonymous=anonymous)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "the condition") -> None:
    """Poll *condition* until true; fail the test past *timeout*."""
    with anyio.move_on_after(timeout):
        while not condition():  # noqa: ASYNC110 - conditions on plain data, set by other tasks
            await anyio.sleep(0.01)
        return
    pytest.fail(f"timed out after {timeout} s waiting for {what}")
