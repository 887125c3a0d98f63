"""Background workers: ``run_worker`` and the ``Actor`` it serves (``actors/_worker.py``)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from interlock.actors import (
    Actor,
    ASGIApp,
    ChannelNameRouter,
    Message,
    Receive,
    Scope,
    Send,
    StopActor,
    WorkerStopped,
    handler,
    run_worker,
)
from interlock.layers import InMemoryChannelLayer, InvalidChannelName, SQLiteChannelLayer

WAIT = 10.0  # seconds a wait on another process may take before the test fails


class Worker(Actor):
    """Does jobs sent to its named channel and reports to the ``results`` channel."""

    async def report(self, message: dict[str, Any]) -> None:
        await self.channel_layer.send("results", message)

    @handler
    async def job_run(self, message: Message) -> None:
        await self.report({"type": "job.done", "worker": self.scope["channel"], "n": message["n"]})

    @handler
    async def job_reply(self, message: Message) -> None:
        try:
            await self.send({"type": "websocket.send", "text": "hello"})
        except RuntimeError as exc:
            await self.report({"type": "job.error", "error": str(exc)})

    @handler
    def job_reply_sync(self, message: Message) -> None:
        try:
            self.send({"type": "websocket.send", "text": "hello"})
        except RuntimeError as exc:
            anyio.from_thread.run(self.report, {"type": "job.error", "error": str(exc)})

    @handler
    async def job_fail(self, message: Message) -> None:
        await self.report({"type": "job.started"})
        self.send({"type": "never.sent"})  # recorded, not flushed: dropped with the failure
        raise KeyError(message["missing"])

    @handler
    def job_fail_sync(self, message: Message) -> None:
        msg = "the sync handler failed"
        raise ValueError(msg)

    @handler
    async def job_stop(self, message: Message) -> None:
        raise StopActor(message.get("why", "asked to stop"))


def worker_app(**apps: ASGIApp) -> ChannelNameRouter:
    """``worker.alpha`` and ``worker.beta`` served by ``Worker``, unless *apps* says otherwise."""
    mapping: dict[str, ASGIApp] = {"worker.alpha": Worker.as_asgi(), "worker.beta": Worker.as_asgi()}
    mapping.update({name.replace("_", "."): app for name, app in apps.items()})
    return ChannelNameRouter(mapping)


async def test_run_worker_serves_named_channels() -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha", "worker.beta"], layer)
        for n, channel in enumerate(["worker.alpha", "worker.beta", "worker.alpha"]):
            await layer.send(channel, {"type": "job.run", "n": n})
        with anyio.fail_after(2):
            results = [await layer.receive("results") for _ in range(3)]
        tasks.cancel_scope.cancel()
    assert sorted((result["n"], result["worker"]) for result in results) == [
        (0, "worker.alpha"),
        (1, "worker.beta"),
        (2, "worker.alpha"),
    ]


@pytest.mark.parametrize("job", ["job.reply", "job.reply_sync"])
async def test_a_workers_send_raises_a_clear_runtime_error(job: str) -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha"], layer)
        await layer.send("worker.alpha", {"type": job})
        await layer.send("worker.alpha", {"type": "job.run", "n": 1})  # the worker goes on
        with anyio.fail_after(2):
            error = await layer.receive("results")
            done = await layer.receive("results")
        tasks.cancel_scope.cancel()
    assert error["type"] == "job.error"
    assert "a worker has no client to send 'websocket.send' to" in error["error"]
    assert "self.channel_layer" in error["error"]
    assert done == {"type": "job.done", "worker": "worker.alpha", "n": 1}


@pytest.mark.parametrize(
    ("channels", "error", "message"),
    [
        ("worker.alpha", TypeError, "takes a list of channel names, not the str 'worker.alpha'"),
        ([], ValueError, "needs at least one channel name"),
        (["worker alpha"], InvalidChannelName, "invalid channel name 'worker alpha'"),
        (["worker.alpha", ""], InvalidChannelName, "it is empty"),
    ],
)
async def test_run_worker_argument_errors(channels: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        await run_worker(worker_app(), channels, InMemoryChannelLayer())
    assert message in str(info.value)


def test_invalid_channel_name_is_a_value_error() -> None:
    assert issubclass(InvalidChannelName, ValueError)


# -- a handler's failure: logged, and the worker goes on -------------------------------------------


@pytest.mark.parametrize(
    ("job", "error"),
    [
        ("job.fail", "KeyError: 'missing'"),
        ("job.fail_sync", "ValueError: the sync handler failed"),
    ],
)
async def test_a_failing_handler_is_logged_and_the_worker_goes_on(
    job: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="interlock.actors")
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha", "worker.beta"], layer)
        await layer.send("worker.alpha", {"type": job, "missing": "missing", "blob": "x" * 10_000})
        await layer.send("worker.alpha", {"type": "job.run", "n": 1})
        await layer.send("worker.beta", {"type": "job.run", "n": 2})
        with anyio.fail_after(2):
            results = [await layer.receive("results") for _ in range(3 if job == "job.fail" else 2)]
        tasks.cancel_scope.cancel()
    done = sorted((result["n"], result["worker"]) for result in results if result["type"] == "job.done")
    assert done == [(1, "worker.alpha"), (2, "worker.beta")]
    [record] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    text = record.getMessage()
    assert text.startswith("<Worker channel=")
    assert f"failed on a {job!r} message from channel 'worker.alpha' and goes on serving: {error}" in text
    assert f"the message: {{'type': {job!r}, 'missing': 'missing', 'blob': 'xxx" in text
    assert "(10" in text  # the repr's length, not the repr
    assert len(text) < 800
    assert record.exc_info is not None


@pytest.mark.parametrize(
    "job",
    [
        "job.unknown",
        "report",  # a public method, not marked @handler
        "websocket.disconnect",  # on a channel, not the last event
        "lifespan.shutdown",
    ],
)
async def test_an_unknown_type_is_dropped_with_a_warning_and_the_worker_goes_on(
    job: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = InMemoryChannelLayer()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha"], layer)
        await layer.send("worker.alpha", {"type": job})
        await layer.send("worker.alpha", {"type": "job.run", "n": 1})
        with anyio.fail_after(2):
            assert (await layer.receive("results"))["n"] == 1
        tasks.cancel_scope.cancel()
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert f"dropped an event: Worker cannot handle message type {job!r}" in record.getMessage()
    assert record.exc_info is None


async def test_a_worker_failing_on_every_message_keeps_its_channel_drained() -> None:
    """The issue's second symptom: a dead channel made senders hit ChannelFull after 100."""
    layer = InMemoryChannelLayer(capacity=10)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_worker, worker_app(), ["worker.alpha"], layer)
        with anyio.fail_after(5):
            for n in range(30):
                await layer.send("worker.alpha", {"type": "job.fail_sync"})
                await layer.send("worker.alpha", {"type": "job.run", "n": n})
                assert (await layer.receive("results"))["n"] == n
        tasks.cancel_scope.cancel()


