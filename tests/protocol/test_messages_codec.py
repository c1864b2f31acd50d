"""Exact wire text of every server event, and decoding of client frames."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from clarion.protocol import messages
from clarion.protocol.errors import ErrorCode, ProtocolError
from clarion.protocol.messages import ClientMessage, parse_client_message

# Encoders: each expected value is the complete frame text, byte for byte.


def test_connection_established_exact_text() -> None:
    """The handshake carries socket_id and activity_timeout as a JSON string."""
    expected = (
        r'{"event":"pusher:connection_established",'
        r'"data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}'
    )
    assert messages.connection_established("123.456", 120) == expected


def test_error_exact_text() -> None:
    """pusher:error carries an object with the code and message."""
    expected = (
        '{"event":"pusher:error","data":'
        '{"code":4301,"message":"Client event rejected due to rate limit"}}'
    )
    assert messages.error(4301, "Client event rejected due to rate limit") == expected


def test_error_with_channel_exact_text() -> None:
    """An error about one channel names it, and a missing code is null."""
    expected = (
        '{"event":"pusher:error","channel":"private-chat",'
        '"data":{"code":null,"message":"Invalid message format"}}'
    )
    assert (
        messages.error(None, "Invalid message format", channel="private-chat")
        == expected
    )


def test_error_encodes_error_code_as_number() -> None:
    """An ErrorCode member is written as its plain number."""
    text = messages.error(ErrorCode.CLIENT_EVENT_RATE_LIMIT, "rate")
    assert text == '{"event":"pusher:error","data":{"code":4301,"message":"rate"}}'


def test_ping_exact_text() -> None:
    """pusher:ping carries an empty object."""
    assert messages.PING == '{"event":"pusher:ping","data":{}}'


def test_pong_exact_text() -> None:
    """pusher:pong carries an empty object."""
    assert messages.PONG == '{"event":"pusher:pong","data":{}}'


def test_subscription_succeeded_public_text() -> None:
    """A non-presence confirmation carries the string "{}"."""
    expected = (
        '{"event":"pusher_internal:subscription_succeeded",'
        '"channel":"my-channel","data":"{}"}'
    )
    assert messages.subscription_succeeded("my-channel") == expected


def test_subscription_succeeded_presence_text() -> None:
    """A presence roster lists ids and hash in order, with null for no user_info."""
    expected = (
        r'{"event":"pusher_internal:subscription_succeeded","channel":"presence-foo",'
        r'"data":"{\"presence\":{\"ids\":[\"1\",\"2\"],'
        r'\"hash\":{\"1\":{\"name\":\"A\"},\"2\":null},\"count\":2}}"}'
    )
    roster = {"1": {"name": "A"}, "2": None}
    assert messages.subscription_succeeded("presence-foo", roster) == expected


def test_subscription_succeeded_empty_roster_text() -> None:
    """An empty presence roster still carries the presence object."""
    expected = (
        r'{"event":"pusher_internal:subscription_succeeded","channel":"presence-foo",'
        r'"data":"{\"presence\":{\"ids\":[],\"hash\":{},\"count\":0}}"}'
    )
    assert messages.subscription_succeeded("presence-foo", {}) == expected


def test_subscription_error_exact_text() -> None:
    """pusher:subscription_error carries type, error and status as an object."""
    expected = (
        '{"event":"pusher:subscription_error","channel":"private-foo",'
        '"data":{"type":"AuthError","error":"Invalid signature","status":401}}'
    )
    text = messages.subscription_error(
        "private-foo", "AuthError", "Invalid signature", 401
    )
    assert text == expected


def test_member_added_exact_text() -> None:
    """member_added carries user_id and user_info as a JSON string."""
    expected = (
        r'{"event":"pusher_internal:member_added","channel":"presence-foo",'
        r'"data":"{\"user_id\":\"3\",\"user_info\":{\"name\":\"C\"}}"}'
    )
    assert messages.member_added("presence-foo", "3", {"name": "C"}) == expected


def test_member_added_without_info_text() -> None:
    """A member without user_info is sent with user_info null."""
    expected = (
        r'{"event":"pusher_internal:member_added","channel":"presence-foo",'
        r'"data":"{\"user_id\":\"3\",\"user_info\":null}"}'
    )
    assert messages.member_added("presence-foo", "3", None) == expected


def test_member_removed_exact_text() -> None:
    """member_removed carries only the user_id, as a JSON string."""
    expected = (
        r'{"event":"pusher_internal:member_removed","channel":"presence-foo",'
        r'"data":"{\"user_id\":\"3\"}"}'
    )
    assert messages.member_removed("presence-foo", "3") == expected


def test_channel_event_exact_text() -> None:
    """An application event carries the publisher's string as data."""
    expected = r'{"event":"new-price","channel":"APPL","data":"{\"price\":42}"}'
    assert messages.channel_event("new-price", "APPL", '{"price":42}') == expected


