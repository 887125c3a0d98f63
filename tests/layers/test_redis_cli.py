"""``interlock layer groups|members|processes|prune`` on a Redis URL."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import pytest
from interlock.layers import RedisChannelLayer
from interlock.layers import _cli as cli

from .redis_support import REDIS_URL, delete_prefix, redis_is_up, unique_prefix

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]


@pytest.fixture
def deployment() -> Iterator[tuple[str, str, str]]:
    """A prefix holding one process (its loop ended without close: it stays registered) in a room."""
    prefix = unique_prefix()

    async def setup() -> tuple[str, str]:
        layer = RedisChannelLayer(REDIS_URL, prefix=prefix)
        channel = await layer.new_channel("ws")
        await layer.group_add("chat.lobby", channel)
        await layer.group_add("chat.lobby", "worker.archive")
        return layer.process, channel

    process, channel = anyio.run(setup)
    yield prefix, process, channel
    anyio.run(delete_prefix, prefix)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_groups_members_processes_and_prune(
    deployment: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix, process, channel = deployment
    assert run(capsys, "layer", "--prefix", prefix, "groups", REDIS_URL) == (0, "chat.lobby  2\n", "")
    status, out, _ = run(capsys, "layer", "--prefix", prefix, "members", REDIS_URL, "chat.lobby")
    assert (status, out.splitlines()) == (0, sorted([channel, "worker.archive"]))
    status, out, _ = run(capsys, "layer", "--prefix", prefix, "processes", REDIS_URL)
    header, row = out.splitlines()
    assert header.split()[:3] == ["PROCESS", "PID", "HOST"]
    assert row.startswith(process)
    assert "alive (lease ends in" in row
    status, out, _ = run(capsys, "layer", "--prefix", prefix, "prune", REDIS_URL)
    assert (status, out) == (0, "dead processes pruned: 0 (none)\nmemberships removed: 0\n")


def test_another_prefix_is_another_layer(deployment: tuple[str, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "layer", "--prefix", unique_prefix(), "groups", REDIS_URL) == (0, "", "")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # coredis, on a refused connection
def test_nothing_listening_is_an_error_naming_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "layer", "groups", "redis://127.0.0.1:1/0")
    assert (status, out) == (1, "")
    assert err.startswith("interlock layer groups: ")
    assert "redis://127.0.0.1:1/0" in err
    gc.collect()  # the client's garbage, here under this test's filter rather than in the next test


def test_a_bad_group_name_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "layer", "members", REDIS_URL, "has space")
    assert status == 1
    assert "invalid group name 'has space'" in err