# -- an application that ends: run_worker raises WorkerStopped -------------------------------------


def tracking(cancelled: list[str]) -> ASGIApp:
    """An app that serves its channel forever and records its cancellation."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while True:
                await receive()
        except anyio.get_cancelled_exc_class():
            cancelled.append(scope["channel"])
            raise

    return app


async def raises(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    msg = f"cannot do {message['type']}"
    raise ValueError(msg)


async def returns(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def test_run_worker_raises_when_an_application_raises() -> None:
    cancelled: list[str] = []
    layer = InMemoryChannelLayer()
    await layer.send("worker.beta", {"type": "job.run"})
    with anyio.fail_after(2), pytest.raises(WorkerStopped) as info:
        await run_worker(
            worker_app(worker_alpha=tracking(cancelled), worker_beta=raises), ["worker.alpha", "worker.beta"], layer
        )
    assert info.value.channel == "worker.beta"
    assert str(info.value) == (
        "the worker for channel 'worker.beta' stopped: its application raised ValueError: cannot do job.run; "
        "a worker's application must serve its channel until run_worker() is cancelled, so the other "
        "channels were stopped too"
    )
    assert isinstance(info.value.__cause__, ValueError)
    assert cancelled == ["worker.alpha"]
    assert isinstance(info.value, RuntimeError)


async def test_run_worker_raises_when_an_application_returns() -> None:
    cancelled: list[str] = []
    layer = InMemoryChannelLayer()
    await layer.send("worker.alpha", {"type": "job.run"})
    with anyio.fail_after(2), pytest.raises(WorkerStopped, match=r"'worker\.alpha' stopped: its application returned;"):
        await run_worker(
            worker_app(worker_alpha=returns, worker_beta=tracking(cancelled)), ["worker.alpha", "worker.beta"], layer
        )
    assert cancelled == ["worker.beta"]


async def test_a_handlers_stop_actor_stops_the_worker() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("worker.beta", {"type": "job.stop", "why": "quota reached"})
    with anyio.fail_after(2), pytest.raises(WorkerStopped) as info:
        await run_worker(worker_app(), ["worker.alpha", "worker.beta"], layer)
    assert "the worker for channel 'worker.beta' stopped: a handler raised StopActor('quota reached');" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, StopActor)


async def test_an_actor_whose_channel_fails_stops_the_worker() -> None:
    async def failing_receive() -> Message:
        msg = "the layer lost its connection"
        raise OSError(msg)

    async def broken_channel(scope: Scope, receive: Receive, send: Send) -> None:
        await Worker.as_asgi()(scope, failing_receive, send)

    with anyio.fail_after(2), pytest.raises(WorkerStopped) as info:
        await run_worker(
            worker_app(worker_beta=broken_channel), ["worker.alpha", "worker.beta"], InMemoryChannelLayer()
        )
    assert "'worker.beta' stopped: its application raised OSError: the layer lost its connection;" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


async def test_a_cancelled_worker_raises_only_the_cancellation() -> None:
    with anyio.move_on_after(0.2) as scope:
        await run_worker(worker_app(), ["worker.alpha", "worker.beta"], InMemoryChannelLayer())
    assert scope.cancelled_caught


# -- in real processes, over the SQLite layer --------------------------------------------------------

WORKER_SCRIPT = """
import sys

