"""The channel-layer conformance suite: subclass it, give it a layer, run pytest.

Every layer interlock ships passes this suite, and a third-party layer shows that it keeps
the contract (``docs/layer-spec.md``) the same way::

    # tests/test_my_layer.py
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Any

    import pytest

    from interlock.layers.testing import ChannelLayerConformance, LayerFactory
    from my_package import MyLayer


    @asynccontextmanager
    async def make_layer(**options: Any) -> AsyncIterator[MyLayer]:
        layer = MyLayer(**options)  # options: capacity=, expiry=, group_expiry=
        await layer.start()
        try:
            yield layer
        finally:
            await layer.flush()
            await layer.close()


    class TestMyLayer(ChannelLayerConformance):
        short_expiry = 1.0  # MyLayer counts expiry in whole seconds

        @pytest.fixture
        async def layer(self) -> AsyncIterator[MyLayer]:
            async with make_layer() as layer:
                yield layer

        @pytest.fixture
        def layer_factory(self) -> LayerFactory:
            return make_layer

The fixtures a subclass provides:

``layer`` (required)
    Yields a started layer holding no messages or groups, and cleans it up afterwards.
``layer_factory`` (optional)
    Returns a :class:`LayerFactory`. Called with some of the keyword options ``capacity=``
    (undelivered messages a channel may hold), ``expiry=`` (seconds a message is kept) and
    ``group_expiry=`` (seconds a membership lasts), it returns an async context manager
    that yields a started layer configured so. Without it the capacity and expiry tests skip.

Tests of groups skip unless the layer is a :class:`~interlock.layers.GroupLayer`; tests of
listing skip unless it is a :class:`~interlock.layers.ListableGroupLayer`; the drop count test
skips unless it is a :class:`~interlock.layers.DropCountingLayer`; the tests of watching skip
unless it is a :class:`~interlock.layers.WatchableLayer`, which must then watch any channel its
``new_channel()`` made, from the event loop that made it (the actor runtime relies on it).

The tests are coroutines marked for anyio's pytest plugin (installed with anyio). anyio
runs them on asyncio only unless your ``conftest.py`` defines the ``anyio_backend`` fixture,
e.g. with ``params=["asyncio", "trio"]``: a layer should pass on both.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import MappingProxyType
from typing import Any, ClassVar, Final, Protocol

import anyio
import anyio.lowlevel
import pytest

from ._errors import (
    ChannelFull,
    ChannelLayerError,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    UnserializableMessage,
)
from ._history import POSITION, GroupHistory, HistoryLayer, HistoryPage, InvalidHistoryPosition
from ._types import ChannelLayer, DropCountingLayer, GroupLayer, ListableGroupLayer, Message, WatchableLayer
from ._validation import MAX_DEPTH, MAX_NAME_LENGTH, require_channel_name

__all__ = ["ChannelLayerConformance", "LayerFactory", "lets_other_tasks_run"]


class LayerFactory(Protocol):
    """Builds a started layer from keyword options: the ``layer_factory`` fixture's value."""

    def __call__(self, **options: Any) -> AbstractAsyncContextManager[ChannelLayer]:
        """Return an async context manager yielding a layer built with *options*."""
        ...


# -- helpers ---------------------------------------------------------------------------------


async def lets_other_tasks_run(work: Callable[[], Awaitable[object]]) -> bool:
    """Whether another task got to run while ``await work()`` ran.

    For checking that a loop of calls which need not wait (sends to local queues, say)
    still yields to the event loop: a bystander task counts its turns meanwhile.
    """
    ran = 0

    async def bystander() -> None:
        nonlocal ran
        while True:
            ran += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(bystander)
        await anyio.lowlevel.checkpoint()  # the bystander starts
        ran = 0
        await work()
        tasks.cancel_scope.cancel()
    return ran > 0


def _msg(**values: Any) -> Message:
    return {"type": "conformance.message", **values}


def _sentinel() -> Message:
    return {"type": "conformance.sentinel"}


def _unique(kind: str) -> str:
    return f"conformance-{kind}.{secrets.token_hex(6)}"


def _longest(kind: str) -> str:
    return _unique(kind).ljust(MAX_NAME_LENGTH, "x")


def _nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def _groups(layer: ChannelLayer) -> GroupLayer:
    if not isinstance(layer, GroupLayer):
        pytest.skip(f"{type(layer).__name__} is not a GroupLayer: it has no groups")
    return layer


def _listing(layer: ChannelLayer) -> ListableGroupLayer:
    if not isinstance(layer, ListableGroupLayer):
        pytest.skip(f"{type(layer).__name__} is not a ListableGroupLayer: it cannot list groups")
    return layer


def _watchable(layer: ChannelLayer) -> WatchableLayer:
    if not isinstance(layer, WatchableLayer):
        pytest.skip(f"{type(layer).__name__} is not a WatchableLayer: its channels are received from")
    return layer


def _require(layer: ChannelLayer, capability: str) -> ChannelLayer:
    if capability == "groups":
        return _groups(layer)
    if capability == "listing":
        return _listing(layer)
    return layer


def _assert_shows(error: BaseException, value: object) -> None:
    shown = repr(str.__str__(value) if isinstance(value, str) else value)[:40]
    assert shown in str(error), f"the error {str(error)!r} does not show the bad value {shown!r}"


