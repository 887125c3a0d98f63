"""The commands on the Redis layer's hot path, over the lean connection or over coredis.

The hot path is what every message pays: the send scripts, the group lookup of a
``group_send``, the pump's ``BLMPOP`` and the settler's script.  On a single Redis
reached by a plain ``redis://`` or ``unix://`` URL they go through two
:class:`~._redis_resp.Resp` connections (one for commands, pipelined; one for the pump's
blocking pop, which would hold up any command behind it).  On a Redis Cluster, over TLS,
or with a client given instead of a URL they go through coredis, which knows the slot
map and every connection option.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._redis_resp import Resp, Script, lean_address

__all__ = ["CoredisHot", "Hot", "LeanHot", "make_hot"]


class Hot(Protocol):
    """The hot-path commands (see the module's documentation)."""

    async def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script."""

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        """``HGETALL``."""

    async def hkeys(self, key: str) -> list[bytes]:
        """``HKEYS``."""

    async def blmpop(self, key: str, wait: float, count: int) -> list[bytes]:
        """``BLMPOP wait 1 key LEFT COUNT count``: up to *count* entries, [] after *wait* seconds."""

    async def lpush(self, key: str, value: bytes) -> None:
        """``LPUSH``."""

    async def aclose(self) -> None:
        """Close what this opened."""


class LeanHot:
    """The hot path on two lean connections of its own."""

    def __init__(self, url: str, connect_timeout: float) -> None:
        self.commands = Resp(url, connect_timeout)
        self.pump = Resp(url, connect_timeout)

    async def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script on the command connection."""
        return await self.commands.script(script, keys, args)

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        """``HGETALL`` on the command connection."""
        flat = await self.commands.execute(b"HGETALL", key)
        return dict(zip(flat[::2], flat[1::2], strict=True))

    async def hkeys(self, key: str) -> list[bytes]:
        """``HKEYS`` on the command connection."""
        found: list[bytes] = await self.commands.execute(b"HKEYS", key)
        return found

    async def blmpop(self, key: str, wait: float, count: int) -> list[bytes]:
        """``BLMPOP`` on the pump's connection."""
        found = await self.pump.execute(b"BLMPOP", repr(wait), 1, key, b"LEFT", b"COUNT", count)
        return [] if found is None else list(found[1])

    async def lpush(self, key: str, value: bytes) -> None:
        """``LPUSH`` on the command connection."""
        await self.commands.execute(b"LPUSH", key, value)

    async def aclose(self) -> None:
        """Close both connections."""
        await self.commands.aclose()
        await self.pump.aclose()


class CoredisHot:
    """The hot path on a coredis client (Cluster, TLS, or a client given to the layer)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._scripts: dict[bytes, Any] = {}

    async def script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script through coredis (which loads it where it is missing)."""
        registered = self._scripts.get(script.sha)
        if registered is None:
            registered = self._scripts[script.sha] = self.client.register_script(script.body)
        return await registered(keys=keys, args=args)

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        """``HGETALL``."""
        found: dict[bytes, bytes] = await self.client.hgetall(key)
        return found

    async def hkeys(self, key: str) -> list[bytes]:
        """``HKEYS``."""
        found: list[bytes] = await self.client.hkeys(key)
        return found

    async def blmpop(self, key: str, wait: float, count: int) -> list[bytes]:
        """``BLMPOP``."""
        from coredis.tokens import PureToken  # noqa: PLC0415 - a token enum, with the client

        found = await self.client.blmpop([key], wait, PureToken.LEFT, count)
        return [] if not found else list(found[1])

    async def lpush(self, key: str, value: bytes) -> None:
        """``LPUSH``."""
        await self.client.lpush(key, [value])

    async def aclose(self) -> None:
        """Nothing: the client belongs to the layer."""


def make_hot(client: Any, url: str, connect_timeout: float, *, cluster: bool) -> Hot:
    """The lean hot path for a plain single-server *url*, else coredis's."""
    if url and not cluster and lean_address(url) is not None:
        return LeanHot(url, connect_timeout)
    return CoredisHot(client)
