"""The Redis layer's lean connection (layers/_redis_resp.py), against the real local Redis.

What it must keep: replies in order under concurrent callers (auto-pipelining), the stream
in step when a caller gives up, scripts reloaded when Redis lost them, a clear error from a
port that is not Redis, and a new connection after the server closed the old one.
"""

from __future__ import annotations

import re
import secrets
import time

import anyio
import anyio.abc
import pytest
from interlock.layers._redis_hot import CoredisHot, LeanHot, make_hot
from interlock.layers._redis_resp import Resp, RespError, RespProtocolError, Script, _Reader, lean_address, parse

from .redis_support import REDIS_URL, WAIT, redis_is_up

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_is_up(), reason="needs the Redis server on 127.0.0.1:6379"),
]


def _key() -> str:
    return f"interlock-test:resp:{secrets.token_hex(6)}"


async def test_concurrent_callers_each_get_their_own_reply() -> None:
    resp = Resp(REDIS_URL, WAIT)
    key = _key()
    got: dict[int, object] = {}

    async def one(n: int) -> None:
        got[n] = await resp.execute("ECHO", f"reply {n}")
        got[-n - 1] = await resp.execute("RPUSH", key, n)

    try:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:
                for n in range(200):
                    tasks.start_soon(one, n)
        assert all(got[n] == f"reply {n}".encode() for n in range(200))
        assert sorted(int(x) for x in await resp.execute("LRANGE", key, 0, -1)) == list(range(200))
    finally:
        await resp.execute("DEL", key)
        await resp.aclose()


async def test_a_caller_that_gives_up_leaves_the_stream_in_step() -> None:
    resp = Resp(REDIS_URL, WAIT)
    key = _key()
    try:
        with anyio.move_on_after(0.05) as scope:
            await resp.execute("BLPOP", key, "0.3")  # nothing comes: the caller gives up first
        assert scope.cancelled_caught
        assert await resp.execute("ECHO", "next") == b"next"  # not the BLPOP's nil
    finally:
        await resp.aclose()


async def test_a_script_redis_lost_is_loaded_again() -> None:
    resp = Resp(REDIS_URL, WAIT)
    script = Script(f"return '{secrets.token_hex(4)}' .. ARGV[1]")
    try:
        first = await resp.script(script, [], ["x"])
        await resp.execute("SCRIPT", "FLUSH")
        assert await resp.script(script, [], ["x"]) == first
    finally:
        await resp.aclose()


async def test_an_error_reply_is_raised_and_the_connection_goes_on() -> None:
    resp = Resp(REDIS_URL, WAIT)
    try:
        with pytest.raises(RespError, match="unknown command"):
            await resp.execute("NOSUCHCOMMAND")
        assert await resp.execute("PING") == b"PONG"
    finally:
        await resp.aclose()


async def test_a_port_that_is_not_redis_is_a_protocol_error() -> None:
    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, answer)
        resp = Resp(f"redis://127.0.0.1:{port}/0", WAIT)
        expected = re.escape("not a Redis reply: b'HTTP/1.1 400")
        with anyio.fail_after(WAIT), pytest.raises(RespProtocolError, match=expected):
            await resp.execute("PING")
        await resp.aclose()
        tasks.cancel_scope.cancel()
    await listener.aclose()


async def test_a_closed_connection_fails_its_callers_and_the_next_command_reconnects() -> None:
    resp = Resp(REDIS_URL, WAIT)
    try:
        name = f"interlock-test-{secrets.token_hex(4)}"
        await resp.execute("CLIENT", "SETNAME", name)
        killer = Resp(REDIS_URL, WAIT)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tasks:

                async def waits() -> None:
                    with pytest.raises(ConnectionError):
                        await resp.execute("BLPOP", _key(), 5)

                tasks.start_soon(waits)
                await anyio.sleep(0.1)
                assert await killer.execute("CLIENT", "KILL", "SKIPME", "yes", "ID", await _id(killer, name)) == 1
        await killer.aclose()
        assert await resp.execute("PING") == b"PONG"
    finally:
        await resp.aclose()


async def _id(resp: Resp, name: str) -> int:
    listing: bytes = await resp.execute("CLIENT", "LIST")
    for line in listing.decode().splitlines():
        fields = dict(field.split("=", 1) for field in line.split(" ") if "=" in field)
        if fields.get("name") == name:
            return int(fields["id"])
    msg = f"no client named {name}"
    raise AssertionError(msg)


def test_the_parser_reads_every_reply_type_and_long_arrays_with_crlf_inside() -> None:
    assert parse(b"+OK\r\n:-7\r\n$-1\r\n*-1\r\n*0\r\n") == [b"OK", -7, None, None, []]
    [error] = parse(b"-ERR wrong\r\n")
    assert isinstance(error, RespError)
    assert str(error) == "ERR wrong"
    crlf = b"*20\r\n" + b"$4\r\na\r\nb\r\n" * 20  # long enough for the split path, which must give way
    assert parse(crlf + b"+OK\r\n") == [[b"a\r\nb"] * 20, b"OK"]
    mixed = b"*17\r\n" + b"$1\r\nx\r\n" * 16 + b":1\r\n"
    assert parse(mixed) == [[b"x"] * 16 + [1]]
    with pytest.raises(RespProtocolError, match=re.escape("not a Redis reply: b'HTTP/1.1 400")):
        parse(b"HTTP/1.1 400 Bad Request\r\n")


def test_replies_cut_anywhere_between_reads_come_out_whole() -> None:
    nested = b"*2\r\n$3\r\nkey\r\n*3\r\n$5\r\nfirst\r\n$0\r\n\r\n*1\r\n:9\r\n"
    stream = nested + b"$6\r\nsecond\r\n" + b"*18\r\n" + b"$2\r\nab\r\n" * 18
    expected = [[b"key", [b"first", b"", [9]]], b"second", [b"ab"] * 18]
    for cut in range(1, len(stream)):
        reader = _Reader()
        assert reader.feed(stream[:cut]) + reader.feed(stream[cut:]) == expected, cut
    reader = _Reader()
    assert [value for byte in range(len(stream)) for value in reader.feed(stream[byte : byte + 1])] == expected


def test_a_large_batch_in_many_reads_is_parsed_in_linear_time() -> None:
    entry = b"m" * 100_000
    batch = b"*2\r\n$5\r\ninbox\r\n*512\r\n" + (b"$%d\r\n%s\r\n" % (len(entry), entry)) * 512
    reader = _Reader()
    started = time.perf_counter()
    replies = [value for at in range(0, len(batch), 65_536) for value in reader.feed(batch[at : at + 65_536])]
    assert replies == [[b"inbox", [entry] * 512]]
    assert time.perf_counter() - started < 2.0  # re-parsing from the start on every read is quadratic


def test_only_plain_urls_take_the_lean_path() -> None:
    assert lean_address("redis://:secret@example.org:6380/2") == ("example.org", 6380, None, "secret", 2, None)
    assert lean_address("unix:///run/redis.sock?db=3") == ("", 0, None, None, 3, "/run/redis.sock")
    assert lean_address("rediss://example.org") is None
    assert lean_address("redis://example.org/0?socket_timeout=3") is None
    assert isinstance(make_hot(object(), REDIS_URL, 1.0, cluster=False), LeanHot)
    assert isinstance(make_hot(object(), REDIS_URL, 1.0, cluster=True), CoredisHot)
    assert isinstance(make_hot(object(), "", 1.0, cluster=False), CoredisHot)