def _assert_same(expected: Any, actual: Any, path: str = "message") -> None:
    """Equal, and of the same types all the way down (True is not 1, 1.0 is not 1)."""
    assert type(actual) is type(expected), f"{path}: sent {expected!r}, received {actual!r}"
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys(), f"{path}: sent {expected!r}, received {actual!r}"
        for key, value in expected.items():
            _assert_same(value, actual[key], f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: sent {expected!r}, received {actual!r}"
        for index, value in enumerate(expected):
            _assert_same(value, actual[index], f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: sent {expected!r}, received {actual!r}"


class _Names(enum.StrEnum):
    CHANNEL = _unique("enum-channel")
    GROUP = _unique("enum-group")
    BAD = "has space"


# -- parameters ------------------------------------------------------------------------------

_VALID_GROUP: Final = "conformance-valid-group"
_VALID_CHANNEL: Final = "conformance-valid-channel"

_Use = Callable[[Any, Any], Awaitable[object]]

_CHANNEL_NAME_USES: Final[dict[str, tuple[str, _Use]]] = {
    "send": ("channels", lambda layer, name: layer.send(name, _msg())),
    "receive": ("channels", lambda layer, name: layer.receive(name)),
    "close_channel": ("channels", lambda layer, name: layer.close_channel(name)),
    "group_add": ("groups", lambda layer, name: layer.group_add(_VALID_GROUP, name)),
    "group_discard": ("groups", lambda layer, name: layer.group_discard(_VALID_GROUP, name)),
}

_GROUP_NAME_USES: Final[dict[str, tuple[str, _Use]]] = {
    "group_add": ("groups", lambda layer, name: layer.group_add(name, _VALID_CHANNEL)),
    "group_discard": ("groups", lambda layer, name: layer.group_discard(name, _VALID_CHANNEL)),
    "group_send": ("groups", lambda layer, name: layer.group_send(name, _msg())),
    "group_members": ("listing", lambda layer, name: layer.group_members(name)),
}

_BAD_NAMES: Final = [
    pytest.param("x" * (MAX_NAME_LENGTH + 1), id="101-chars"),
    pytest.param("", id="empty"),
    pytest.param("has space", id="space"),
    pytest.param("trailing-newline\n", id="trailing-newline"),
    pytest.param("tab\there", id="tab"),
    pytest.param("digit-\u0661", id="unicode-digit"),
    pytest.param("caf\u00e9", id="non-ascii-letter"),
    pytest.param(None, id="None"),
    pytest.param(42, id="int"),
    pytest.param(b"bytes-name", id="bytes"),
    pytest.param(_Names.BAD, id="str-subclass"),
]
_BAD_CHANNEL_NAMES: Final = [
    *_BAD_NAMES,
    pytest.param("!leading-bang", id="leading-bang"),
    pytest.param("two!bang!s", id="two-bangs"),
]
_BAD_GROUP_NAMES: Final = [*_BAD_NAMES, pytest.param("has!bang", id="bang")]
_BAD_PREFIXES: Final = [
    pytest.param("", id="empty"),
    pytest.param("has space", id="space"),
    pytest.param("has!bang", id="bang"),
    pytest.param("newline\n", id="trailing-newline"),
    pytest.param("caf\u00e9", id="non-ascii-letter"),
    pytest.param("x" * MAX_NAME_LENGTH, id="no-room-for-a-suffix"),
    pytest.param(None, id="None"),
    pytest.param(7, id="int"),
]

_BAD_MESSAGES: Final = [
    pytest.param(["type", "x"], InvalidMessage, "list", id="list"),
    pytest.param("a string", InvalidMessage, "'a string'", id="str"),
    pytest.param(None, InvalidMessage, "None", id="None"),
    pytest.param(MappingProxyType({"type": "t"}), InvalidMessage, "mappingproxy", id="mapping"),
    pytest.param(OrderedDict(type="t"), InvalidMessage, "OrderedDict", id="dict-subclass"),
    pytest.param({"text": "hi"}, InvalidMessage, "'type'", id="missing-type"),
    pytest.param({"type": ""}, InvalidMessage, "'type'", id="empty-type"),
    pytest.param({"type": 3}, InvalidMessage, "'type'", id="int-type"),
    pytest.param({"type": "t", 1: "one"}, InvalidMessage, "1", id="int-key"),
    pytest.param({"type": "t", "data": {"ok": {2: "x"}}}, InvalidMessage, "['data']['ok']", id="nested-key"),
    pytest.param({"type": "t", "tags": {"red"}}, UnserializableMessage, "{'red'}", id="set"),
    pytest.param({"type": "t", "who": object()}, UnserializableMessage, "object", id="object"),
    pytest.param(
        {"type": "t", "data": {"items": [1, {"tags": {"red"}}]}},
        UnserializableMessage,
        "['data']['items'][1]['tags']",
        id="nested-set",
    ),
    pytest.param({"type": "t", "deep": _nested(MAX_DEPTH + 8)}, UnserializableMessage, "['deep']", id="too-deep"),
]

_VALUES: Final = [
    pytest.param(b"\x00\xff\x80 binary", id="bytes"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(bytes(range(256)), id="every-byte"),
    pytest.param("h\u00e9llo \u2603 \U0001f600 \u0661\u0662", id="unicode"),
    pytest.param("", id="empty-str"),
    pytest.param("nul\x00 and\nnewline", id="control-chars"),
    pytest.param(2**53 + 1, id="int-beyond-float"),
    pytest.param(-(2**63), id="int64-min"),
    pytest.param(2**63 - 1, id="int64-max"),
    pytest.param(0.1, id="float"),
    pytest.param(1.0, id="integral-float"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(None, id="None"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-dict"),
    pytest.param({"\u043a\u043b\u044e\u0447": [1, {"b": b"\x01", "f": [1.5, None, True]}], "": ""}, id="nested"),
]


class ChannelLayerConformance:
    """Tests every channel layer must pass: subclass it and provide the ``layer`` fixture.

    The module documentation shows a complete subclass and the fixtures it may provide.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    short_expiry: ClassVar[float] = 0.2
    """Seconds of ``expiry`` and ``group_expiry`` the expiry tests ask ``layer_factory`` for."""

    wait_timeout: ClassVar[float] = 5.0
    """Seconds a test waits for a message before it fails instead of hanging."""

    @pytest.fixture
    def layer(self) -> ChannelLayer:
        """Override: yield a started layer holding nothing, and clean it up afterwards."""
        pytest.fail(f"{type(self).__name__} must define a `layer` fixture yielding a started layer")

    @pytest.fixture
    def layer_factory(self) -> LayerFactory:
        """Override to run the capacity and expiry tests: return a :class:`LayerFactory`."""
        pytest.skip(f"{type(self).__name__} defines no `layer_factory` fixture")

    async def _next(self, layer: ChannelLayer, channel: str) -> Message:
        with anyio.fail_after(self.wait_timeout):
            return await layer.receive(channel)

    async def _assert_empty(self, layer: ChannelLayer, channel: str) -> None:
        """Nothing is queued on *channel*: a sentinel sent now is the next message out."""
        await layer.send(channel, _sentinel())
        got = await self._next(layer, channel)
        assert got == _sentinel(), f"expected nothing queued on {channel!r}, found {got!r}"

    # -- channels ----------------------------------------------------------------------------

    async def test_layer_is_a_channel_layer(self, layer: ChannelLayer) -> None:
        """The layer has every method of the ChannelLayer protocol."""
        assert isinstance(layer, ChannelLayer)

    async def test_send_then_receive_round_trip(self, layer: ChannelLayer) -> None:
        """A message sent to a channel comes out of it equal, for plain and local channels."""
        for channel in (_unique("plain"), await layer.new_channel()):
            await layer.send(channel, _msg(text="hello"))
            assert await self._next(layer, channel) == _msg(text="hello")

    async def test_receive_returns_messages_in_send_order(self, layer: ChannelLayer) -> None:
        """A channel is first in, first out."""
        channel = await layer.new_channel()
        for n in range(10):
            await layer.send(channel, _msg(n=n))
        assert [(await self._next(layer, channel))["n"] for _ in range(10)] == list(range(10))

    async def test_message_sent_before_receive_is_kept(self, layer: ChannelLayer) -> None:
        """A message sent before anyone receives waits for the first receive."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(n=1))
        await anyio.sleep(0.05)
        assert await self._next(layer, channel) == _msg(n=1)

    async def test_receive_waits_until_a_send_arrives(self, layer: ChannelLayer) -> None:
        """A receive on an empty channel waits, and returns once a message is sent."""
        channel = await layer.new_channel()
        received: list[Message] = []

        async def receiver() -> None:
            received.append(await layer.receive(channel))

        with anyio.fail_after(self.wait_timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                assert received == []
                await layer.send(channel, _msg(n=1))
        assert received == [_msg(n=1)]

    async def test_each_message_is_delivered_once(self, layer: ChannelLayer) -> None:
        """Two receivers on one channel get one message each, never the same one twice."""
        channel = _unique("shared")
        received: list[int] = []

        async def receiver() -> None:
            received.append((await layer.receive(channel))["n"])

        with anyio.fail_after(self.wait_timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(receiver)
                tg.start_soon(receiver)
                await anyio.wait_all_tasks_blocked()
                await layer.send(channel, _msg(n=1))
                await layer.send(channel, _msg(n=2))
        assert sorted(received) == [1, 2]

    async def test_cancelled_receive_loses_no_message(self, layer: ChannelLayer) -> None:
        """Cancelling a waiting receive leaves the next message for the next receive."""
        channel = await layer.new_channel()
        with anyio.fail_after(self.wait_timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(layer.receive, channel)
                await anyio.wait_all_tasks_blocked()
                tg.cancel_scope.cancel()
        await layer.send(channel, _msg(n=1))
        assert await self._next(layer, channel) == _msg(n=1)

    async def test_a_loop_of_sends_lets_other_tasks_run(self, layer: ChannelLayer) -> None:
        """Sending (and receiving what is queued) in a loop still lets other tasks run."""
        channel = await layer.new_channel()

        async def work() -> None:
            for n in range(200):
                await layer.send(channel, _msg(n=n))
                assert await layer.receive(channel) == _msg(n=n)

        with anyio.fail_after(self.wait_timeout):
            assert await lets_other_tasks_run(work), "200 sends and receives in a row never let another task run"

    async def test_new_channel_returns_unique_valid_local_names(self, layer: ChannelLayer) -> None:
        """new_channel() names are valid, distinct, process-local and start with 'specific'."""
        names = [await layer.new_channel() for _ in range(50)]
        assert len(set(names)) == len(names)
        for name in names:
            assert require_channel_name(name) == name
            assert "!" in name
            assert name.startswith("specific")

    @pytest.mark.parametrize("prefix", ["chat", "a.b-c_D9", "x"])
    async def test_new_channel_starts_with_its_prefix(self, layer: ChannelLayer, prefix: str) -> None:
        """new_channel(prefix) starts with the prefix, marks it local after it, and works."""
        name = await layer.new_channel(prefix)
        assert require_channel_name(name) == name
        assert name.startswith(prefix)
        assert name.index("!") >= len(prefix)
        await layer.send(name, _msg(n=1))
        assert await self._next(layer, name) == _msg(n=1)

    @pytest.mark.parametrize("prefix", _BAD_PREFIXES)
    async def test_new_channel_rejects_invalid_prefix(self, layer: ChannelLayer, prefix: Any) -> None:
        """A prefix that cannot start a channel name raises InvalidChannelName naming it."""
        with pytest.raises(InvalidChannelName) as caught:
            await layer.new_channel(prefix)
        _assert_shows(caught.value, prefix)

    async def test_close_channel_drops_its_queue(self, layer: ChannelLayer) -> None:
        """Messages queued on a closed channel are gone."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(n=1))
        await layer.close_channel(channel)
        await self._assert_empty(layer, channel)

    async def test_close_unknown_channel_is_a_no_op(self, layer: ChannelLayer) -> None:
        """Closing a channel the layer never saw is not an error."""
        await layer.close_channel(_unique("never-used"))

    async def test_flush_empties_everything(self, layer: ChannelLayer) -> None:
        """After flush() no channel holds a message and no group has a member."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(n=1))
        group = _unique("group")
        if isinstance(layer, GroupLayer):
            await layer.group_add(group, channel)
        await layer.flush()
        if isinstance(layer, GroupLayer):
            await layer.group_send(group, _msg(n=2))
        if isinstance(layer, ListableGroupLayer):
            assert await layer.group_members(group) == frozenset()
            assert group not in await layer.groups()
        await self._assert_empty(layer, channel)

    async def test_layer_is_usable_after_close(self, layer: ChannelLayer) -> None:
        """close() releases resources; the next call starts the layer again."""
        await layer.close()
        channel = await layer.new_channel()
        await layer.send(channel, _msg(n=1))
        assert await self._next(layer, channel) == _msg(n=1)

    # -- names -------------------------------------------------------------------------------

    @pytest.mark.parametrize("name", _BAD_CHANNEL_NAMES)
    @pytest.mark.parametrize("use", list(_CHANNEL_NAME_USES))
    async def test_invalid_channel_name_is_rejected(self, layer: ChannelLayer, use: str, name: Any) -> None:
        """Every method taking a channel name raises InvalidChannelName (a ValueError) naming it."""
        capability, call = _CHANNEL_NAME_USES[use]
        target = _require(layer, capability)
        with anyio.fail_after(self.wait_timeout), pytest.raises(InvalidChannelName) as caught:
            await call(target, name)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, ChannelLayerError)
        _assert_shows(caught.value, name)

    @pytest.mark.parametrize("name", _BAD_GROUP_NAMES)
    @pytest.mark.parametrize("use", list(_GROUP_NAME_USES))
    async def test_invalid_group_name_is_rejected(self, layer: ChannelLayer, use: str, name: Any) -> None:
        """Every method taking a group name raises InvalidGroupName (a ValueError) naming it."""
        capability, call = _GROUP_NAME_USES[use]
        target = _require(layer, capability)
        with anyio.fail_after(self.wait_timeout), pytest.raises(InvalidGroupName) as caught:
            await call(target, name)
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, ChannelLayerError)
        _assert_shows(caught.value, name)

    async def test_longest_names_are_accepted(self, layer: ChannelLayer) -> None:
        """Channel and group names of exactly 100 characters work with every method."""
        channel, group = _longest("channel"), _longest("group")
        await layer.send(channel, _msg(n=1))
        assert await self._next(layer, channel) == _msg(n=1)
        if isinstance(layer, GroupLayer):
            await layer.group_add(group, channel)
            await layer.group_send(group, _msg(n=2))
            assert await self._next(layer, channel) == _msg(n=2)
            if isinstance(layer, ListableGroupLayer):
                assert await layer.group_members(group) == {channel}
            await layer.group_discard(group, channel)
        await layer.close_channel(channel)

    async def test_str_subclass_names_are_checked_by_value(self, layer: ChannelLayer) -> None:
        """A str subclass (a StrEnum member) names the same channel or group as its value."""
        channel, group = _Names.CHANNEL, _Names.GROUP
        await layer.send(channel, _msg(n=1))
        assert await self._next(layer, str(channel.value)) == _msg(n=1)
        if isinstance(layer, GroupLayer):
            await layer.group_add(group, str(channel.value))
            await layer.group_send(str(group.value), _msg(n=2))
            assert await self._next(layer, channel) == _msg(n=2)
            if isinstance(layer, ListableGroupLayer):
                assert await layer.group_members(group) == {channel.value}
            await layer.group_discard(group, channel)

    # -- messages ----------------------------------------------------------------------------

    @pytest.mark.parametrize(("message", "error", "shown"), _BAD_MESSAGES)
    @pytest.mark.parametrize("via", ["send", "group_send"])
    async def test_invalid_message_is_rejected_at_send(
        self, layer: ChannelLayer, via: str, message: Any, error: type[InvalidMessage], shown: str
    ) -> None:
        """A bad message raises InvalidMessage (a TypeError) naming the bad part, delivers nothing."""
        channel = await layer.new_channel()
        target = channel
        sender: Callable[[str, Any], Awaitable[None]] = layer.send
        if via == "group_send":
            groups = _groups(layer)
            target = _unique("group")
            await groups.group_add(target, channel)
            sender = groups.group_send
        with pytest.raises(error) as caught:
            await sender(target, message)
        assert isinstance(caught.value, TypeError)
        assert shown in str(caught.value), f"{str(caught.value)!r} does not name {shown!r}"
        await self._assert_empty(layer, channel)

    @pytest.mark.parametrize("value", _VALUES)
    async def test_values_round_trip_exactly(self, layer: ChannelLayer, value: Any) -> None:
        """bytes, unicode, numbers and nested containers arrive equal and of the same type."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(value=value))
        _assert_same(_msg(value=value), await self._next(layer, channel))

    async def test_deepest_allowed_nesting_round_trips(self, layer: ChannelLayer) -> None:
        """A message nested exactly as deep as the rules allow is accepted and delivered."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(value=_nested(MAX_DEPTH - 1)))
        _assert_same(_msg(value=_nested(MAX_DEPTH - 1)), await self._next(layer, channel))

    async def test_tuples_arrive_as_lists(self, layer: ChannelLayer) -> None:
        """Tuples, nested anywhere, are received as lists, as through any wire format."""
        channel = await layer.new_channel()
        await layer.send(channel, _msg(pair=(1, (2, 3)), inner={"t": ("a",)}))
        _assert_same(_msg(pair=[1, [2, 3]], inner={"t": ["a"]}), await self._next(layer, channel))

    async def test_sender_mutation_after_send_changes_nothing(self, layer: ChannelLayer) -> None:
        """Changing the sent dict (or its contents) after send does not reach the receiver."""
        channel = await layer.new_channel()
        message = _msg(items=[1, 2], meta={"k": "v"})
        await layer.send(channel, message)
        message["items"].append(3)
        message["meta"]["k"] = "changed"
        message["extra"] = True
        received = await self._next(layer, channel)
        assert received == _msg(items=[1, 2], meta={"k": "v"})
        assert received is not message

    async def test_receiver_mutation_changes_nothing(self, layer: ChannelLayer) -> None:
        """A received message is the receiver's own: changing it leaves the next one intact."""
        channel = await layer.new_channel()
        message = _msg(items=[1, 2])
        await layer.send(channel, message)
        await layer.send(channel, message)
        first = await self._next(layer, channel)
        first["items"].append(3)
        assert await self._next(layer, channel) == _msg(items=[1, 2])
        assert message == _msg(items=[1, 2])

    # -- capacity and expiry -----------------------------------------------------------------

    async def test_send_to_full_channel_raises_channel_full(self, layer_factory: LayerFactory) -> None:
        """A send beyond capacity raises ChannelFull (a RuntimeError) naming the channel."""
        async with layer_factory(capacity=2) as layer:
            channel = await layer.new_channel()
            await layer.send(channel, _msg(n=0))
            await layer.send(channel, _msg(n=1))
            with pytest.raises(ChannelFull) as caught:
                await layer.send(channel, _msg(n=2))
            assert isinstance(caught.value, RuntimeError)
            assert channel in str(caught.value)
            assert await self._next(layer, channel) == _msg(n=0)
            assert await self._next(layer, channel) == _msg(n=1)
            await self._assert_empty(layer, channel)

    async def test_full_channel_accepts_again_after_receive(self, layer_factory: LayerFactory) -> None:
        """Receiving from a full channel makes room for the next send."""
        async with layer_factory(capacity=1) as layer:
            channel = await layer.new_channel()
            await layer.send(channel, _msg(n=0))
            with pytest.raises(ChannelFull):
                await layer.send(channel, _msg(n=1))
            assert await self._next(layer, channel) == _msg(n=0)
            await layer.send(channel, _msg(n=2))
            assert await self._next(layer, channel) == _msg(n=2)

    async def test_capacity_is_per_channel(self, layer_factory: LayerFactory) -> None:
        """One full channel does not stop sends to another."""
        async with layer_factory(capacity=1) as layer:
            full, other = await layer.new_channel(), await layer.new_channel()
            await layer.send(full, _msg(n=0))
            await layer.send(other, _msg(n=1))
            assert await self._next(layer, other) == _msg(n=1)

    async def test_group_send_skips_full_members(self, layer_factory: LayerFactory) -> None:
        """group_send does not raise for a full member: it misses the message, others get it."""
        async with layer_factory(capacity=1) as made:
            layer = _groups(made)
            full, free, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
            await layer.send(full, _msg(n=0))
            await layer.group_add(group, full)
            await layer.group_add(group, free)
            await layer.group_send(group, _msg(n=1))
            assert await self._next(layer, free) == _msg(n=1)
            assert await self._next(layer, full) == _msg(n=0)
            await self._assert_empty(layer, full)

    async def test_group_send_drops_are_counted(self, layer_factory: LayerFactory) -> None:
        """A ``DropCountingLayer`` counts each message ``group_send`` dropped, per full channel."""
        async with layer_factory(capacity=1) as made:
            if not isinstance(made, DropCountingLayer):
                pytest.skip(f"{type(made).__name__} is not a DropCountingLayer")
            layer = _groups(made)
            full, free, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
            await layer.send(full, _msg(n=0))
            await layer.group_add(group, full)
            await layer.group_add(group, free)
            for n in range(3):
                await layer.group_send(group, _msg(n=n))
                assert await self._next(layer, free) == _msg(n=n)
            counts = await made.drop_counts()
            assert counts.get(full) == 3, counts
            assert free not in counts, counts
            await layer.close_channel(full)
            assert full not in await made.drop_counts()

    async def test_expired_message_is_not_delivered(self, layer_factory: LayerFactory) -> None:
        """A message older than the layer's expiry is dropped, not received."""
        async with layer_factory(expiry=self.short_expiry) as layer:
            channel = await layer.new_channel()
            await layer.send(channel, _msg(n=1))
            await anyio.sleep(self.short_expiry * 2)
            await layer.send(channel, _msg(n=2))
            assert await self._next(layer, channel) == _msg(n=2)

    async def test_expired_messages_free_capacity(self, layer_factory: LayerFactory) -> None:
        """Expired messages do not count against a channel's capacity."""
        async with layer_factory(capacity=1, expiry=self.short_expiry) as layer:
            channel = await layer.new_channel()
            await layer.send(channel, _msg(n=1))
            await anyio.sleep(self.short_expiry * 2)
            await layer.send(channel, _msg(n=2))
            assert await self._next(layer, channel) == _msg(n=2)

    async def test_group_membership_expires(self, layer_factory: LayerFactory) -> None:
        """A membership older than group_expiry ends: the channel no longer gets group messages."""
        async with layer_factory(group_expiry=self.short_expiry) as made:
            layer = _groups(made)
            channel, group = await layer.new_channel(), _unique("group")
            await layer.group_add(group, channel)
            await anyio.sleep(self.short_expiry * 2)
            await layer.group_send(group, _msg(n=1))
            await self._assert_empty(layer, channel)
            if isinstance(layer, ListableGroupLayer):
                assert await layer.group_members(group) == frozenset()
                assert group not in await layer.groups()

    async def test_group_add_renews_membership(self, layer_factory: LayerFactory) -> None:
        """group_add on a member restarts its group_expiry."""
        group_expiry = self.short_expiry * 2
        async with layer_factory(group_expiry=group_expiry) as made:
            layer = _groups(made)
            channel, group = await layer.new_channel(), _unique("group")
            await layer.group_add(group, channel)
            await anyio.sleep(group_expiry * 0.6)
            await layer.group_add(group, channel)
            await anyio.sleep(group_expiry * 0.6)
            await layer.group_send(group, _msg(n=1))
            assert await self._next(layer, channel) == _msg(n=1)

    # -- groups ------------------------------------------------------------------------------

    async def test_group_send_reaches_exactly_the_members(self, layer: ChannelLayer) -> None:
        """Every member gets the message once; a channel outside the group gets nothing."""
        groups = _groups(layer)
        a, b, outsider = [await layer.new_channel() for _ in range(3)]
        group = _unique("group")
        await groups.group_add(group, a)
        await groups.group_add(group, b)
        await groups.group_send(group, _msg(n=1))
        for member in (a, b):
            assert await self._next(layer, member) == _msg(n=1)
            await self._assert_empty(layer, member)
        await self._assert_empty(layer, outsider)

    async def test_group_send_keeps_order_per_sender(self, layer: ChannelLayer) -> None:
        """Each member receives one sender's group messages in the order they were sent."""
        groups = _groups(layer)
        a, b, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
        await groups.group_add(group, a)
        await groups.group_add(group, b)
        for n in range(5):
            await groups.group_send(group, _msg(n=n))
        for member in (a, b):
            assert [(await self._next(layer, member))["n"] for _ in range(5)] == list(range(5))

    async def test_group_members_get_distinct_copies(self, layer: ChannelLayer) -> None:
        """Two members receive separate dicts: one changing its copy leaves the other's alone."""
        groups = _groups(layer)
        a, b, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
        await groups.group_add(group, a)
        await groups.group_add(group, b)
        await groups.group_send(group, _msg(items=[1], meta={"k": "v"}))
        first = await self._next(layer, a)
        first["items"].append(2)
        first["meta"]["k"] = "changed"
        second = await self._next(layer, b)
        assert second == _msg(items=[1], meta={"k": "v"})
        assert second is not first

    async def test_group_members_get_distinct_copies_of_a_flat_message(self, layer: ChannelLayer) -> None:
        """A message of text and numbers only is still each member's own dict: changing one leaves the rest."""
        groups = _groups(layer)
        members = [await layer.new_channel() for _ in range(3)]
        group = _unique("group")
        for channel in members:
            await groups.group_add(group, channel)
        await groups.group_send(group, _msg(text="hi", n=1))
        first = await self._next(layer, members[0])
        first["text"] = "changed"
        first["extra"] = True
        del first["n"]
        rest = [await self._next(layer, channel) for channel in members[1:]]
        assert rest == [_msg(text="hi", n=1)] * 2
        assert rest[0] is not rest[1]

    async def test_group_add_is_idempotent(self, layer: ChannelLayer) -> None:
        """Adding a channel twice makes it a member once: it gets each group message once."""
        groups = _groups(layer)
        channel, group = await layer.new_channel(), _unique("group")
        await groups.group_add(group, channel)
        await groups.group_add(group, channel)
        await groups.group_send(group, _msg(n=1))
        assert await self._next(layer, channel) == _msg(n=1)
        await self._assert_empty(layer, channel)

    async def test_group_discard_is_idempotent(self, layer: ChannelLayer) -> None:
        """Discarding a non-member, twice, or from a group that never existed is not an error."""
        groups = _groups(layer)
        channel, group = await layer.new_channel(), _unique("group")
        await groups.group_discard(_unique("never-used"), channel)
        await groups.group_add(group, channel)
        await groups.group_discard(group, channel)
        await groups.group_discard(group, channel)
        await groups.group_send(group, _msg(n=1))
        await self._assert_empty(layer, channel)

    async def test_group_discard_stops_delivery(self, layer: ChannelLayer) -> None:
        """A discarded channel gets no more group messages; the remaining members still do."""
        groups = _groups(layer)
        gone, stays, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
        await groups.group_add(group, gone)
        await groups.group_add(group, stays)
        await groups.group_discard(group, gone)
        await groups.group_send(group, _msg(n=1))
        await self._assert_empty(layer, gone)
        assert await self._next(layer, stays) == _msg(n=1)

    async def test_group_send_to_empty_group_is_a_no_op(self, layer: ChannelLayer) -> None:
        """Sending to a group without members is not an error."""
        await _groups(layer).group_send(_unique("nobody"), _msg(n=1))

    async def test_channel_receives_from_each_of_its_groups(self, layer: ChannelLayer) -> None:
        """A channel in two groups gets the messages of both, in send order."""
        groups = _groups(layer)
        channel, first, second = await layer.new_channel(), _unique("group"), _unique("group")
        await groups.group_add(first, channel)
        await groups.group_add(second, channel)
        await groups.group_send(first, _msg(n=1))
        await groups.group_send(second, _msg(n=2))
        assert await self._next(layer, channel) == _msg(n=1)
        assert await self._next(layer, channel) == _msg(n=2)

    async def test_close_channel_leaves_all_its_groups(self, layer: ChannelLayer) -> None:
        """A closed channel is removed from every group it was in; other members stay."""
        groups = _groups(layer)
        closed, other = await layer.new_channel(), await layer.new_channel()
        shared, alone = _unique("group"), _unique("group")
        await groups.group_add(shared, closed)
        await groups.group_add(shared, other)
        await groups.group_add(alone, closed)
        await layer.close_channel(closed)
        await groups.group_send(shared, _msg(n=1))
        await groups.group_send(alone, _msg(n=2))
        await self._assert_empty(layer, closed)
        assert await self._next(layer, other) == _msg(n=1)
        if isinstance(layer, ListableGroupLayer):
            assert await layer.group_members(shared) == {other}
            assert alone not in await layer.groups()

    # -- listing -----------------------------------------------------------------------------

    async def test_group_members_lists_current_members(self, layer: ChannelLayer) -> None:
        """group_members() is the frozenset of channels added and not discarded."""
        listing = _listing(layer)
        a, b, group = await layer.new_channel(), await layer.new_channel(), _unique("group")
        await listing.group_add(group, a)
        await listing.group_add(group, b)
        members = await listing.group_members(group)
        assert isinstance(members, frozenset)
        assert members == {a, b}
        await listing.group_discard(group, a)
        assert await listing.group_members(group) == {b}

    async def test_group_members_of_unknown_group_is_empty(self, layer: ChannelLayer) -> None:
        """A group that never had members lists as empty, without error."""
        assert await _listing(layer).group_members(_unique("never-used")) == frozenset()

    async def test_groups_counts_members_of_non_empty_groups(self, layer: ChannelLayer) -> None:
        """groups() maps each non-empty group to its member count; emptied groups vanish."""
        listing = _listing(layer)
        a, b = await layer.new_channel(), await layer.new_channel()
        pair, single = _unique("group"), _unique("group")
        await listing.group_add(pair, a)
        await listing.group_add(pair, b)
        await listing.group_add(single, a)
        counts = await listing.groups()
        assert counts[pair] == 2
        assert counts[single] == 1
        await listing.group_discard(single, a)
        assert single not in await listing.groups()

    # -- watching (WatchableLayer: how the actor runtime feeds a channel to its mailbox) -------

    async def _until(self, done: Callable[[], bool], what: str) -> None:
        """Wait (bounded) until *done()*: a layer may notify from its own task, a moment later."""
        with anyio.move_on_after(self.wait_timeout):
            while not done():  # noqa: ASYNC110 - a plain predicate: nothing sets an event for it
                await anyio.sleep(0.005)
        assert done(), f"timed out waiting until {what}"

    async def _watched(self, layer: ChannelLayer, notify: Callable[[], None], **options: Any) -> tuple[str, int]:
        watchable = _watchable(layer)
        channel = await layer.new_channel()
        waiting = watchable.watch_channel(channel, notify, **options)
        assert waiting is not None, f"{type(layer).__name__} cannot watch its own new channel {channel!r}"
        return channel, waiting

    async def test_watch_channel_counts_what_waits_and_notifies_each_message(self, layer: ChannelLayer) -> None:
        """``watch_channel`` returns how many messages wait already, then notifies once per message."""
        watchable = _watchable(layer)
        channel = await layer.new_channel()
        await layer.send(channel, _msg(n=0))
        notified: list[int] = []
        assert watchable.watch_channel(channel, lambda: notified.append(1)) == 1
        for n in range(1, 4):
            await layer.send(channel, _msg(n=n))
        await self._until(lambda: len(notified) == 3, "three notifications came")
        assert len(notified) == 3

    async def test_take_message_hands_over_in_order_and_never_waits(self, layer: ChannelLayer) -> None:
        """``take_message`` pops watched messages oldest first (sends and group sends), then says None."""
        notified: list[int] = []
        channel, waiting = await self._watched(layer, lambda: notified.append(1))
        assert waiting == 0
        assert _watchable(layer).take_message(channel) is None
        await layer.send(channel, _msg(n=0))
        sent = 1
        if isinstance(layer, GroupLayer):
            group = _unique("group")
            await layer.group_add(group, channel)
            await layer.group_send(group, _msg(n=1))
            sent = 2
        await layer.send(channel, _msg(n=sent))
        await self._until(lambda: len(notified) == sent + 1, "every message was notified")
        taken = [_watchable(layer).take_message(channel) for _ in range(sent + 2)]
        assert taken == [*(_msg(n=n) for n in range(sent + 1)), None]

    async def test_watched_channel_keeps_its_capacity(self, layer_factory: LayerFactory) -> None:
        """A watched channel still refuses sends beyond its capacity, until a message is taken."""
        async with layer_factory(capacity=2) as layer:
            channel, _ = await self._watched(layer, lambda: None)
            await layer.send(channel, _msg(n=0))
            await layer.send(channel, _msg(n=1))
            with pytest.raises(ChannelFull):
                await layer.send(channel, _msg(n=2))
            assert _watchable(layer).take_message(channel) == _msg(n=0)
            await layer.send(channel, _msg(n=3))
            assert [_watchable(layer).take_message(channel) for _ in range(3)] == [_msg(n=1), _msg(n=3), None]

    async def test_on_drop_hears_of_each_group_send_drop(self, layer_factory: LayerFactory) -> None:
        """The ``on_drop`` hook of a watched full member is told of every message it missed."""
        async with layer_factory(capacity=1) as layer:
            groups = _groups(layer)
            told: list[int] = []
            channel, _ = await self._watched(layer, lambda: None, on_drop=told.append)
            await layer.send(channel, _msg(n=0))
            group = _unique("group")
            await groups.group_add(group, channel)
            for n in range(1, 4):
                await groups.group_send(group, _msg(n=n))
            await self._until(lambda: sum(told) == 3, "on_drop was told of three drops")
            assert sum(told) == 3
            assert _watchable(layer).take_message(channel) == _msg(n=0)
            assert _watchable(layer).take_message(channel) is None

    async def test_the_watch_ends_with_its_channel(self, layer: ChannelLayer) -> None:
        """After ``close_channel`` the watcher hears nothing more of that channel."""
        notified: list[int] = []
        channel, _ = await self._watched(layer, lambda: notified.append(1))
        await layer.send(channel, _msg(n=0))
        await self._until(lambda: len(notified) == 1, "the first message was notified")
        await layer.close_channel(channel)
        await layer.send(channel, _msg(n=1))
        await anyio.sleep(0.05)  # a layer that notifies from its own task has had its chance
        assert notified == [1]

    # -- group history (HistoryLayer) --------------------------------------------------------

    history_age: ClassVar[float] = 1.0
    """Seconds of ``GroupHistory.age`` the history-age test asks ``layer_factory`` for."""

    @staticmethod
    @asynccontextmanager
    async def _history(layer_factory: LayerFactory, **policy: Any) -> AsyncIterator[ChannelLayer]:
        factory = layer_factory(history=GroupHistory(**policy))
        try:
            layer = await factory.__aenter__()
        except TypeError as error:
            if "history" not in str(error):
                raise
            pytest.skip(f"the layer takes no history= option: {error}")
        try:
            yield layer
        except BaseException as error:
            if not await factory.__aexit__(type(error), error, error.__traceback__):
                raise
        else:
            await factory.__aexit__(None, None, None)

    @staticmethod
    def _keeper(layer: ChannelLayer) -> HistoryLayer:
        if not isinstance(layer, HistoryLayer) or not isinstance(layer, GroupLayer):
            pytest.skip(f"{type(layer).__name__} is not a HistoryLayer: it keeps no group history")
        return layer

    async def _history_group(self, layer: ChannelLayer, sent: int) -> tuple[str, str]:
        keeper, groups = self._keeper(layer), _groups(layer)
        group = _unique("history")
        epoch = (await keeper.group_history(group)).epoch
        for n in range(1, sent + 1):
            await groups.group_send(group, _msg(n=n))
        return group, epoch

    @staticmethod
    def _numbers(page: HistoryPage) -> list[int]:
        return [message["n"] for message in page.messages]

    async def test_history_numbers_each_group_send_and_tells_members(self, layer_factory: LayerFactory) -> None:
        """Offsets run 1, 2, 3 per group; each member's copy carries its group, epoch and offset."""
        async with self._history(layer_factory) as layer:
            keeper, groups = self._keeper(layer), _groups(layer)
            group, channel = _unique("history"), await layer.new_channel()
            await groups.group_add(group, channel)
            for n in range(1, 4):
                await groups.group_send(group, _msg(n=n))
            page = await keeper.group_history(group)
            assert page.offset == 3
            assert page.complete
            assert self._numbers(page) == [1, 2, 3]
            for offset in range(1, 4):
                got = await self._next(layer, channel)
                assert got[POSITION] == {"group": group, "epoch": page.epoch, "offset": offset}
                assert got["n"] == offset

    async def test_history_keeps_what_is_sent_while_nobody_listens(self, layer_factory: LayerFactory) -> None:
        """A group with no members still records: the member that comes back is not a member yet."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 5)
            page = await self._keeper(layer).group_history(group, since=2, epoch=epoch)
            assert (page.epoch, page.offset, page.complete) == (epoch, 5, True)
            assert self._numbers(page) == [3, 4, 5]
            assert [m[POSITION]["offset"] for m in page.messages] == [3, 4, 5]

    async def test_history_since_the_latest_offset_is_empty_and_complete(self, layer_factory: LayerFactory) -> None:
        """Nothing missed is an empty, complete page (a reconnect with nothing to catch up on)."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 2)
            page = await self._keeper(layer).group_history(group, since=2, epoch=epoch)
            assert page.messages == ()
            assert page.complete

    async def test_history_keeps_at_most_count_messages(self, layer_factory: LayerFactory) -> None:
        """Beyond *count* the oldest go: a position before them cannot be recovered."""
        async with self._history(layer_factory, count=3) as layer:
            group, epoch = await self._history_group(layer, 6)
            keeper = self._keeper(layer)
            lost = await keeper.group_history(group, since=1, epoch=epoch)
            assert not lost.complete
            assert self._numbers(lost) == [4, 5, 6]
            kept = await keeper.group_history(group, since=3, epoch=epoch)
            assert kept.complete
            assert self._numbers(kept) == [4, 5, 6]

    async def test_history_forgets_messages_older_than_age(self, layer_factory: LayerFactory) -> None:
        """Messages older than *age* are not returned; offsets go on from where they were."""
        async with self._history(layer_factory, age=self.history_age) as layer:
            group, epoch = await self._history_group(layer, 2)
            groups, keeper = _groups(layer), self._keeper(layer)
            await anyio.sleep(self.history_age * 1.3)
            await groups.group_send(group, _msg(n=3))
            page = await keeper.group_history(group, since=0, epoch=epoch)
            assert not page.complete
            assert self._numbers(page) == [3]
            assert page.offset == 3
            assert (await keeper.group_history(group, since=2, epoch=epoch)).complete

    async def test_history_of_another_epoch_is_incomplete(self, layer_factory: LayerFactory) -> None:
        """A position from an epoch that is not the group's current one cannot be recovered."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 2)
            page = await self._keeper(layer).group_history(group, since=1, epoch="0" * 16)
            assert page.epoch == epoch
            assert page.messages == ()
            assert not page.complete

    async def test_history_flush_starts_a_new_epoch(self, layer_factory: LayerFactory) -> None:
        """After ``flush()`` the old positions are gone for good: a new epoch, offsets from 1."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 2)
            await layer.flush()
            await _groups(layer).group_send(group, _msg(n=1))
            page = await self._keeper(layer).group_history(group, since=1, epoch=epoch)
            assert page.epoch != epoch
            assert not page.complete
            assert page.offset == 1

    async def test_history_limit_returns_the_oldest_first(self, layer_factory: LayerFactory) -> None:
        """*limit* caps a page at its oldest messages."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 5)
            page = await self._keeper(layer).group_history(group, since=1, epoch=epoch, limit=2)
            assert page.complete
            assert self._numbers(page) == [2, 3]

    async def test_history_pages_are_copies(self, layer_factory: LayerFactory) -> None:
        """Changing a page's messages changes nothing kept."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 1)
            keeper = self._keeper(layer)
            (await keeper.group_history(group)).messages[0]["n"] = 99
            assert self._numbers(await keeper.group_history(group, epoch=epoch)) == [1]

    async def test_history_keeps_its_own_copy_of_what_was_sent(self, layer_factory: LayerFactory) -> None:
        """Changing a message after sending it changes nothing kept."""
        async with self._history(layer_factory) as layer:
            keeper, groups = self._keeper(layer), _groups(layer)
            group, sent = _unique("history"), _msg(items=[1, 2])
            await groups.group_send(group, sent)
            sent["items"].append(3)
            assert (await keeper.group_history(group)).messages[0]["items"] == [1, 2]

    async def test_groups_outside_the_history_patterns_are_not_numbered(self, layer_factory: LayerFactory) -> None:
        """Only the groups the patterns match are recorded; reading another's history is an error."""
        async with self._history(layer_factory, groups=("kept.*",)) as layer:
            keeper, groups = self._keeper(layer), _groups(layer)
            group, channel = _unique("other"), await layer.new_channel()
            await groups.group_add(group, channel)
            await groups.group_send(group, _msg(n=1))
            assert POSITION not in await self._next(layer, channel)
            with pytest.raises(ValueError, match="keeps no history") as raised:
                await keeper.group_history(group)
            _assert_shows(raised.value, group)
            assert (await keeper.group_history("kept.room")).offset == 0

    @pytest.mark.parametrize("since", [-1, 1.5, True, "3", None])
    async def test_history_refuses_a_malformed_offset(self, layer_factory: LayerFactory, since: Any) -> None:
        """An offset that is not an integer ≥ 0 raises InvalidHistoryPosition, naming it."""
        async with self._history(layer_factory) as layer:
            group, _ = await self._history_group(layer, 1)
            with pytest.raises(InvalidHistoryPosition) as raised:
                await self._keeper(layer).group_history(group, since=since)
            _assert_shows(raised.value, since)

    async def test_history_refuses_an_offset_never_handed_out(self, layer_factory: LayerFactory) -> None:
        """An offset ahead of the group's latest in its epoch was forged: InvalidHistoryPosition."""
        async with self._history(layer_factory) as layer:
            group, epoch = await self._history_group(layer, 2)
            with pytest.raises(InvalidHistoryPosition, match="ahead of its latest offset 2"):
                await self._keeper(layer).group_history(group, since=3, epoch=epoch)

    @pytest.mark.parametrize("group", ["", "bad name", "x" * (MAX_NAME_LENGTH + 1)])
    async def test_history_refuses_an_invalid_group_name(self, layer_factory: LayerFactory, group: str) -> None:
        """Reading the history of an invalid group name raises InvalidGroupName."""
        async with self._history(layer_factory) as layer:
            with pytest.raises(InvalidGroupName):
                await self._keeper(layer).group_history(group)
