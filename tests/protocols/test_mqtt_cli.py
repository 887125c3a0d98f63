"""``interlock mqtt`` and ``interlock diagram`` for MQTT, as a user runs them (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .support import needs_broker

ROOT = Path(__file__).resolve().parents[2]
INTERLOCK = str(Path(sys.executable).with_name("interlock"))


def run(*args: str, cwd: Path = ROOT, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INTERLOCK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def test_diagram_of_the_connection_lifecycle() -> None:
    done = run("diagram", "interlock.actors.mqtt:MqttConnection")
    assert done.returncode == 0, done.stderr
    assert "reconnecting --> connected: CONNACK success" in done.stdout


def test_an_unreachable_broker_exits_1_naming_it() -> None:
    done = run("mqtt", "app:mqtt_app", "--broker", "mqtt://127.0.0.1:1", cwd=ROOT / "examples" / "iot")
    assert done.returncode == 1
    assert "MQTT broker mqtt://127.0.0.1:1 is unavailable" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["app:nothing"], "module 'app' has no attribute 'nothing'"),
        (["app:Aggregator"], "is a class; point at an app"),
        (["app:mqtt_app", "--broker", "http://x"], "expected mqtt://host[:port]"),
    ],
)
def test_usage_errors_exit_2(args: list[str], words: str) -> None:
    done = run("mqtt", *args, cwd=ROOT / "examples" / "iot")
    assert done.returncode == 2, done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr


@needs_broker
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serves_until_sigint_then_exits_0(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "mqtt.log"
    env = {**os.environ, "INTERLOCK_IOT_PREFIX": f"cli-{backend}"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [INTERLOCK, "mqtt", "app:mqtt_app", "--backend", backend, "--client-id", f"cli-test-{backend}"],
            cwd=ROOT / "examples" / "iot",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while "mqtt: serving" not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    text = log.read_text()
    assert f"cli-{backend}/sensors/+/+, cli-{backend}/devices/+/state" in text
    assert f"as cli-test-{backend}" in text
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0
    assert "Traceback" not in log.read_text()
