"""Validation of HTTP API trigger and batch bodies, and of info lists."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clarion.protocol.api import (
    TRIGGER_INFO_ATTRIBUTES,
    EventRequest,
    is_valid_socket_id,
    parse_batch_events,
    parse_event,
    parse_info,
)
from clarion.protocol.apps import Limits
from clarion.protocol.errors import ApiError

LIMITS = Limits()


def encode(fields: Any) -> bytes:
    return json.dumps(fields).encode()


def trigger(**fields: Any) -> dict[str, Any]:
    """Return a valid trigger body with some fields replaced or added."""
    body: dict[str, Any] = {"name": "my-event", "channels": ["my-channel"], "data": "x"}
    body.update(fields)
    return body


def channels(count: int) -> list[str]:
    return [f"channel-{index}" for index in range(count)]


# parse_event: accepted bodies

ACCEPTED = [
    pytest.param(
        {"name": "my-event", "channels": ["my-channel"], "data": '{"x":1}'},
        EventRequest("my-event", ("my-channel",), '{"x":1}'),
        id="channels-array",
    ),
    pytest.param(
        {"name": "my-event", "channel": "my-channel", "data": "x"},
        EventRequest("my-event", ("my-channel",), "x"),
        id="single-channel",
    ),
    pytest.param(
        trigger(channel="ignored", channels=["wins"]),
        EventRequest("my-event", ("wins",), "x"),
        id="channels-over-channel",
    ),
    pytest.param(
        trigger(channels=["b", "a", "b", "a"]),
        EventRequest("my-event", ("b", "a"), "x"),
        id="duplicates-collapsed-in-order",
    ),
    pytest.param(
        trigger(channels=["private-encrypted-x"]),
        EventRequest("my-event", ("private-encrypted-x",), "x"),
        id="encrypted-alone",
    ),
    pytest.param(
        trigger(channels=["private-encrypted-x", "private-encrypted-x"]),
        EventRequest("my-event", ("private-encrypted-x",), "x"),
        id="encrypted-duplicated",
    ),
    pytest.param(
        trigger(channels=["#server-to-user-42"]),
        EventRequest("my-event", ("#server-to-user-42",), "x"),
        id="server-to-user-target",
    ),
    pytest.param(
        trigger(data={"a": [1, 2], "b": "é"}),
        EventRequest("my-event", ("my-channel",), '{"a":[1,2],"b":"é"}'),
        id="object-data-compact",
    ),
    pytest.param(
        trigger(data=42),
        EventRequest("my-event", ("my-channel",), "42"),
        id="number-data-compact",
    ),
    pytest.param(
        trigger(data='{ "spaced" : true }'),
        EventRequest("my-event", ("my-channel",), '{ "spaced" : true }'),
        id="string-data-verbatim",
    ),
    pytest.param(
        trigger(socket_id="123.456"),
        EventRequest("my-event", ("my-channel",), "x", socket_id="123.456"),
        id="socket-id",
    ),
    pytest.param(
        trigger(info="user_count,subscription_count"),
        EventRequest(
            "my-event",
            ("my-channel",),
            "x",
            info=frozenset({"user_count", "subscription_count"}),
        ),
        id="info",
    ),
    pytest.param(
        trigger(name="pusherish:event"),
        EventRequest("pusherish:event", ("my-channel",), "x"),
        id="name-like-reserved",
    ),
    pytest.param(
        trigger(name="my-pusher:event"),
        EventRequest("my-pusher:event", ("my-channel",), "x"),
        id="reserved-prefix-inside-name",
    ),
    pytest.param(
        trigger(name="é" * 200),
        EventRequest("é" * 200, ("my-channel",), "x"),
        id="name-200-characters",
    ),
    pytest.param(
        trigger(channels=["x" * 164]),
        EventRequest("my-event", ("x" * 164,), "x"),
        id="channel-164-characters",
    ),
    pytest.param(
        trigger(data="x" * 10240),
        EventRequest("my-event", ("my-channel",), "x" * 10240),
        id="data-10240-bytes",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), ACCEPTED)
def test_parse_event_accepts(fields: dict[str, Any], expected: EventRequest) -> None:
    """A valid trigger body gives the event to publish."""
    assert parse_event(encode(fields), LIMITS) == expected


def test_parse_event_accepts_100_channels() -> None:
    """One hundred channels are allowed in one trigger."""
    request = parse_event(encode(trigger(channels=channels(100))), LIMITS)
    assert len(request.channels) == 100


def test_parse_event_custom_channel_limit() -> None:
    """An app's own channel name limit replaces the default 164."""
    limits = Limits(max_channel_name_length=200)
    request = parse_event(encode(trigger(channels=["x" * 200])), limits)
    assert request.channels == ("x" * 200,)


# parse_event: rejected bodies, with the expected status

