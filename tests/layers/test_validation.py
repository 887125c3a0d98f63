"""The checks every layer applies: names, messages and the receiver's copy (no event loop)."""

from __future__ import annotations

import datetime
import decimal
import enum
import re
from collections import OrderedDict, UserDict, defaultdict
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from interlock.layers import (
    MAX_NAME_LENGTH,
    ChannelLayerError,
    InvalidChannelName,
    InvalidGroupName,
    InvalidMessage,
    UnserializableMessage,
    check_message,
    require_channel_name,
    require_group_name,
)
from interlock.layers._validation import MAX_DEPTH, copier, copy_message


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Room(enum.StrEnum):
    LOBBY = "lobby"


class BadRoom(enum.StrEnum):
    SPACED = "has space"


class Point(NamedTuple):
    x: int
    y: int


def nested(levels: int, bottom: Any = "bottom") -> Any:
    value = bottom
    for _ in range(levels):
        value = [value]
    return value


def shown(value: object) -> str:
    """How an error message shows *value*: its repr, cut short when long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- names ---------------------------------------------------------------------------------------

VALID_NAMES = [
    "a",
    "Z",
    "0",
    "-",
    "_",
    ".",
    "Mixed.Case-09_x",
    "http.request",
    "x" * MAX_NAME_LENGTH,
]

VALID_LOCAL_CHANNELS = [
    "specific.abc123!x9",
    "abc!",
    "a" * (MAX_NAME_LENGTH - 1) + "!",
    "a!" + "b" * (MAX_NAME_LENGTH - 2),
]

# (name, what the message must say about it)
BAD_NAMES = [
    pytest.param("x" * (MAX_NAME_LENGTH + 1), "101 characters long", id="101-chars"),
    pytest.param("x" * 10_000, "10000 characters long", id="10000-chars"),
    pytest.param("", "empty", id="empty"),
    pytest.param(" ", "' '", id="space-only"),
    pytest.param("a b", "' '", id="space"),
    pytest.param("name\n", "'\\n'", id="trailing-newline"),
    pytest.param("\nname", "'\\n'", id="leading-newline"),
    pytest.param("tab\t", "'\\t'", id="tab"),
    pytest.param("nul\x00", "'\\x00'", id="nul"),
    pytest.param("digit-\u0661", "'\u0661'", id="arabic-digit"),
    pytest.param("digit-\u00b2", "'\u00b2'", id="superscript-digit"),
    pytest.param("caf\u00e9", "'\u00e9'", id="accented-letter"),
    pytest.param("\uff41", "'\uff41'", id="fullwidth-letter"),
    pytest.param("a/b", "'/'", id="slash"),
    pytest.param("a:b", "':'", id="colon"),
    pytest.param("a*", "'*'", id="star"),
]

NOT_STR = [
    pytest.param(None, "NoneType", id="None"),
    pytest.param(1, "int", id="int"),
    pytest.param(1.5, "float", id="float"),
    pytest.param(b"name", "bytes", id="bytes"),
    pytest.param(bytearray(b"name"), "bytearray", id="bytearray"),
    pytest.param(["name"], "list", id="list"),
    pytest.param(["x" * 500], "list", id="long-list"),
]


@pytest.mark.parametrize("name", [*VALID_NAMES, *VALID_LOCAL_CHANNELS])
def test_channel_name_accepted(name: str) -> None:
    assert require_channel_name(name) is name


@pytest.mark.parametrize("name", VALID_NAMES)
def test_group_name_accepted(name: str) -> None:
    assert require_group_name(name) is name


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
def test_channel_name_rejected(name: str, problem: str) -> None:
    with pytest.raises(InvalidChannelName) as caught:
        require_channel_name(name)
    message = str(caught.value)
    assert message.startswith(f"invalid channel name {shown(name)}: ")
    assert problem in message
    assert len(message) < 400


@pytest.mark.parametrize(("name", "problem"), BAD_NAMES)
def test_group_name_rejected(name: str, problem: str) -> None:
    with pytest.raises(InvalidGroupName) as caught:
        require_group_name(name)
    message = str(caught.value)
    assert message.startswith(f"invalid group name {shown(name)}: ")
    assert problem in message
    assert len(message) < 400


@pytest.mark.parametrize(
    "name",
    [
        "!",
        "!abc",
        "a!b!c",
        "a!!",
        "!" + "x" * MAX_NAME_LENGTH,
    ],
)
def test_channel_name_bang_rules(name: str) -> None:
    with pytest.raises(InvalidChannelName, match="a '!' may appear once, after a non-empty prefix"):
        require_channel_name(name)


def test_channel_name_with_bang_still_limited_to_100() -> None:
    name = "a" * 50 + "!" + "b" * 50
    with pytest.raises(InvalidChannelName, match="101 characters long"):
        require_channel_name(name)


@pytest.mark.parametrize("name", ["abc!", "specific.abc!x9", "!"])
def test_group_name_rejects_bang(name: str) -> None:
    with pytest.raises(InvalidGroupName, match="contains '!'"):
        require_group_name(name)


@pytest.mark.parametrize(("name", "kind"), NOT_STR)
def test_channel_name_must_be_str(name: object, kind: str) -> None:
    with pytest.raises(InvalidChannelName) as caught:
        require_channel_name(name)
    assert str(caught.value) == f"channel name must be a str, not {kind} ({shown(name)})"


@pytest.mark.parametrize(("name", "kind"), NOT_STR)
def test_group_name_must_be_str(name: object, kind: str) -> None:
    with pytest.raises(InvalidGroupName) as caught:
        require_group_name(name)
    assert str(caught.value) == f"group name must be a str, not {kind} ({shown(name)})"


@pytest.mark.parametrize("error", [InvalidChannelName, InvalidGroupName])
def test_name_errors_are_value_errors(error: type[Exception]) -> None:
    assert issubclass(error, ValueError)
    assert issubclass(error, ChannelLayerError)


@pytest.mark.parametrize("check", [require_channel_name, require_group_name])
def test_str_subclass_name_is_checked_by_its_value(check: Any) -> None:
    checked = check(Room.LOBBY)
    assert checked == "lobby"
    assert type(checked) is str


@pytest.mark.parametrize(
    ("check", "error"), [(require_channel_name, InvalidChannelName), (require_group_name, InvalidGroupName)]
)
def test_str_subclass_with_bad_value_is_rejected(check: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="'has space': it contains ' '"):
        check(BadRoom.SPACED)


# -- check_message ---------------------------------------------------------------------------------

GOOD_MESSAGES = [
    pytest.param({"type": "x"}, id="type-only"),
    pytest.param({"type": "chat.message", "text": "hi", "n": 1, "f": 1.5, "ok": True, "none": None}, id="scalars"),
    pytest.param({"type": "t", "b": b"\x00\xff", "u": "\u2603\U0001f600"}, id="bytes-and-unicode"),
    pytest.param({"type": "t", "l": [], "d": {}, "t": ()}, id="empty-containers"),
    pytest.param({"type": "t", "pair": (1, (2, [3]))}, id="tuples"),
    pytest.param({"type": "t", "\u043a\u043b\u044e\u0447": 1, "": 2}, id="unicode-and-empty-keys"),
    pytest.param({"type": "t", "deep": nested(MAX_DEPTH - 1)}, id="deepest-list"),
    pytest.param({"type": "t", "deep": nested(MAX_DEPTH - 2, bottom=[])}, id="deepest-empty-list"),
    pytest.param({"type": "t", "big": 2**200, "nan": float("nan")}, id="big-int-and-nan"),
]


@pytest.mark.parametrize("message", GOOD_MESSAGES)
def test_good_message_is_returned_unchanged(message: dict[str, Any]) -> None:
    assert check_message(message) is message


def recursive_list() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def recursive_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {"type": "t"}
    loop["self"] = loop
    return loop


# (message, error, text the error message must contain)
BAD_MESSAGES = [
    pytest.param(None, InvalidMessage, "must be a dict with a 'type' key, not NoneType (None)", id="None"),
    pytest.param(["type", "t"], InvalidMessage, "not list (['type', 't'])", id="list"),
    pytest.param("text", InvalidMessage, "not str ('text')", id="str"),
    pytest.param((("type", "t"),), InvalidMessage, "not tuple", id="pairs"),
    pytest.param(MappingProxyType({"type": "t"}), InvalidMessage, "not mappingproxy", id="mapping-proxy"),
    pytest.param(UserDict(type="t"), InvalidMessage, "not UserDict", id="user-dict"),
    pytest.param(OrderedDict(type="t"), InvalidMessage, "not OrderedDict", id="ordered-dict"),
    pytest.param(defaultdict(str, type="t"), InvalidMessage, "not defaultdict", id="defaultdict"),
    pytest.param({}, InvalidMessage, "needs a non-empty str 'type', got None in {}", id="empty-dict"),
    pytest.param({"text": "hi"}, InvalidMessage, "got None in {'text': 'hi'}", id="missing-type"),
    pytest.param({"type": ""}, InvalidMessage, "got ''", id="empty-type"),
    pytest.param({"type": None}, InvalidMessage, "got None", id="None-type"),
    pytest.param({"type": 7}, InvalidMessage, "got 7", id="int-type"),
    pytest.param({"type": b"t"}, InvalidMessage, "got b't'", id="bytes-type"),
    pytest.param({"type": ["t"]}, InvalidMessage, "got ['t']", id="list-type"),
    pytest.param({"type": Room.LOBBY}, InvalidMessage, "got <Room.LOBBY: 'lobby'>", id="enum-type"),
    pytest.param({"type": "t", 1: "x"}, InvalidMessage, "message key 1 must be a str, not int", id="int-key"),
    pytest.param({"type": "t", None: "x"}, InvalidMessage, "message key None must be", id="None-key"),
    pytest.param({"type": "t", b"k": "x"}, InvalidMessage, "message key b'k' must be", id="bytes-key"),
    pytest.param(
        {"type": "t", "a": [{"b": {3: 1}}]},
        InvalidMessage,
        "message key 3 at ['a'][0]['b'] must be a str, not int",
        id="nested-key",
    ),
    pytest.param({"type": "t", "s": {1}}, UnserializableMessage, "at ['s'] is a set ({1})", id="set"),
    pytest.param({"type": "t", "s": frozenset()}, UnserializableMessage, "is a frozenset", id="frozenset"),
    pytest.param({"type": "t", "o": object()}, UnserializableMessage, "at ['o'] is an object", id="object"),
    pytest.param({"type": "t", "b": bytearray(b"x")}, UnserializableMessage, "is a bytearray", id="bytearray"),
    pytest.param({"type": "t", "c": 1j}, UnserializableMessage, "is a complex (1j)", id="complex"),
    pytest.param({"type": "t", "d": decimal.Decimal(1)}, UnserializableMessage, "is a Decimal", id="decimal"),
    pytest.param({"type": "t", "d": datetime.date(2024, 1, 2)}, UnserializableMessage, "is a date", id="date"),
    pytest.param({"type": "t", "f": len}, UnserializableMessage, "is a builtin_function_or_method", id="function"),
    pytest.param({"type": "t", "e": Color.RED}, UnserializableMessage, "is a Color", id="enum"),
    pytest.param({"type": "t", "e": Level.HIGH}, UnserializableMessage, "is a Level", id="int-enum"),
    pytest.param({"type": "t", "e": Room.LOBBY}, UnserializableMessage, "is a Room", id="str-enum"),
    pytest.param({"type": "t", "p": Point(1, 2)}, UnserializableMessage, "is a Point", id="namedtuple"),
    pytest.param(
        {"type": "t", "d": OrderedDict(a=1)},
        UnserializableMessage,
        "at ['d'] is a OrderedDict",
        id="nested-dict-subclass",
    ),
    pytest.param(
        {"type": "t", "a": {"b": [1, {"c": {2}}]}},
        UnserializableMessage,
        "at ['a']['b'][1]['c'] is a set",
        id="nested-set",
    ),
    pytest.param({"type": "t", "a": (1, {2})}, UnserializableMessage, "at ['a'][1] is a set", id="set-in-tuple"),
    pytest.param(
        {"type": "t", "deep": nested(MAX_DEPTH)},
        UnserializableMessage,
        f"is nested deeper than {MAX_DEPTH} levels",
        id="one-too-deep",
    ),
    pytest.param(
        {"type": "t", "deep": nested(MAX_DEPTH - 1, bottom=[])},
        UnserializableMessage,
        "nested deeper",
        id="one-too-deep-empty",
    ),
    pytest.param({"type": "t", "loop": recursive_list()}, UnserializableMessage, "nested deeper", id="list-cycle"),
    pytest.param(recursive_dict(), UnserializableMessage, "at ['self']['self']", id="dict-cycle"),
]


@pytest.mark.parametrize(("message", "error", "problem"), BAD_MESSAGES)
def test_bad_message_is_rejected(message: Any, error: type[InvalidMessage], problem: str) -> None:
    with pytest.raises(error) as caught:
        check_message(message)
    assert without_article(problem) in without_article(str(caught.value))
    assert len(str(caught.value)) < 2000


def without_article(text: str) -> str:
    """Drop the article after "is", so a check holds for "is a set" and "is an object" alike."""
    return re.sub(r"\bis an? ", "is ", text)


def test_deep_dicts_count_like_lists() -> None:
    def dicts(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = {"k": value}
        return value

    check_message({"type": "t", "d": dicts(MAX_DEPTH - 1)})
    with pytest.raises(UnserializableMessage, match="nested deeper"):
        check_message({"type": "t", "d": dicts(MAX_DEPTH)})


def test_long_bad_value_is_cut_short_in_the_error() -> None:
    with pytest.raises(UnserializableMessage) as caught:
        check_message({"type": "t", "s": {"x" * 10_000}})
    assert "..." in str(caught.value)
    assert len(str(caught.value)) < 400


def test_message_errors_are_type_errors() -> None:
    assert issubclass(InvalidMessage, TypeError)
    assert issubclass(InvalidMessage, ChannelLayerError)
    assert issubclass(UnserializableMessage, InvalidMessage)


# -- copy_message ----------------------------------------------------------------------------------


def as_received(value: Any) -> Any:
    """What a value becomes after a trip through any wire format: tuples turn into lists."""
    if isinstance(value, dict):
        return {key: as_received(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_received(item) for item in value]
    return value


def assert_no_shared_containers(original: Any, copy: Any) -> None:
    if isinstance(original, dict):
        assert copy is not original
        for key, item in original.items():
            assert_no_shared_containers(item, copy[key])
    elif isinstance(original, list | tuple):
        assert copy is not original
        for item, copied in zip(original, copy, strict=True):
            assert_no_shared_containers(item, copied)
    else:
        assert copy is original


@pytest.mark.parametrize("message", GOOD_MESSAGES)
def test_copy_is_equal_and_shares_no_container(message: dict[str, Any]) -> None:
    copy = copy_message(message)
    if message.get("nan") is None:
        assert copy == as_received(message)
    assert_no_shared_containers(message, copy)


@pytest.mark.parametrize("message", GOOD_MESSAGES)
def test_the_copier_copies_as_copy_message_does(message: dict[str, Any]) -> None:
    """A group send copies each member's message with copier()'s function: same result, no shared container."""
    copy = copier(message)(message)
    if message.get("nan") is None:
        assert copy == copy_message(message)
    assert_no_shared_containers(message, copy)


def test_the_copier_of_a_flat_message_is_dict_copy() -> None:
    """Only immutable values (the usual event): a plain dict.copy, in C; any container needs copy_message."""
    assert copier({"type": "chat.message", "text": "hi", "n": 1, "ok": True, "raw": b"x", "none": None}) is dict.copy
    assert copier({"type": "t", "items": []}) is copy_message
    assert copier({"type": "t", "meta": {"k": "v"}}) is copy_message
    assert copier({"type": "t", "pair": (1, 2)}) is copy_message


def test_copy_turns_tuples_into_lists_at_any_depth() -> None:
    message = {"type": "t", "a": (1, {"b": (2, (3,))}), "c": [(4,)]}
    copy = copy_message(message)
    assert copy == {"type": "t", "a": [1, {"b": [2, [3]]}], "c": [[4]]}
    assert type(copy["a"]) is list
    assert type(copy["a"][1]["b"][1]) is list
    assert type(copy["c"][0]) is list
    assert message["a"] == (1, {"b": (2, (3,))})


def test_copy_and_original_change_independently() -> None:
    message: dict[str, Any] = {"type": "t", "items": [1, {"k": "v"}], "meta": {"tags": ["a"]}}
    copy = copy_message(message)
    copy["items"][1]["k"] = "changed"
    copy["meta"]["tags"].append("b")
    copy["new"] = 1
    assert message == {"type": "t", "items": [1, {"k": "v"}], "meta": {"tags": ["a"]}}
    message["items"].append(2)
    assert copy["items"] == [1, {"k": "changed"}]


def test_copy_shares_immutable_scalars() -> None:
    blob = b"x" * 1000
    text = "y" * 1000
    copy = copy_message({"type": "t", "blob": blob, "list": [text]})
    assert copy["blob"] is blob
    assert copy["list"][0] is text


def test_copy_of_deepest_message() -> None:
    message = {"type": "t", "deep": nested(MAX_DEPTH - 2, bottom=(1,))}
    assert copy_message(message) == as_received(message)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5).filter(lambda key: key != "type"), json_like, max_size=5))
def test_any_json_like_message_is_accepted_and_copied(values: dict[str, Any]) -> None:
    message = {"type": "generated", **values}
    assert check_message(message) is message
    copy = copy_message(message)
    assert copy == as_received(message)
    assert_no_shared_containers(message, copy)