import anyio

from interlock.actors import Actor, StopActor, handler, run_worker
from interlock.layers import SQLiteChannelLayer


async def raises(scope, receive, send):
    message = await receive()
    raise ValueError(f"cannot do {message['type']}")


class Jobs(Actor):
    @handler
    async def job_fail(self, message):
        raise KeyError("missing")

    @handler
    async def job_run(self, message):
        await self.channel_layer.send(message["reply_to"], {"type": "job.done", "n": message["n"]})

    @handler
    async def job_stop(self, message):
        raise StopActor("asked to stop")


path, app, backend = sys.argv[1:]
application = raises if app == "raises" else Jobs.as_asgi()
anyio.run(run_worker, application, ["jobs", "other"], SQLiteChannelLayer(path), backend=backend)
"""


@pytest.fixture
def worker_script(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT))
    return script


async def test_a_worker_process_whose_app_raises_exits_non_zero(
    tmp_path: Path, worker_script: Path, anyio_backend: str
) -> None:
    command = [sys.executable, str(worker_script), str(tmp_path / "layer.sqlite3"), "raises", anyio_backend]
    async with SQLiteChannelLayer(tmp_path / "layer.sqlite3") as layer:
        await layer.send("jobs", {"type": "job.go"})
        with anyio.fail_after(WAIT):
            done = await anyio.run_process(command, check=False)
    stderr = done.stderr.decode()
    assert done.returncode != 0, stderr
    assert "ValueError: cannot do job.go" in stderr
    assert "WorkerStopped: the worker for channel 'jobs' stopped: its application raised ValueError" in stderr


async def test_a_worker_process_serves_on_after_a_failure_until_stop_actor(
    tmp_path: Path, worker_script: Path, anyio_backend: str
) -> None:
    command = [sys.executable, str(worker_script), str(tmp_path / "layer.sqlite3"), "jobs", anyio_backend]
    results: list[subprocess.CompletedProcess[bytes]] = []

    async def run() -> None:
        results.append(await anyio.run_process(command, check=False))

    with anyio.fail_after(WAIT * 2):
        async with SQLiteChannelLayer(tmp_path / "layer.sqlite3") as layer, anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            inbox = await layer.new_channel()
            for n in range(3):
                await layer.send("jobs", {"type": "job.fail"})
                await layer.send("jobs", {"type": "job.run", "n": n, "reply_to": inbox})
                assert await layer.receive(inbox) == {"type": "job.done", "n": n}
            await layer.send("jobs", {"type": "job.stop"})
    [done] = results
    stderr = done.stderr.decode()
    assert done.returncode != 0, stderr
    assert stderr.count("failed on a 'job.fail' message from channel 'jobs' and goes on serving: KeyError") == 3
    assert "WorkerStopped: the worker for channel 'jobs' stopped: a handler raised StopActor('asked to stop')" in stderr