def test_channel_event_with_user_id_text() -> None:
    """A presence client event adds user_id after data."""
    expected = (
        r'{"event":"client-typing","channel":"private-chat",'
        r'"data":"{\"text\":\"hi\"}","user_id":"42"}'
    )
    text = messages.channel_event(
        "client-typing", "private-chat", '{"text":"hi"}', user_id="42"
    )
    assert text == expected


def test_channel_event_keeps_data_verbatim() -> None:
    """Data that is not compact JSON, or not JSON, arrives unchanged."""
    data = '{ "spaced" : [1, 2] } and trailing text'
    frame = json.loads(messages.channel_event("e", "c", data))
    assert frame["data"] == data


def test_channel_event_keeps_non_ascii() -> None:
    """Non-ASCII characters are written as themselves, not as \\u escapes."""
    expected = '{"event":"greeting","channel":"c","data":"héllo ✓ 😀"}'
    assert messages.channel_event("greeting", "c", "héllo ✓ 😀") == expected


def test_member_added_keeps_non_ascii() -> None:
    """Non-ASCII user_info survives both levels of encoding unescaped."""
    expected = (
        r'{"event":"pusher_internal:member_added","channel":"presence-foo",'
        r'"data":"{\"user_id\":\"1\",\"user_info\":{\"name\":\"Zoë\"}}"}'
    )
    assert messages.member_added("presence-foo", "1", {"name": "Zoë"}) == expected


def test_signin_success_exact_text() -> None:
    """signin_success echoes user_data as a string inside an object."""
    expected = (
        r'{"event":"pusher:signin_success","data":{"user_data":"{\"id\":\"12345\"}"}}'
    )
    assert messages.signin_success('{"id":"12345"}') == expected


def test_watchlist_events_exact_text() -> None:
    """Watchlist changes list online, then offline ids, as a JSON string."""
    expected = (
        r'{"event":"pusher_internal:watchlist_events","data":"{\"events\":['
        r"{\"name\":\"online\",\"user_ids\":[\"1\"]},"
        r'{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}'
    )
    assert messages.watchlist_events(["1"], ["2", "3"]) == expected


def test_watchlist_events_omit_empty_kind() -> None:
    """A kind with no ids is left out of the events list."""
    expected = (
        r'{"event":"pusher_internal:watchlist_events","data":"{\"events\":['
        r'{\"name\":\"offline\",\"user_ids\":[\"2\"]}]}"}'
    )
    assert messages.watchlist_events([], ["2"]) == expected


def test_cache_miss_exact_text() -> None:
    """pusher:cache_miss names the channel and has no data field."""
    expected = '{"event":"pusher:cache_miss","channel":"cache-prices"}'
    assert messages.cache_miss("cache-prices") == expected


def test_subscription_count_exact_text() -> None:
    """The subscription count is sent as a JSON string."""
    expected = (
        r'{"event":"pusher_internal:subscription_count","channel":"my-channel",'
        r'"data":"{\"subscription_count\":3}"}'
    )
    assert messages.subscription_count("my-channel", 3) == expected


# parse_client_message