REJECTED = [
    pytest.param(b"{", 400, id="invalid-json"),
    pytest.param(b"", 400, id="empty-body"),
    pytest.param(b"\xff\xfe{}", 400, id="invalid-utf8"),
    pytest.param(b"[]", 400, id="array-body"),
    pytest.param(b'"text"', 400, id="string-body"),
    pytest.param(b"[" * 100_000, 400, id="deeply-nested"),
    pytest.param(encode({"name": "e", "data": "x"}), 400, id="no-channel"),
    pytest.param(encode(trigger(channels=[])), 400, id="empty-channels"),
    pytest.param(encode(trigger(channels="my-channel")), 400, id="channels-string"),
    pytest.param(encode(trigger(channels=channels(101))), 400, id="101-channels"),
    pytest.param(encode(trigger(channels=[42])), 400, id="channel-not-string"),
    pytest.param(
        encode({"name": "e", "channel": None, "data": "x"}), 400, id="channel-null"
    ),
    pytest.param(encode(trigger(channels=["my channel"])), 400, id="channel-space"),
    pytest.param(encode(trigger(channels=["x" * 165])), 400, id="channel-165"),
    pytest.param(encode(trigger(channels=["#foo"])), 400, id="channel-hash"),
    pytest.param(
        encode(trigger(channels=["private-encrypted-x", "my-channel"])),
        400,
        id="encrypted-among-several",
    ),
    pytest.param(
        encode(trigger(channels=["private-encrypted-x", "private-encrypted-y"])),
        400,
        id="two-encrypted",
    ),
    pytest.param(
        encode(trigger(channels=["private-encrypted-cache-x", "my-channel"])),
        400,
        id="encrypted-cache-among-several",
    ),
    pytest.param(
        encode({"channels": ["my-channel"], "data": "x"}), 400, id="name-missing"
    ),
    pytest.param(encode(trigger(name="")), 400, id="name-empty"),
    pytest.param(encode(trigger(name=42)), 400, id="name-not-string"),
    pytest.param(encode(trigger(name="x" * 201)), 400, id="name-201-characters"),
    pytest.param(encode(trigger(name="pusher:foo")), 400, id="name-pusher-prefix"),
    pytest.param(
        encode(trigger(name="pusher_internal:foo")), 400, id="name-internal-prefix"
    ),
    pytest.param(encode(trigger(name="pusher:")), 400, id="name-bare-prefix"),
    pytest.param(
        encode({"name": "e", "channels": ["my-channel"]}), 400, id="data-missing"
    ),
    pytest.param(encode(trigger(data="x" * 10241)), 413, id="data-10241-bytes"),
    pytest.param(encode(trigger(data="é" * 5121)), 413, id="data-non-ascii-bytes"),
    pytest.param(
        encode(trigger(data={"k": "x" * 10240})), 413, id="object-data-encoded-size"
    ),
    pytest.param(encode(trigger(socket_id="123")), 400, id="socket-id-no-dot"),
    pytest.param(encode(trigger(socket_id="abc.def")), 400, id="socket-id-letters"),
    pytest.param(encode(trigger(socket_id="1.2.3")), 400, id="socket-id-two-dots"),
    pytest.param(encode(trigger(socket_id="123.456 ")), 400, id="socket-id-space"),
    pytest.param(encode(trigger(socket_id="123.456\n")), 400, id="socket-id-newline"),
    pytest.param(encode(trigger(socket_id=".456")), 400, id="socket-id-empty-part"),
    pytest.param(encode(trigger(socket_id=123.456)), 400, id="socket-id-number"),
    pytest.param(encode(trigger(info="cache")), 400, id="info-cache"),
    pytest.param(encode(trigger(info="occupied")), 400, id="info-unknown"),
    pytest.param(encode(trigger(info=["user_count"])), 400, id="info-not-string"),
]


@pytest.mark.parametrize(("body", "status"), REJECTED)
def test_parse_event_rejects(body: bytes, status: int) -> None:
    """An invalid trigger body raises ApiError with the expected status."""
    with pytest.raises(ApiError) as caught:
        parse_event(body, LIMITS)
    assert caught.value.status == status


# Batches


def batch_item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": "my-event", "channel": "my-channel", "data": "x"}
    item.update(fields)
    return item


def test_parse_batch_keeps_item_order() -> None:
    """Each item becomes one event, in the order given, with its own options."""
    body = encode(
        {
            "batch": [
                batch_item(name="first"),
                batch_item(name="second", channel="other", data={"n": 1}),
                batch_item(socket_id="1.2", info="subscription_count"),
            ]
        }
    )
    assert parse_batch_events(body, LIMITS) == [
        EventRequest("first", ("my-channel",), "x"),
        EventRequest("second", ("other",), '{"n":1}'),
        EventRequest(
            "my-event",
            ("my-channel",),
            "x",
            socket_id="1.2",
            info=frozenset({"subscription_count"}),
        ),
    ]


