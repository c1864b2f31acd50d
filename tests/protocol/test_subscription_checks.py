"""Decisions on subscribe requests, client events and the client event rate."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clarion.protocol.apps import App, Limits
from clarion.protocol.auth import sign
from clarion.protocol.channels import ChannelKind
from clarion.protocol.errors import ProtocolError, SubscriptionError
from clarion.protocol.messages import ClientMessage
from clarion.protocol.presence import Member
from clarion.protocol.subscriptions import (
    ClientEventRate,
    SubscribeRequest,
    check_client_event,
    check_subscribe,
)
from clarion.protocol.users import User

KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
SOCKET_ID = "1234.1234"
APP = App(id="3", key=KEY, secret=SECRET, client_events=True)

PRESENCE_DATA = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'
PRESENCE_DATA_SPACED = '{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}'


def token(channel: str, channel_data: str | None = None) -> str:
    """Return the auth value an app server would issue for SOCKET_ID."""
    string_to_sign = f"{SOCKET_ID}:{channel}"
    if channel_data is not None:
        string_to_sign += f":{channel_data}"
    return f"{KEY}:{sign(SECRET, string_to_sign)}"


def signed_in(user_id: str, user_info: object = None) -> User:
    """Return the user of a connection that signed in as ``user_id``."""
    user_data = json.dumps({"id": user_id, "user_info": user_info})
    return User(user_id, user_info, (), (), user_data)


# check_subscribe: accepted requests

ACCEPTED = [
    pytest.param(
        {"channel": "my-channel"},
        SubscribeRequest("my-channel", ChannelKind.PUBLIC),
        id="public-without-auth",
    ),
    pytest.param(
        {"channel": "my-channel", "auth": ""},
        SubscribeRequest("my-channel", ChannelKind.PUBLIC),
        id="public-empty-auth",
    ),
    pytest.param(
        {"channel": "my-channel", "auth": "anything:at-all"},
        SubscribeRequest("my-channel", ChannelKind.PUBLIC),
        id="public-auth-ignored",
    ),
    pytest.param(
        {"channel": "cache-prices"},
        SubscribeRequest("cache-prices", ChannelKind.PUBLIC),
        id="public-cache",
    ),
    pytest.param(
        {
            "channel": "private-foobar",
            "auth": f"{KEY}:58df8b0c36d6982b82c3ecf6b4662e34"
            "fe8c25bba48f5369f135bf843651c3a4",
        },
        SubscribeRequest("private-foobar", ChannelKind.PRIVATE),
        id="private-known-token",
    ),
    pytest.param(
        {"channel": "private-cache-x", "auth": token("private-cache-x")},
        SubscribeRequest("private-cache-x", ChannelKind.PRIVATE),
        id="private-cache",
    ),
    pytest.param(
        {
            "channel": "private-encrypted-foobar",
            "auth": f"{KEY}:e6a18892d037c5d5e76a2265df4f086f"
            "fc38631605530dfd214aa5bff495f533",
        },
        SubscribeRequest("private-encrypted-foobar", ChannelKind.ENCRYPTED),
        id="encrypted-known-token",
    ),
    pytest.param(
        {
            "channel": "presence-foobar",
            "auth": f"{KEY}:afaed3695da2ffd16931f457e338e6c9"
            "f2921fa133ce7dac49f529792be6304c",
            "channel_data": PRESENCE_DATA,
        },
        SubscribeRequest(
            "presence-foobar",
            ChannelKind.PRESENCE,
            Member("10", {"name": "Mr. Pusher"}),
        ),
        id="presence-known-token",
    ),
    pytest.param(
        {
            "channel": "presence-foobar",
            "auth": f"{KEY}:effa42ec7dd23bb390f85f36c479655c"
            "d6b348c343045e6428b4fe49d6842d6f",
            "channel_data": PRESENCE_DATA_SPACED,
        },
        SubscribeRequest(
            "presence-foobar",
            ChannelKind.PRESENCE,
            Member("10", {"name": "Mr. Pusher"}),
        ),
        id="presence-python-sdk-spacing",
    ),
    pytest.param(
        {
            "channel": "presence-cache-room",
            "auth": token("presence-cache-room", '{"user_id":"u"}'),
            "channel_data": '{"user_id":"u"}',
        },
        SubscribeRequest(
            "presence-cache-room", ChannelKind.PRESENCE, Member("u", None)
        ),
        id="presence-cache",
    ),
]


@pytest.mark.parametrize(("data", "expected"), ACCEPTED)
def test_check_subscribe_accepts(
    data: dict[str, Any], expected: SubscribeRequest
) -> None:
    """A request with a valid name and, where needed, a valid token is accepted."""
    assert check_subscribe(APP, SOCKET_ID, data) == expected


def test_subscribe_server_to_user_signed_in() -> None:
    """A connection signed in as 42 may join #server-to-user-42 without a token."""
    request = check_subscribe(
        APP, SOCKET_ID, {"channel": "#server-to-user-42", "auth": ""}, signed_in("42")
    )
    assert request == SubscribeRequest("#server-to-user-42", ChannelKind.SERVER_TO_USER)


