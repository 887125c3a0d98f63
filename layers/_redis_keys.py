"""Where :class:`~interlock.layers.RedisChannelLayer` keeps things in Redis, and its Lua scripts.

Rules:

1. Every key starts with the layer's ``prefix`` and holds a *hash tag* (``{...}``): the part
   of the key Redis Cluster hashes to pick a slot.  Everything one script touches shares a
   tag, so every multi-key operation stays in one slot and the layer runs on a Cluster
   unchanged.  The tags:

   ``{p.PROCESS}``
       one layer process: its inbox (a list), the in-flight count of each of its channels
       (a hash: messages ``send`` pushed and its pump has not queued yet), the drops of
       its channels (a hash), the groups of each of its channels (a set per channel), the
       set of its channels that have groups, and its ``alive`` key.
   ``{n.CHANNEL}``
       one named channel (no ``!``): its queue (a list) and its groups (a set).
   ``{g.GROUP}``
       one group: a hash of member channel to the wall-clock time it joined.
   ``{i}``
       the index: the set of group names, the hash of registered processes, named
       channels' drops.

2. An inbox entry is ``m CHANNEL \\0 EXPIRES_MS \\0 BODY`` (a message, its body encoded by
   :mod:`._wire`, which never holds a raw NUL), ``g EXPIRES_MS \\0 GROUP \\0 CHANNEL CHANNEL ...
   \\0 BODY`` (one ``group_send``'s message for all of this process's members in
   *GROUP*: the body travels and is decoded once, and the pump skips and counts the
   members it finds full), or ``w`` (a closing layer wakes its own pump).  Channel names
   hold no space or NUL.  A named channel's entry is ``EXPIRES_MS \\0 BODY``.

3. Scripts take the wall-clock time from their caller, so the machines' clocks must agree
   to well within ``expiry`` (as NTP keeps them).
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLAIM_NAMED", "SEND_GROUP", "SEND_NAMED", "SEND_ONE", "SETTLE", "Keys"]


class Keys:
    """The key names of one layer prefix (see the module's rules)."""

    __slots__ = ("groups", "named_drops", "prefix", "processes")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.groups: Final = f"{prefix}:{{i}}:groups"
        self.processes: Final = f"{prefix}:{{i}}:processes"
        self.named_drops: Final = f"{prefix}:{{i}}:drops"

    # -- a process's keys ----------------------------------------------------------------------

    def inbox(self, process: str) -> str:
        """The list every other process pushes *process*'s messages on."""
        return f"{self.prefix}:{{p.{process}}}:inbox"

    def counts(self, process: str) -> str:
        """Hash: messages sent to each of *process*'s channels and not yet in its queues."""
        return f"{self.prefix}:{{p.{process}}}:counts"

    def drops(self, process: str) -> str:
        """Hash: messages ``group_send`` dropped for each of *process*'s channels."""
        return f"{self.prefix}:{{p.{process}}}:drops"

    def alive(self, process: str) -> str:
        """Set while *process* is registered; its absence after a beat means Redis lost it."""
        return f"{self.prefix}:{{p.{process}}}:alive"

    def with_groups(self, process: str) -> str:
        """Set: *process*'s channels that are in a group."""
        return f"{self.prefix}:{{p.{process}}}:channels"

    # -- a channel's keys ----------------------------------------------------------------------

    def channel_groups(self, channel: str, owner: str | None) -> str:
        """Set: the groups *channel* is in (kept with its owner's keys, or with the named channel's)."""
        if owner is None:
            return f"{self.prefix}:{{n.{channel}}}:groups"
        return f"{self.prefix}:{{p.{owner}}}:groups:{channel}"

    def named(self, channel: str) -> str:
        """The queue of the named *channel*."""
        return f"{self.prefix}:{{n.{channel}}}:queue"

    def group(self, group: str) -> str:
        """Hash: *group*'s members and when each joined."""
        return f"{self.prefix}:{{g.{group}}}"

    def process_keys(self, process: str) -> list[str]:
        """Every key of *process* but its channels' group sets (deleted when it is pruned)."""
        return [
            self.inbox(process),
            self.counts(process),
            self.drops(process),
            self.alive(process),
            self.with_groups(process),
        ]


SEND_ONE: Final = """
-- KEYS: inbox, counts of one process.  ARGV: channel, capacity, expires_ms, ttl_ms, body.
-- Returns 1 if queued, 0 if the channel is full.
local channel = ARGV[1]
if tonumber(redis.call('hget', KEYS[2], channel) or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('hincrby', KEYS[2], channel, 1)
redis.call('rpush', KEYS[1], 'm' .. channel .. '\\0' .. ARGV[3] .. '\\0' .. ARGV[5])
redis.call('pexpire', KEYS[1], ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[4])
return 1
"""

SEND_GROUP: Final = """
-- KEYS: inbox of one process.  ARGV: the entry ('g...'), ttl_ms.  One entry carries a
-- group_send's message for all that process's members: its pump checks their room.
redis.call('rpush', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
"""

SEND_NAMED: Final = """
-- KEYS: a named channel's queue.  ARGV: now_ms, expires_ms, body, capacity, ttl_ms.
-- Returns 1 if queued, 0 if the channel is full (expired messages at its head do not count).
local n = redis.call('llen', KEYS[1])
local capacity = tonumber(ARGV[4])
if n >= capacity then
  local now = tonumber(ARGV[1])
  while n > 0 do
    local head = redis.call('lindex', KEYS[1], 0)
    local cut = string.find(head, '\\0', 1, true)
    if tonumber(string.sub(head, 1, cut - 1)) > now then break end
    redis.call('lpop', KEYS[1])
    n = n - 1
  end
  if n >= capacity then return 0 end
end
redis.call('rpush', KEYS[1], ARGV[2] .. '\\0' .. ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[5])
return 1
"""

CLAIM_NAMED: Final = """
-- KEYS: a named channel's queue.  ARGV: now_ms.  Pops expired messages; returns the body of
-- the first unexpired one, or false.
local now = tonumber(ARGV[1])
while true do
  local head = redis.call('lpop', KEYS[1])
  if not head then return false end
  local cut = string.find(head, '\\0', 1, true)
  if tonumber(string.sub(head, 1, cut - 1)) > now then return string.sub(head, cut + 1) end
end
"""

SETTLE: Final = """
-- KEYS: a process's counts.  ARGV: CHANNEL, N pairs: N of its messages reached its queues.
for i = 1, #ARGV, 2 do
  if redis.call('hincrby', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then
    redis.call('hdel', KEYS[1], ARGV[i])
  end
end
return 0
"""
