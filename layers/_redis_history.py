"""Group histories on Redis: numbered and kept by one Lua script, in the group's hash slot.

Rules (the contract is :mod:`interlock.layers._history`'s):

1. **Two keys per group, in its slot** (``{g.GROUP}``, as its members are, so a Redis
   Cluster runs the scripts unchanged): ``…:hmeta``, a hash of the epoch and the latest
   offset, and ``…:hist``, a sorted set of the kept messages scored by offset, each member
   ``"OFFSET AT_MS BODY"`` (unique by its offset).
2. **Recording is one script** (:data:`RECORD`): the epoch is set if the group has none
   (a Redis restarted empty, a flushed prefix: a new epoch), the offset taken, the body
   with its position kept, the set trimmed by count and by age (the oldest first), and
   both keys' lifetimes pushed to *age* plus a day.  Offsets have no gaps but where a
   sender died between numbering and keeping, which one script makes impossible.
   The copies to members go out after it, as any ``group_send``'s.
3. **Reading is one script** (:data:`PAGE`): it creates the stream if missing and returns
   the epoch, the latest offset and the kept members after *since*; too old ones are left
   out here, by their time.
"""

from __future__ import annotations

import json
from typing import Final

from ._history import POSITION, GroupHistory, HistoryPage, ahead, complete, new_epoch
from ._redis_resp import Script
from ._types import Message
from ._wire import decode, encode

__all__ = ["PAGE", "RECORD", "keys_of", "page_from", "record_args"]

RECORD: Final = Script(
    """
-- KEYS: meta, hist.  ARGV: new epoch, now_ms, count, age_ms, head, rest.
redis.call('hsetnx', KEYS[1], 'epoch', ARGV[1])
local offset = redis.call('hincrby', KEYS[1], 'latest', 1)
local epoch = redis.call('hget', KEYS[1], 'epoch')
local body = ARGV[5] .. epoch .. '","offset":' .. offset .. '},' .. ARGV[6]
redis.call('zadd', KEYS[2], offset, offset .. ' ' .. ARGV[2] .. ' ' .. body)
redis.call('zremrangebyscore', KEYS[2], '-inf', offset - tonumber(ARGV[3]))
local oldest = tonumber(ARGV[2]) - tonumber(ARGV[4])
for _ = 1, 1000 do
  local first = redis.call('zrange', KEYS[2], 0, 0)[1]
  if not first then break end
  local gap = string.find(first, ' ', 1, true)
  local at = tonumber(string.sub(first, gap + 1, string.find(first, ' ', gap + 1, true) - 1))
  if at > oldest then break end
  redis.call('zremrangebyrank', KEYS[2], 0, 0)
end
local life = tonumber(ARGV[4]) + 86400000
redis.call('pexpire', KEYS[1], life)
redis.call('pexpire', KEYS[2], life)
return {epoch, offset}
"""
)

PAGE: Final = Script(
    """
-- KEYS: meta, hist.  ARGV: new epoch, since, limit (-1: none).
redis.call('hsetnx', KEYS[1], 'epoch', ARGV[1])
local epoch = redis.call('hget', KEYS[1], 'epoch')
local latest = tonumber(redis.call('hget', KEYS[1], 'latest') or '0')
local kept
if tonumber(ARGV[3]) < 0 then
  kept = redis.call('zrangebyscore', KEYS[2], '(' .. ARGV[2], '+inf')
else
  kept = redis.call('zrangebyscore', KEYS[2], '(' .. ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
end
return {epoch, latest, kept}
"""
)


def keys_of(prefix: str, group: str) -> list[str]:
    """The history keys of *group* (rule 1): its meta hash and its sorted set."""
    return [f"{prefix}:{{g.{group}}}:hmeta", f"{prefix}:{{g.{group}}}:hist"]


def record_args(group: str, message: Message, policy: GroupHistory, now: float) -> list[str | int]:
    """:data:`RECORD`'s arguments: the body cut where the script writes the position in."""
    rest = encode({key: value for key, value in message.items() if key != POSITION})[1:]
    head = '{"' + POSITION + '":{"group":' + json.dumps(group) + ',"epoch":"'
    return [new_epoch(), int(now * 1000), policy.count, int(policy.age * 1000), head, rest]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def page_from(
    group: str, reply: list[object], *, since: int, epoch: str | None, policy: GroupHistory, now: float
) -> HistoryPage:
    """The :class:`HistoryPage` of a :data:`PAGE` reply (rule 3)."""
    raw_epoch, raw_latest, raw_kept = reply
    current, latest = _text(raw_epoch), int(raw_latest)  # type: ignore[arg-type, call-overload]
    if epoch is not None and epoch != current:
        return HistoryPage(group, current, latest, (), complete=False)
    if since > latest:
        raise ahead(group, since, latest, current)
    oldest_ms = (now - policy.age) * 1000
    kept: list[tuple[int, Message]] = []
    for entry in raw_kept:  # type: ignore[attr-defined]
        offset, at, body = _text(entry).split(" ", 2)
        if int(at) > oldest_ms and int(offset) > latest - policy.count:
            kept.append((int(offset), decode(body)))
    whole = complete(kept[0][0] if kept else None, since, latest)
    return HistoryPage(group, current, latest, tuple(message for _, message in kept), whole)