def test_subscribe_presence_as_signed_in() -> None:
    """A signed-in connection joins presence without channel_data as its user."""
    data = {"channel": "presence-room", "auth": token("presence-room")}
    request = check_subscribe(APP, SOCKET_ID, data, signed_in("7", {"name": "Ann"}))
    assert request.member == Member("7", {"name": "Ann"})


def test_check_subscribe_signed_in_bad_token() -> None:
    """Being signed in does not replace the presence channel token."""
    data = {"channel": "presence-room", "auth": token("presence-other")}
    with pytest.raises(SubscriptionError) as caught:
        check_subscribe(APP, SOCKET_ID, data, signed_in("7"))
    assert caught.value.status == 401


def test_subscribe_channel_data_beats_signin() -> None:
    """Sent channel_data decides the member even when the connection is signed in."""
    data = {
        "channel": "presence-room",
        "auth": token("presence-room", '{"user_id":"9"}'),
        "channel_data": '{"user_id":"9"}',
    }
    request = check_subscribe(APP, SOCKET_ID, data, signed_in("7"))
    assert request.member == Member("9", None)


def test_check_subscribe_app_name_limit() -> None:
    """The app's channel name limit replaces the default 164 characters."""
    app = App(
        id="3", key=KEY, secret=SECRET, limits=Limits(max_channel_name_length=200)
    )
    request = check_subscribe(app, SOCKET_ID, {"channel": "x" * 200})
    assert request.channel == "x" * 200


# check_subscribe: refused requests, with (error type, status)

OVERSIZED_INFO = json.dumps({"user_id": "1", "user_info": {"name": "x" * 2000}})

REFUSED = [
    pytest.param({"channel": "my channel"}, "InvalidChannelName", 4009, id="bad-chars"),
    pytest.param({"channel": "x" * 165}, "InvalidChannelName", 4009, id="165-chars"),
    pytest.param({"channel": ""}, "InvalidChannelName", 4009, id="empty-name"),
    pytest.param({"channel": "#foo"}, "InvalidChannelName", 4009, id="hash-name"),
    pytest.param(
        {"channel": "private-encrypted-" + "x" * 147, "auth": "k:s"},
        "InvalidChannelName",
        4009,
        id="name-checked-before-auth",
    ),
    pytest.param({"channel": "private-foo"}, "AuthError", 401, id="private-no-auth"),
    pytest.param(
        {"channel": "private-foo", "auth": ""},
        "AuthError",
        401,
        id="private-empty-auth",
    ),
    pytest.param(
        {"channel": "private-foo", "auth": token("private-bar")},
        "AuthError",
        401,
        id="private-token-of-other-channel",
    ),
    pytest.param(
        {"channel": "private-foo", "auth": "wrong-key:" + "0" * 64},
        "AuthError",
        401,
        id="private-wrong-key",
    ),
    pytest.param(
        {"channel": "private-encrypted-foo", "auth": token("private-foo")},
        "AuthError",
        401,
        id="encrypted-bad-token",
    ),
    pytest.param(
        {
            "channel": "presence-foo",
            "auth": token("presence-foo", PRESENCE_DATA),
            "channel_data": PRESENCE_DATA_SPACED,
        },
        "AuthError",
        401,
        id="presence-data-changed",
    ),
    pytest.param(
        {"channel": "presence-foo", "auth": token("presence-foo")},
        "AuthError",
        401,
        id="presence-no-channel-data",
    ),
    pytest.param(
        {
            "channel": "presence-foo",
            "auth": token("presence-foo", "not json"),
            "channel_data": "not json",
        },
        "InvalidChannelData",
        400,
        id="presence-data-not-json",
    ),
    pytest.param(
        {
            "channel": "presence-foo",
            "auth": token("presence-foo", '{"user_id":true}'),
            "channel_data": '{"user_id":true}',
        },
        "InvalidChannelData",
        400,
        id="presence-bool-user-id",
    ),
    pytest.param(
        {
            "channel": "presence-foo",
            "auth": token("presence-foo", OVERSIZED_INFO),
            "channel_data": OVERSIZED_INFO,
        },
        "LimitReached",
        4301,
        id="presence-info-over-limit",
    ),
    # Auth is checked before the member is parsed, so a bad token wins over
    # bad channel data.
    pytest.param(
        {
            "channel": "presence-foo",
            "auth": f"{KEY}:{'0' * 64}",
            "channel_data": OVERSIZED_INFO,
        },
        "AuthError",
        401,
        id="presence-auth-before-data",
    ),
    pytest.param(
        {"channel": "#server-to-user-42", "auth": ""},
        "AuthError",
        401,
        id="server-to-user-not-signed-in",
    ),
]


