"""Making the Redis layer's coredis client, and saying what went wrong with it.

The layer takes a URL or a client; a URL becomes a ``coredis.Redis`` (or, with
``cluster=True``, a ``coredis.RedisCluster`` started from that node).  Errors name the
address without its password, and say whose the fault is: credentials refused, nothing
listening, or something else answering.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

from ._errors import LayerUnavailable
from ._redis_store import Client

__all__ = ["SCHEMES", "describe_client", "make_client", "redacted", "root_cause", "start_error"]

SCHEMES: Final = ("redis://", "rediss://", "unix://")


def make_client(url: str, timeout: float, *, cluster: bool) -> Client:
    """A coredis client for *url*, not entered yet."""
    import coredis  # noqa: PLC0415 - the redis extra, needed only once the layer starts

    if not cluster:
        return coredis.Redis.from_url(url, connect_timeout=timeout, decode_responses=False)
    from coredis.connection import TCPLocation  # noqa: PLC0415 - likewise

    parts = urllib.parse.urlsplit(url)
    return coredis.RedisCluster(
        startup_nodes=[TCPLocation(parts.hostname or "127.0.0.1", parts.port or 6379)],
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss",
        connect_timeout=timeout,
        decode_responses=False,
        non_atomic_cross_slot=False,  # a command across slots is a bug here: let it fail
    )


def root_cause(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def redacted(url: str) -> str:
    """*url* without its password, for messages and reprs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def describe_client(client: Client) -> str:
    """A client's address, for errors: ``host:port`` when it says, else its repr."""
    pool = getattr(client, "connection_pool", None)
    service = getattr(pool, "service_name", None)
    if isinstance(service, str):  # a coredis.Sentinel's primary_for(service)
        return f"the primary of Sentinel service {service!r}"
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict) and "host" in kwargs:
        return f"{kwargs['host']}:{kwargs.get('port', 6379)}"
    return repr(client)


def start_error(address: str, cause: BaseException) -> BaseException:
    """What starting the layer raises when Redis cannot be used at *address*."""
    if isinstance(cause, LayerUnavailable):
        return cause
    import coredis.exceptions  # noqa: PLC0415 - with the client

    if isinstance(cause, coredis.exceptions.AuthenticationError | coredis.exceptions.AuthorizationError):
        return LayerUnavailable(f"Redis at {address} refused this client's credentials: {cause}")
    if isinstance(cause, coredis.exceptions.ConnectionError | OSError):
        return LayerUnavailable(f"cannot use Redis at {address}: {cause} (is a Redis server listening there?)")
    return LayerUnavailable(f"cannot use Redis at {address}: {type(cause).__name__}: {cause}")
