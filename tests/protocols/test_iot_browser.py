"""The IoT example end to end: sensors → Mosquitto → the aggregator → the group → a dashboard in Chromium.

Real processes: ``examples/iot/app.py`` (uvicorn and the MQTT connection) and
``examples/iot/sensors.py``, on a topic prefix of the test's own; the page is Debian's
``chromium`` driven by Playwright (its sync API: plain functions).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from interlock.actors.mqtt import MqttConnection
from playwright.sync_api import Browser, expect

from .support import BROKER, free_port, needs_broker, unique_prefix

IOT = Path(__file__).resolve().parents[2] / "examples" / "iot"
pytestmark = [pytest.mark.e2e, needs_broker]


@pytest.fixture(scope="module")
def iot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    directory = tmp_path_factory.mktemp("iot")
    prefix = unique_prefix().replace("/", "-")
    env = {**os.environ, "INTERLOCK_IOT_PREFIX": prefix}
    port = free_port()
    logs = {name: directory / f"{name}.log" for name in ("app", "sensors")}
    with logs["app"].open("wb") as out:
        app = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=IOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    with logs["sensors"].open("wb") as out:
        sensors = subprocess.Popen(
            [sys.executable, "sensors.py", "--interval", "0.2", "--count", "600"],
            cwd=IOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while b"Uvicorn running" not in logs["app"].read_bytes():
        if app.poll() is not None or time.monotonic() > deadline:
            app.kill()
            sensors.kill()
            pytest.fail(f"the IoT app did not start: {logs['app'].read_text()}")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "prefix": prefix, "logs": logs}
    finally:
        for process in (sensors, app):
            process.send_signal(signal.SIGINT)
        for process in (sensors, app):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            assert "Traceback" not in log.read_text(), log.read_text()


def publish(prefix: str, topic: str, payload: str) -> None:
    async def send() -> None:
        async with MqttConnection(BROKER) as connection:
            await connection.publish(f"{prefix}/{topic}", payload, qos=1)

    # Playwright's sync API keeps an event loop running in this thread: publish from another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, send).result(10)


def test_the_dashboard_shows_live_readings_and_sends_allowed_commands(browser: Browser, iot: dict[str, object]) -> None:
    prefix = str(iot["prefix"])
    errors: list[str] = []
    page = browser.new_context().new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(str(iot["url"]))
    expect(page.locator("#status")).to_have_text("live", timeout=5000)
    for sensor in ("s1", "s2", "s3"):
        expect(page.locator(f"#sensor-{sensor} [data-field=kind]")).to_have_text("temperature", timeout=10000)
    count = page.locator("#sensor-s1 [data-field=count]")
    first = int(count.inner_text())
    expect(count).not_to_have_text(str(first), timeout=5000)  # live: the count moves on

    # A reading that is not JSON is skipped by the aggregator; the dashboard goes on.
    publish(prefix, "sensors/s1/temperature", "not json")
    publish(prefix, "sensors/s9/temperature", '{"value": 99.5, "unit": "°C"}')
    expect(page.locator("#sensor-s9 [data-field=value]")).to_have_text("99.50", timeout=5000)

    # The blink button publishes to the device's command topic; the simulated device answers.
    page.click("#sensor-s2 button.blink")
    expect(page.locator("#sensor-s2 [data-field=state]")).to_have_text("blinking", timeout=5000)

    # A topic off the allow-list: the page is told, and nothing is published (had it been, the
    # aggregator, subscribed to every sensor topic, would show -1 as s1's minimum).
    page.fill("input[name=topic]", f"{prefix}/sensors/s1/temperature")
    page.fill("input[name=payload]", '{"value": -1}')
    page.click("#publish button")
    expect(page.locator("#error")).to_contain_text(
        f"publishing to '{prefix}/sensors/s1/temperature' is not allowed: the bridge publishes only to "
        f"'{prefix}/devices/+/command'",
        timeout=5000,
    )
    page.wait_for_timeout(500)
    assert page.locator("#sensor-s1 [data-field=min]").inner_text() != "-1.00"
    assert errors == []
    logs = iot["logs"]
    assert isinstance(logs, dict)
    assert "skipped a reading on" in logs["app"].read_text()