@pytest.mark.parametrize(("data", "error_type", "status"), REFUSED)
def test_check_subscribe_refuses(
    data: dict[str, Any], error_type: str, status: int
) -> None:
    """A refused subscription raises SubscriptionError with its type and status."""
    with pytest.raises(SubscriptionError) as caught:
        check_subscribe(APP, SOCKET_ID, data)
    assert caught.value.error_type == error_type
    assert caught.value.status == status


def test_subscribe_server_to_user_other_user() -> None:
    """A connection signed in as 43 may not join #server-to-user-42."""
    with pytest.raises(SubscriptionError) as caught:
        check_subscribe(
            APP, SOCKET_ID, {"channel": "#server-to-user-42"}, signed_in("43")
        )
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "data",
    [{}, {"channel": None}, {"channel": 42}, {"channel": ["private-foo"]}],
    ids=["missing", "null", "number", "array"],
)
def test_check_subscribe_needs_channel_string(data: dict[str, Any]) -> None:
    """A request without a string channel raises ProtocolError, not a refusal."""
    with pytest.raises(ProtocolError) as caught:
        check_subscribe(APP, SOCKET_ID, data)
    assert caught.value.code is None


# check_client_event

NOT_SUBSCRIBED = (
    "Cannot broadcast client event (connection not subscribed to channel private-chat)"
)
PUBLIC_ONLY = "Client events are only supported on private and presence channels"
DISABLED = "Client events are not enabled for this app"
ENCRYPTED = "Client events are not supported on private-encrypted channels"
LONG_NAME = "Client event rejected: event name is longer than 200 characters"


def client_event(
    channel: str | None = "private-chat", data: Any = None, event: str = "client-typing"
) -> ClientMessage:
    return ClientMessage(event, channel, {"text": "hi"} if data is None else data)


def rejection(app: App, message: ClientMessage, subscribed: bool) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        check_client_event(app, message, subscribed)
    return caught.value


DISABLED_APP = App(id="4", key="k4", secret="s4", client_events=False)

# (app, message, subscribed, expected message). Each row also breaks a later
# rule, so it shows which of the two rules is checked first.
CLIENT_EVENT_RULES = [
    pytest.param(
        DISABLED_APP,
        client_event("my-channel"),
        False,
        DISABLED,
        id="disabled-before-channel-kind",
    ),
    pytest.param(
        DISABLED_APP,
        client_event(channel=None),
        True,
        DISABLED,
        id="disabled-before-missing-channel",
    ),
    pytest.param(
        APP,
        client_event("my-channel"),
        False,
        PUBLIC_ONLY,
        id="public-before-subscribed",
    ),
    pytest.param(
        APP,
        client_event("cache-prices"),
        False,
        PUBLIC_ONLY,
        id="public-cache-before-subscribed",
    ),
    pytest.param(
        APP,
        client_event("#server-to-user-1"),
        False,
        PUBLIC_ONLY,
        id="server-to-user-before-subscribed",
    ),
    pytest.param(
        APP,
        client_event("private-encrypted-chat"),
        False,
        ENCRYPTED,
        id="encrypted-before-subscribed",
    ),
    pytest.param(
        APP,
        client_event(event="client-" + "x" * 200),
        False,
        NOT_SUBSCRIBED,
        id="subscribed-before-name-length",
    ),
    pytest.param(
        APP,
        client_event(event="client-" + "x" * 200, data="x" * 10241),
        True,
        LONG_NAME,
        id="name-length-before-data-size",
    ),
]


@pytest.mark.parametrize(
    ("app", "message", "subscribed", "expected"), CLIENT_EVENT_RULES
)
def test_client_event_rule_order(
    app: App, message: ClientMessage, subscribed: bool, expected: str
) -> None:
    """Rules apply in order: app switch, channel kind, subscription, then limits."""
    error = rejection(app, message, subscribed)
    assert error.message == expected
    assert error.code is None


def test_client_event_names_channel_in_error() -> None:
    """The error is reported on the event's channel."""
    error = rejection(APP, client_event(), False)
    assert error.channel == "private-chat"