PARSED = [
    pytest.param(
        '{"event":"pusher:subscribe","data":{"channel":"my-channel","auth":""}}',
        ClientMessage("pusher:subscribe", None, {"channel": "my-channel", "auth": ""}),
        id="object-data",
    ),
    pytest.param(
        r'{"event":"pusher:subscribe","data":"{\"channel\":\"my-channel\"}"}',
        ClientMessage("pusher:subscribe", None, {"channel": "my-channel"}),
        id="string-holding-json-data",
    ),
    pytest.param(
        '{"event":"pusher:subscribe"}',
        ClientMessage("pusher:subscribe", None, {}),
        id="subscribe-data-missing",
    ),
    pytest.param(
        '{"event":"pusher:subscribe","data":null}',
        ClientMessage("pusher:subscribe", None, {}),
        id="subscribe-data-null",
    ),
    pytest.param(
        '{"event":"pusher:subscribe","data":""}',
        ClientMessage("pusher:subscribe", None, {}),
        id="subscribe-data-empty-string",
    ),
    pytest.param(
        '{"event":"pusher:ping","data":"not json"}',
        ClientMessage("pusher:ping", None, "not json"),
        id="ping-data-not-checked",
    ),
    pytest.param(
        '{"event":"pusher:unknown","data":7}',
        ClientMessage("pusher:unknown", None, 7),
        id="unknown-protocol-event-data-kept",
    ),
    pytest.param(
        '{"event":"client-typing","channel":"private-chat","data":{"text":"hi"}}',
        ClientMessage("client-typing", "private-chat", {"text": "hi"}),
        id="client-event-object",
    ),
    pytest.param(
        r'{"event":"client-typing","channel":"private-chat","data":"{\"a\":1}"}',
        ClientMessage("client-typing", "private-chat", '{"a":1}'),
        id="client-event-string-kept",
    ),
    pytest.param(
        '{"event":"client-typing","channel":"private-chat","data":[1,2]}',
        ClientMessage("client-typing", "private-chat", [1, 2]),
        id="client-event-array",
    ),
    pytest.param(
        '{"event":"client-typing","channel":"private-chat"}',
        ClientMessage("client-typing", "private-chat", None),
        id="client-event-no-data",
    ),
    pytest.param(
        '{"event":"pusher:ping","channel":null,"data":{}}',
        ClientMessage("pusher:ping", None, {}),
        id="channel-null",
    ),
    pytest.param(
        '{"event":"pusher:ping","data":{},"extra":1,"user_id":"x","socket_id":"1.1"}',
        ClientMessage("pusher:ping", None, {}),
        id="unknown-keys-ignored",
    ),
    pytest.param(
        '{"event":"my-event","channel":"c","data":"x"}',
        ClientMessage("my-event", "c", "x"),
        id="other-event",
    ),
    pytest.param(
        ' \n{"event":"pusher:ping","data":{}}\n ',
        ClientMessage("pusher:ping", None, {}),
        id="surrounding-whitespace",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_client_message_decodes(text: str, expected: ClientMessage) -> None:
    """Valid frames decode to event, channel and data."""
    assert parse_client_message(text) == expected


OBJECT_DATA_EVENTS = ["pusher:subscribe", "pusher:unsubscribe", "pusher:signin"]


@pytest.mark.parametrize("event", OBJECT_DATA_EVENTS)
def test_parse_object_data_from_string(event: str) -> None:
    """A string holding a JSON object decodes to the same dict as the object."""
    as_string = json.dumps({"event": event, "data": json.dumps({"channel": "c"})})
    assert parse_client_message(as_string).data == {"channel": "c"}


@pytest.mark.parametrize("event", OBJECT_DATA_EVENTS)
def test_parse_object_data_rejects_array(event: str) -> None:
    """Data that is a JSON array, given directly or as a string, is rejected."""
    with pytest.raises(ProtocolError):
        parse_client_message(json.dumps({"event": event, "data": "[1]"}))


MALFORMED = [
    pytest.param("", id="empty"),
    pytest.param("{", id="invalid-json"),
    pytest.param("{'event':'pusher:ping'}", id="single-quotes"),
    pytest.param("[]", id="array"),
    pytest.param('"pusher:ping"', id="string"),
    pytest.param("42", id="number"),
    pytest.param("null", id="null"),
    pytest.param("{}", id="no-event"),
    pytest.param('{"data":{}}', id="data-without-event"),
    pytest.param('{"event":42}', id="event-number"),
    pytest.param('{"event":null}', id="event-null"),
    pytest.param('{"event":["pusher:ping"]}', id="event-array"),
    pytest.param('{"event":"client-x","channel":42}', id="channel-number"),
    pytest.param('{"event":"client-x","channel":{}}', id="channel-object"),
    pytest.param('{"event":"pusher:subscribe","data":"{"}', id="data-string-not-json"),
    pytest.param('{"event":"pusher:subscribe","data":"[1]"}', id="data-string-array"),
    pytest.param('{"event":"pusher:subscribe","data":[1]}', id="data-array"),
    pytest.param('{"event":"pusher:subscribe","data":7}', id="data-number"),
    pytest.param(
        '{"event":"pusher:subscribe","data":"\\"x\\""}', id="data-json-string"
    ),
    pytest.param(
        '{"event":"pusher:unsubscribe","data":true}', id="unsubscribe-data-bool"
    ),
    pytest.param('{"event":"pusher:signin","data":"{"}', id="signin-data-not-json"),
    pytest.param("[" * 100_000, id="deeply-nested-array"),
    pytest.param(
        '{"event":"pusher:subscribe","data":"' + "[" * 100_000 + '"}',
        id="deeply-nested-data",
    ),
]


@pytest.mark.parametrize("text", MALFORMED)
def test_parse_client_message_rejects_malformed(text: str) -> None:
    """Malformed frames raise ProtocolError with code None."""
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    assert caught.value.code is None
    assert caught.value.message == "Invalid message format"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frame_objects = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["pusher:subscribe", "pusher:ping", "client-x"])
        | json_values,
        "channel": st.text(max_size=10) | json_values,
        "data": json_values | json_values.map(json.dumps),
    },
)


@settings(max_examples=200, database=None, deadline=None)
@given(st.text() | frame_objects.map(json.dumps))
def test_parse_client_message_total(text: str) -> None:
    """Any text either decodes to a ClientMessage or raises ProtocolError."""
    try:
        result = parse_client_message(text)
    except ProtocolError:
        return
    assert isinstance(result, ClientMessage)
