"""MQTT topic names and filters: checks with clear errors, and matching (``+`` and ``#``).

Rules (MQTT v5, 4.7): a topic name is 1 to 65,535 bytes of UTF-8 without ``+``, ``#`` or
NUL; a filter's ``+`` stands for one whole level, ``#`` for any number of levels and only
as the last one; filters starting with a wildcard never match topics starting with ``$``
(``$SYS/…`` is the broker's).
"""

from __future__ import annotations

from typing import Final

__all__ = ["check_topic", "check_topic_filter", "topic_matches"]

_MAX_BYTES: Final = 65535


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        msg = f"an MQTT {what} is a str, not {type(value).__name__} ({value!r})"
        raise TypeError(msg)
    if not value:
        msg = f"an MQTT {what} cannot be empty"
        raise ValueError(msg)
    if "\x00" in value:
        msg = f"an MQTT {what} cannot hold NUL characters: {value!r}"
        raise ValueError(msg)
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_BYTES:
        msg = f"an MQTT {what} is at most {_MAX_BYTES} bytes of UTF-8"
        raise ValueError(msg)
    return value


def check_topic(topic: object) -> str:
    """Return *topic* if it is a valid topic name to publish to, else raise naming what is wrong."""
    text = _check_text(topic, "topic")
    if "+" in text or "#" in text:
        msg = f"cannot publish to {text!r}: '+' and '#' are wildcards, for subscriptions only"
        raise ValueError(msg)
    return text


def check_topic_filter(topic_filter: object) -> str:
    """Return *topic_filter* if it is a valid subscription filter, else raise naming what is wrong."""
    text = _check_text(topic_filter, "topic filter")
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            msg = f"invalid topic filter {text!r}: '#' must be a whole level, and the last one (e.g. 'sensors/#')"
            raise ValueError(msg)
        if "+" in level and level != "+":
            msg = f"invalid topic filter {text!r}: '+' must be a whole level (e.g. 'sensors/+/temperature')"
            raise ValueError(msg)
    return text


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether *topic* matches *topic_filter* (``sensors/+/temp``, ``sensors/#``)."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in {"+", "#"}:
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)