def test_client_event_missing_channel() -> None:
    """An event without a channel is rejected."""
    error = rejection(APP, client_event(channel=None), True)
    assert error.code is None


@pytest.mark.parametrize(
    "channel", ["private-encrypted-chat", "private-encrypted-cache-chat"]
)
def test_client_event_encrypted_rejected(channel: str) -> None:
    """Client events on encrypted channels are rejected even when subscribed."""
    error = rejection(APP, client_event(channel), True)
    assert error.channel == channel


def test_client_event_not_subscribed() -> None:
    """A sender without a subscription to the channel is rejected."""
    assert rejection(APP, client_event(), False).message == NOT_SUBSCRIBED


def test_client_event_name_201_rejected() -> None:
    """An event name of 201 characters is over the 200 limit."""
    error = rejection(APP, client_event(event="client-" + "x" * 194), True)
    assert "200" in error.message


def test_client_event_name_200_accepted() -> None:
    """An event name of exactly 200 characters is allowed."""
    message = client_event(event="client-" + "x" * 193, data="x")
    assert check_client_event(APP, message, True) == ("private-chat", "x")


def test_client_event_data_over_limit() -> None:
    """Data of 10241 bytes after encoding is rejected."""
    error = rejection(APP, client_event(data="x" * 10241), True)
    assert "10240" in error.message


def test_client_event_non_ascii_data_bytes() -> None:
    """The data limit counts UTF-8 bytes, not characters."""
    error = rejection(APP, client_event(data="é" * 5121), True)
    assert error.code is None


def test_client_event_data_at_limit() -> None:
    """Data of exactly 10240 bytes is allowed."""
    message = client_event(data="x" * 10240)
    assert check_client_event(APP, message, True) == ("private-chat", "x" * 10240)


ACCEPTED_EVENTS = [
    pytest.param("private-chat", "raw text", "raw text", id="string-kept"),
    pytest.param(
        "private-chat", '{ "a" : 1 }', '{ "a" : 1 }', id="json-string-not-reencoded"
    ),
    pytest.param(
        "presence-room",
        {"text": "hi", "n": [1, 2]},
        '{"text":"hi","n":[1,2]}',
        id="object-compact",
    ),
    pytest.param("private-cache-chat", ["é"], '["é"]', id="array-non-ascii-kept"),
    pytest.param("presence-cache-room", 5, "5", id="number"),
]


@pytest.mark.parametrize(("channel", "data", "forwarded"), ACCEPTED_EVENTS)
def test_client_event_forwarded_data(channel: str, data: Any, forwarded: str) -> None:
    """String data is forwarded unchanged, other JSON compact-encoded."""
    message = ClientMessage("client-typing", channel, data)
    assert check_client_event(APP, message, True) == (channel, forwarded)


# ClientEventRate


def test_rate_allows_ten_per_second() -> None:
    """Ten events inside one second pass."""
    rate = ClientEventRate()
    for tenth in range(10):
        rate.check(100.0 + tenth / 10, 10)


def test_rate_rejects_eleventh_event() -> None:
    """An event right after a burst of ten raises 4301."""
    rate = ClientEventRate()
    for _ in range(10):
        rate.check(100.0, 10)
    with pytest.raises(ProtocolError) as caught:
        rate.check(100.05, 10, channel="private-chat")
    assert caught.value.code == 4301
    assert caught.value.message == "Client event rejected due to rate limit"
    assert caught.value.channel == "private-chat"


def test_rate_refills_after_second() -> None:
    """One second after a burst, a whole new burst passes."""
    rate = ClientEventRate()
    for _ in range(10):
        rate.check(100.0, 10)
    with pytest.raises(ProtocolError):
        rate.check(100.05, 10)
    for _ in range(10):
        rate.check(101.05, 10)


def test_rate_no_double_burst_at_boundary() -> None:
    """Bursts on both sides of a second boundary cannot add up to twenty."""
    rate = ClientEventRate()
    for _ in range(10):
        rate.check(100.95, 10)
    rate.check(101.1, 10)
    with pytest.raises(ProtocolError):
        rate.check(101.1, 10)


def test_rate_uses_given_limit() -> None:
    """The limit passed in applies, not a fixed 10."""
    rate = ClientEventRate()
    rate.check(50.0, 2)
    rate.check(50.0, 2)
    with pytest.raises(ProtocolError):
        rate.check(50.0, 2)


def test_rate_counts_per_instance() -> None:
    """Each connection's counter is separate."""
    first, second = ClientEventRate(), ClientEventRate()
    for _ in range(10):
        first.check(7.0, 10)
    second.check(7.0, 10)
