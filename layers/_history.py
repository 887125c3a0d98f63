"""Group history: a group's recent messages, numbered, so a member that was away can catch up.

Rules:

1. **History is opt-in, by group pattern.**  A layer built with
   ``history=GroupHistory(count=100, age=300.0, groups=("chat.*",))`` records every
   ``group_send`` to a group whose name matches one of *groups* (``fnmatch`` patterns),
   whether or not the group has members at that moment: the member that reconnects is, by
   then, not a member.  Other groups cost nothing more than a cached pattern test.
2. **Offsets count a group's recorded sends**: 1, 2, 3, … with no gap and no reuse, one
   counter per group, kept by the store (so every process on a SQLite file or a Redis sees
   the same numbers).  An **epoch** names one unbroken run of offsets: a store that lost a
   group's history (the in-memory layer flushed, a Redis restarted empty) starts a new
   epoch, and positions from the old one can no longer be recovered.
3. **Each delivered copy says where it stands**: ``message[POSITION]`` is
   ``{"group": ..., "epoch": ..., "offset": ...}``; the copy kept in the history is the same.
4. **A history holds at most *count* messages, none older than *age* seconds** (wall
   clock, since several machines share it): the oldest go as new ones come, and the too old
   are not returned.  Offsets of trimmed messages are never handed out again.
5. :meth:`HistoryLayer.group_history` answers "what came after offset *since* of epoch
   *epoch*?" with a :class:`HistoryPage`: the messages after *since*, in order, and whether
   they are **complete** (none was trimmed, the epoch is the current one).  An incomplete
   page means recovery is impossible: the caller must resync.  A *since* ahead of the
   group's latest offset in the current epoch was never handed out:
   :class:`InvalidHistoryPosition`.  Reading creates the group's stream, so the epoch it
   returns is the one later sends use.

Each store records and pages in its own way; this module holds what they share (the
policy, the page, the checks, the completeness rule: :func:`complete`) and the in-memory
store.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable
from typing import Final, Protocol, runtime_checkable

import attrs

from ._errors import ChannelLayerError
from ._types import Message
from ._validation import copy_message, require_group_name

__all__ = [
    "POSITION",
    "GroupHistory",
    "HistoryLayer",
    "HistoryPage",
    "InvalidHistoryPosition",
    "MemoryHistory",
    "check_since",
    "complete",
    "new_epoch",
    "positioned",
    "read_policy",
]

POSITION: Final = "interlock.position"
"""The key under which a recorded message carries its group, epoch and offset."""


class InvalidHistoryPosition(ChannelLayerError, ValueError):
    """A history position that was never handed out: an offset ahead of the group's latest,
    negative, or not an integer; or an epoch that is not a string."""


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        msg = f"GroupHistory count must be a positive int, got {value!r}"
        raise ValueError(msg)
    return value


def _age(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < float("inf"):
        msg = f"GroupHistory age must be a positive, finite number of seconds, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _patterns(value: Iterable[str] | str) -> tuple[str, ...]:
    patterns = (value,) if isinstance(value, str) else tuple(value)
    if not patterns or not all(isinstance(pattern, str) and pattern for pattern in patterns):
        msg = f"GroupHistory groups must be one or more non-empty glob patterns, got {value!r}"
        raise ValueError(msg)
    return patterns


@attrs.frozen
class GroupHistory:
    """What a layer keeps of its groups' messages (rules 1 and 4 of the module).

    :param count: messages kept per group (the oldest go first).
    :param age: seconds a message is kept.
    :param groups: glob patterns (``fnmatch``) of the groups that keep a history; every
        group by default.
    """

    count: int = attrs.field(default=100, converter=_count)
    age: float = attrs.field(default=300.0, converter=_age)
    groups: tuple[str, ...] = attrs.field(default=("*",), converter=_patterns)
    _regex: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)
    _seen: dict[str, bool] = attrs.field(init=False, repr=False, eq=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        joined = "|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.groups)
        object.__setattr__(self, "_regex", re.compile(joined))

    def keeps(self, group: str) -> bool:
        """Whether *group* keeps a history under this policy (the answer is cached)."""
        seen = self._seen
        kept = seen.get(group)
        if kept is None:
            if len(seen) >= 65536:
                seen.clear()
            kept = seen[group] = self._regex.fullmatch(group) is not None
        return kept


@attrs.frozen
class HistoryPage:
    """The answer of :meth:`HistoryLayer.group_history` (rule 5 of the module).

    :ivar group: the group asked about.
    :ivar epoch: the group's current epoch.
    :ivar offset: the group's latest offset in that epoch (0 before its first message).
    :ivar messages: the kept messages after *since*, oldest first, each with its
        :data:`POSITION`.
    :ivar complete: whether *messages* are every message after *since*: False when some
        were trimmed (too many, too old) or *since* belongs to another epoch.
    """

    group: str
    epoch: str
    offset: int
    messages: tuple[Message, ...]
    complete: bool


@runtime_checkable
class HistoryLayer(Protocol):
    """A layer that keeps group histories (built with ``history=GroupHistory(...)``)."""

    history: GroupHistory | None

    async def group_history(
        self, group: str, /, *, since: int = 0, epoch: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """The messages of *group* after offset *since* of *epoch* (None: the current one).

        At most *limit* messages, the oldest first (*complete* says whether any message
        between *since* and the first returned was lost).  Raises ``ValueError`` if *group*
        keeps no history, :class:`InvalidHistoryPosition` for a position never handed out.
        """
        ...


def new_epoch() -> str:
    """A fresh epoch name: 16 hex digits."""
    return secrets.token_hex(8)


def positioned(message: Message, group: str, epoch: str, offset: int) -> Message:
    """A copy of *message* carrying its :data:`POSITION`."""
    copy = dict(message)
    copy[POSITION] = {"group": group, "epoch": epoch, "offset": offset}
    return copy


def check_since(group: str, since: object, epoch: object, limit: object) -> None:
    """Refuse a *since*, *epoch* or *limit* of the wrong type or range (rule 5)."""
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        msg = f"history offset for group {group!r} must be an integer ≥ 0, got {since!r}"
        raise InvalidHistoryPosition(msg)
    if epoch is not None and (not isinstance(epoch, str) or not 0 < len(epoch) <= 64):
        msg = f"history epoch for group {group!r} must be a string of 1 to 64 characters, got {epoch!r}"
        raise InvalidHistoryPosition(msg)
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        msg = f"history limit must be a positive integer or None, got {limit!r}"
        raise ValueError(msg)


def read_policy(policy: GroupHistory | None, group: str, since: object, epoch: object, limit: object) -> GroupHistory:
    """The policy a history read of *group* runs under, once its arguments are checked (rule 5).

    Raises ``InvalidGroupName``, :class:`InvalidHistoryPosition`, or ``ValueError`` when
    the layer keeps no history of *group*.
    """
    require_group_name(group)
    check_since(group, since, epoch, limit)
    if policy is None or not policy.keeps(group):
        raise not_kept(group)
    return policy


def not_kept(group: str) -> ValueError:
    """The error for a history read of a group the policy does not record."""
    return ValueError(f"group {group!r} keeps no history: no pattern of the layer's GroupHistory matches it")


def ahead(group: str, since: int, offset: int, epoch: str) -> InvalidHistoryPosition:
    """The error for an offset the group never reached."""
    msg = f"history offset {since} of group {group!r} is ahead of its latest offset {offset} (epoch {epoch})"
    return InvalidHistoryPosition(msg)


def complete(first: int | None, since: int, latest: int) -> bool:
    """Whether a page is whole (rule 5): *first* is the offset of the first kept message after *since*.

    With no message kept after *since* (*first* None) the page is whole only if *since*
    is the latest offset; otherwise the message right after *since* must still be kept.
    """
    return since == latest if first is None else first == since + 1


class _Stream:
    __slots__ = ("epoch", "kept", "offset")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.kept: deque[tuple[int, float, Message]] = deque()


class MemoryHistory:
    """The in-memory layer's histories: a deque per group (rules 2 to 5)."""

    __slots__ = ("_streams", "policy")

    def __init__(self, policy: GroupHistory) -> None:
        self.policy = policy
        self._streams: dict[str, _Stream] = {}

    def clear(self) -> None:
        """Forget every history: the next use of a group starts a new epoch."""
        self._streams.clear()

    def _stream(self, group: str) -> _Stream:
        stream = self._streams.get(group)
        if stream is None:
            stream = self._streams[group] = _Stream()
        return stream

    def _trim(self, stream: _Stream, now: float) -> None:
        kept, oldest = stream.kept, now - self.policy.age
        while kept and (len(kept) > self.policy.count or kept[0][1] <= oldest):
            kept.popleft()

    def record(self, group: str, message: Message, now: float) -> Message:
        """Number *message*, keep it, and return the copy with its position."""
        stream = self._stream(group)
        stream.offset += 1
        copy = positioned(copy_message(message), group, stream.epoch, stream.offset)  # the sender's stays its own
        stream.kept.append((stream.offset, now, copy))
        self._trim(stream, now)
        return copy

    def page(self, group: str, since: int, epoch: str | None, limit: int | None, now: float) -> HistoryPage:
        """What came after *since* in *epoch* (rule 5); *group* must be kept."""
        stream = self._stream(group)
        self._trim(stream, now)
        if epoch is not None and epoch != stream.epoch:
            return HistoryPage(group, stream.epoch, stream.offset, (), complete=False)
        if since > stream.offset:
            raise ahead(group, since, stream.offset, stream.epoch)
        after = [(offset, copy) for offset, _, copy in stream.kept if offset > since]
        whole = complete(after[0][0] if after else None, since, stream.offset)
        if limit is not None:
            after = after[:limit]
        return HistoryPage(group, stream.epoch, stream.offset, tuple(copy_message(copy) for _, copy in after), whole)


def wall_clock() -> float:
    """The clock histories age by (shared by machines)."""
    return time.time()
