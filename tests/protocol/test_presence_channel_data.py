"""Parsing and limits of presence channel_data."""

from __future__ import annotations

import json

import pytest

from clarion.protocol.apps import Limits
from clarion.protocol.errors import SubscriptionError
from clarion.protocol.presence import Member, parse_channel_data

LIMITS = Limits()


def info_of_size(size: int, filler: str = "x") -> dict[str, str]:
    """Return a user_info whose compact UTF-8 JSON is exactly ``size`` bytes."""
    overhead = len('{"name":""}')
    room = size - overhead
    width = len(filler.encode())
    return {"name": filler * (room // width) + "x" * (room % width)}


PARSED = [
    pytest.param(
        '{"user_id":"abc","user_info":{"name":"A"}}',
        Member("abc", {"name": "A"}),
        id="string-id",
    ),
    pytest.param('{"user_id":10}', Member("10", None), id="integer-id-canonical"),
    pytest.param('{"user_id":-3}', Member("-3", None), id="negative-integer-id"),
    pytest.param(
        '{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}',
        Member("10", {"name": "Mr. Pusher"}),
        id="python-sdk-spacing",
    ),
    pytest.param(
        '{"user_id":"1","user_info":"plain string"}',
        Member("1", "plain string"),
        id="info-any-json-value",
    ),
    pytest.param(
        '{"user_id":"1","user_info":{"name":"A"},"extra":true}',
        Member("1", {"name": "A"}),
        id="extra-keys-ignored",
    ),
    pytest.param(
        json.dumps({"user_id": "x" * 128}), Member("x" * 128, None), id="id-128-chars"
    ),
    pytest.param(
        json.dumps({"user_id": "1", "user_info": info_of_size(1024)}),
        Member("1", info_of_size(1024)),
        id="info-1024-bytes",
    ),
    # 1024 bytes of UTF-8: the limit counts bytes of the characters themselves,
    # not of \\u escapes.
    pytest.param(
        json.dumps({"user_id": "1", "user_info": info_of_size(1024, "é")}),
        Member("1", info_of_size(1024, "é")),
        id="info-1024-bytes-non-ascii",
    ),
    pytest.param(
        json.dumps({"user_id": "1", "user_info": info_of_size(1024, "😀")}),
        Member("1", info_of_size(1024, "😀")),
        id="info-1024-bytes-emoji",
    ),
]


@pytest.mark.parametrize(("channel_data", "expected"), PARSED)
def test_channel_data_parses_member(channel_data: str, expected: Member) -> None:
    """Valid channel_data gives the member with its canonical string id."""
    assert parse_channel_data(channel_data, LIMITS) == expected


def test_info_of_size_is_exact() -> None:
    """The size helper produces the byte counts the limit tests rely on."""
    encoded = json.dumps(
        info_of_size(1024, "é"), separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert len(encoded) == 1024


# (channel_data, error type, status)
REJECTED = [
    pytest.param(None, "AuthError", 401, id="missing"),
    pytest.param({"user_id": "1"}, "InvalidChannelData", 400, id="object-not-string"),
    pytest.param("{", "InvalidChannelData", 400, id="not-json"),
    pytest.param("", "InvalidChannelData", 400, id="empty-string"),
    pytest.param("[1]", "InvalidChannelData", 400, id="array"),
    pytest.param('"1"', "InvalidChannelData", 400, id="json-string"),
    pytest.param("{}", "InvalidChannelData", 400, id="no-user-id"),
    pytest.param('{"user_id":true}', "InvalidChannelData", 400, id="bool-id"),
    pytest.param('{"user_id":false}', "InvalidChannelData", 400, id="false-id"),
    pytest.param('{"user_id":1.5}', "InvalidChannelData", 400, id="float-id"),
    pytest.param('{"user_id":null}', "InvalidChannelData", 400, id="null-id"),
    pytest.param('{"user_id":["1"]}', "InvalidChannelData", 400, id="array-id"),
    pytest.param('{"user_id":""}', "InvalidChannelData", 400, id="empty-id"),
    pytest.param(
        json.dumps({"user_id": "x" * 129}), "LimitReached", 4301, id="id-129-chars"
    ),
    pytest.param(
        '{"user_id":' + "9" * 129 + "}",
        "LimitReached",
        4301,
        id="integer-id-129-digits",
    ),
    pytest.param(
        json.dumps({"user_id": "1", "user_info": info_of_size(1025)}),
        "LimitReached",
        4301,
        id="info-1025-bytes",
    ),
    pytest.param(
        json.dumps({"user_id": "1", "user_info": info_of_size(1025, "é")}),
        "LimitReached",
        4301,
        id="info-1025-bytes-non-ascii",
    ),
    pytest.param("[" * 100_000, "InvalidChannelData", 400, id="deeply-nested"),
]


@pytest.mark.parametrize(("channel_data", "error_type", "status"), REJECTED)
def test_channel_data_rejected(
    channel_data: object, error_type: str, status: int
) -> None:
    """Malformed or over-limit channel_data raises the matching subscription error."""
    with pytest.raises(SubscriptionError) as caught:
        parse_channel_data(channel_data, LIMITS)
    assert caught.value.error_type == error_type
    assert caught.value.status == status


def test_channel_data_custom_id_limit() -> None:
    """The app's own user id limit applies, not the default 128."""
    limits = Limits(max_presence_user_id_length=5)
    with pytest.raises(SubscriptionError) as caught:
        parse_channel_data('{"user_id":"123456"}', limits)
    assert caught.value.error_type == "LimitReached"


def test_channel_data_custom_info_limit() -> None:
    """The app's own user_info limit applies, not the default 1 KB."""
    limits = Limits(max_presence_user_info_bytes=2048)
    channel_data = json.dumps({"user_id": "1", "user_info": info_of_size(2048)})
    assert parse_channel_data(channel_data, limits).user_id == "1"