def test_parse_batch_accepts_ten_items() -> None:
    """Ten items are allowed in one batch."""
    body = encode({"batch": [batch_item() for _ in range(10)]})
    assert len(parse_batch_events(body, LIMITS)) == 10


# (body, status, text the message starts with, or None)
BATCH_REJECTED = [
    pytest.param(
        encode({"batch": [batch_item() for _ in range(11)]}), 400, None, id="11-items"
    ),
    pytest.param(encode({"batch": []}), 400, None, id="empty-batch"),
    pytest.param(encode({}), 400, None, id="batch-missing"),
    pytest.param(encode({"batch": batch_item()}), 400, None, id="batch-object"),
    pytest.param(encode([batch_item()]), 400, None, id="body-array"),
    pytest.param(b"{", 400, None, id="invalid-json"),
    pytest.param(
        encode({"batch": [batch_item(), "text"]}), 400, "Batch item 1", id="item-string"
    ),
    pytest.param(
        encode({"batch": [{"name": "e", "data": "x"}]}),
        400,
        "Batch item 0",
        id="item-no-channel",
    ),
    pytest.param(
        encode({"batch": [{"name": "e", "channels": ["c"], "data": "x"}]}),
        400,
        "Batch item 0",
        id="item-channels-array",
    ),
    pytest.param(
        encode({"batch": [batch_item(), batch_item(), batch_item(name="pusher:x")]}),
        400,
        "Batch item 2:",
        id="third-item-reserved-name",
    ),
    pytest.param(
        encode({"batch": [batch_item(), batch_item(channel="bad channel")]}),
        400,
        "Batch item 1:",
        id="second-item-bad-channel",
    ),
    pytest.param(
        encode({"batch": [batch_item(), batch_item(data="x" * 10241)]}),
        413,
        "Batch item 1:",
        id="second-item-oversized",
    ),
    pytest.param(
        encode({"batch": [batch_item(socket_id="x")]}),
        400,
        "Batch item 0:",
        id="item-bad-socket-id",
    ),
]


@pytest.mark.parametrize(("body", "status", "prefix"), BATCH_REJECTED)
def test_parse_batch_rejects(body: bytes, status: int, prefix: str | None) -> None:
    """An invalid batch raises ApiError naming the first bad item's index."""
    with pytest.raises(ApiError) as caught:
        parse_batch_events(body, LIMITS)
    assert caught.value.status == status
    if prefix is not None:
        assert caught.value.message.startswith(prefix)


# info lists

INFO_PARSED = [
    pytest.param(None, frozenset(), id="absent"),
    pytest.param("", frozenset(), id="empty"),
    pytest.param("user_count", frozenset({"user_count"}), id="one"),
    pytest.param(
        "user_count,subscription_count",
        frozenset({"user_count", "subscription_count"}),
        id="two",
    ),
    pytest.param(
        " user_count , subscription_count ",
        frozenset({"user_count", "subscription_count"}),
        id="spaces",
    ),
    pytest.param(",user_count,,", frozenset({"user_count"}), id="empty-parts"),
    pytest.param("user_count,user_count", frozenset({"user_count"}), id="repeated"),
]


@pytest.mark.parametrize(("raw", "expected"), INFO_PARSED)
def test_parse_info_splits_list(raw: str | None, expected: frozenset[str]) -> None:
    """A comma list gives the set of attributes asked for."""
    assert parse_info(raw, TRIGGER_INFO_ATTRIBUTES) == expected


def test_parse_info_rejects_unknown() -> None:
    """An attribute outside the allowed set raises 400 naming it."""
    with pytest.raises(ApiError) as caught:
        parse_info("user_count,cache", frozenset({"user_count"}))
    assert caught.value.status == 400
    assert "cache" in caught.value.message


def test_parse_info_is_case_sensitive() -> None:
    """Attribute names are case-sensitive, so USER_COUNT is unknown."""
    with pytest.raises(ApiError):
        parse_info("USER_COUNT", TRIGGER_INFO_ATTRIBUTES)


SOCKET_IDS = [
    pytest.param("123.456", True, id="plain"),
    pytest.param("0.0", True, id="zeros"),
    pytest.param("10000000000.10000000000", True, id="largest-drawn"),
    pytest.param("123", False, id="no-dot"),
    pytest.param("123.", False, id="empty-second-part"),
    pytest.param("-1.2", False, id="sign"),
    pytest.param("1.2a", False, id="trailing-letter"),
    pytest.param("", False, id="empty"),
]


@pytest.mark.parametrize(("value", "valid"), SOCKET_IDS)
def test_socket_id_format(value: str, valid: bool) -> None:
    """A socket_id is two runs of digits joined by one dot."""
    assert is_valid_socket_id(value) is valid
