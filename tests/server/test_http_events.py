"""HTTP API: POST events and batch_events, and delivery to WebSocket subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    ApiResponse,
    WireClient,
    channel_auth,
    compact,
    event_frame,
    sdk_client,
)
from clarion_launch import (
    DEFAULT_APP,
    OTHER_APP,
    SMALL_LIMITS_APP,
    ClientOpener,
    RunningServer,
)


async def subscriber(
    server: RunningServer,
    clients: ClientOpener,
    *channels: str,
    key: str = DEFAULT_APP.key,
) -> WireClient:
    """Open a socket subscribed to public channels."""
    client = await clients.established(server.ws_url(key=key))
    for channel in channels:
        frame = await client.subscribe(channel)
        assert frame.event == "pusher_internal:subscription_succeeded"
    return client


def assert_error_body(response: ApiResponse, status: int) -> None:
    """Check the status and the JSON error shape {"error": str, "code": status}."""
    assert response.status == status
    body = response.json()
    assert isinstance(body.get("error"), str)
    assert body.get("code") == status


async def test_trigger_delivers_exact_frame(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An HTTP event reaches the subscriber with data byte for byte."""
    channel = unique("APPL")
    client = await subscriber(shared_server, clients, channel)
    response = await api.trigger(
        {"name": "new-price", "channel": channel, "data": '{"price":42}'}
    )
    assert response.status == 200
    assert response.json() == {}
    frame = await client.recv_frame()
    assert frame.text == event_frame("new-price", channel, '{"price":42}')


async def test_trigger_data_kept_verbatim(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Spacing and non-ASCII text in data are delivered unchanged."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    data = '{ "a" :  1 ,\n "text": "caf\u00e9 \u2603" }'
    await api.trigger({"name": "verbatim", "channel": channel, "data": data})
    frame = await client.recv_frame()
    assert frame.data == data


async def test_trigger_object_data_compact(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A non-string data value is accepted and delivered as compact JSON."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    response = await api.trigger(
        {"name": "obj", "channel": channel, "data": {"a": [1, 2]}}
    )
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("obj", channel, '{"a":[1,2]}')


async def test_trigger_sdk_request_accepted(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A trigger sent by the official Python SDK is accepted and delivered."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    result = await asyncio.to_thread(
        sdk_client(api).trigger, [channel], "sdk-event", {"n": 1}
    )
    assert result == {}
    frame = await client.recv_frame()
    assert frame.text == event_frame("sdk-event", channel, '{"n": 1}')


async def test_trigger_multiple_channels(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An event on several channels reaches each channel's subscribers."""
    first, second = unique("multi-a-"), unique("multi-b-")
    client = await subscriber(shared_server, clients, first, second)
    await api.trigger({"name": "fan", "channels": [first, second], "data": "d"})
    frames = {(await client.recv_frame()).text for _ in range(2)}
    assert frames == {event_frame("fan", first, "d"), event_frame("fan", second, "d")}


async def test_trigger_duplicate_channels_once(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A channel listed twice gets the event once."""
    channel = unique("dup-")
    client = await subscriber(shared_server, clients, channel)
    await api.trigger({"name": "dup", "channels": [channel, channel], "data": "d"})
    frame = await client.recv_frame()
    assert frame.text == event_frame("dup", channel, "d")
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_trigger_hundred_channels(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """100 channels in one trigger are accepted and the first and last deliver."""
    prefix = unique("hundred-")
    channels = [f"{prefix}-{index}" for index in range(100)]
    client = await subscriber(shared_server, clients, channels[0], channels[99])
    response = await api.trigger({"name": "many", "channels": channels, "data": "d"})
    assert response.status == 200
    frames = {(await client.recv_frame()).text for _ in range(2)}
    expected = {
        event_frame("many", channels[0], "d"),
        event_frame("many", channels[99], "d"),
    }
    assert frames == expected


async def test_trigger_101_channels_400(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """101 channels in one trigger are rejected with 400."""
    prefix = unique("over-")
    channels = [f"{prefix}-{index}" for index in range(101)]
    response = await api.trigger({"name": "many", "channels": channels, "data": "d"})
    assert_error_body(response, 400)


async def test_trigger_app_channel_limit(shared_server: RunningServer) -> None:
    """The per-app max_channels_per_event (2 here) is enforced."""
    api = shared_server.api(SMALL_LIMITS_APP)
    response = await api.trigger(
        {"name": "e", "channels": ["a", "b", "c"], "data": "d"}
    )
    assert_error_body(response, 400)


async def test_trigger_socket_id_excluded(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The connection named by socket_id does not receive the event."""
    channel = unique("public-")
    excluded = await subscriber(shared_server, clients, channel)
    included = await subscriber(shared_server, clients, channel)
    response = await api.trigger(
        {
            "name": "skip",
            "channel": channel,
            "data": "d",
            "socket_id": excluded.socket_id,
        }
    )
    assert response.status == 200
    frame = await included.recv_frame()
    assert frame.text == event_frame("skip", channel, "d")
    barrier = await excluded.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_trigger_unknown_socket_id_accepted(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A well-formed socket_id that matches no connection excludes no one."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    response = await api.trigger(
        {"name": "all", "channel": channel, "data": "d", "socket_id": "1.1"}
    )
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("all", channel, "d")


async def test_trigger_info_counts(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """With info, the reply gives user_count for presence and subscription_count."""
    public = unique("public-")
    presence = unique("presence-")
    await subscriber(shared_server, clients, public)
    for user_id in ("1", "1", "2"):
        client = await clients.established(shared_server.ws_url())
        data = compact({"user_id": user_id})
        auth = channel_auth(
            DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id or "", presence, data
        )
        frame = await client.subscribe(presence, auth=auth, channel_data=data)
        assert frame.event == "pusher_internal:subscription_succeeded"
    response = await api.trigger(
        {
            "name": "counted",
            "channels": [presence, public],
            "data": "d",
            "info": "user_count,subscription_count",
        }
    )
    assert response.status == 200
    assert response.json() == {
        "channels": {
            presence: {"user_count": 2, "subscription_count": 3},
            public: {"subscription_count": 1},
        }
    }


async def test_trigger_info_unoccupied_channel(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """info on a channel without subscribers reports a count of 0."""
    channel = unique("public-")
    response = await api.trigger(
        {"name": "e", "channel": channel, "data": "d", "info": "subscription_count"}
    )
    assert response.json() == {"channels": {channel: {"subscription_count": 0}}}


async def test_trigger_encrypted_single_channel(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An encrypted channel alone is accepted and its data routed opaquely."""
    channel = unique("private-encrypted-")
    client = await clients.established(shared_server.ws_url())
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id or "", channel
    )
    await client.subscribe(channel, auth=auth)
    data = '{"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","ciphertext":"Tm90UmVhbGx5"}'
    response = await api.trigger({"name": "sealed", "channel": channel, "data": data})
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("sealed", channel, data)


async def test_trigger_encrypted_among_several_400(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An encrypted channel in a multi-channel trigger gives 400, nothing sent."""
    public = unique("public-")
    client = await subscriber(shared_server, clients, public)
    response = await api.trigger(
        {"name": "e", "channels": [public, unique("private-encrypted-")], "data": "d"}
    )
    assert_error_body(response, 400)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


@pytest.mark.parametrize("name", ["pusher:fake", "pusher_internal:member_added"])
async def test_trigger_reserved_name_400(
    api: ApiClient, unique: Callable[[str], str], name: str
) -> None:
    """Event names with the pusher: or pusher_internal: prefix give 400."""
    response = await api.trigger({"name": name, "channel": unique("c-"), "data": "d"})
    assert_error_body(response, 400)


@pytest.mark.parametrize(
    "channel", ["bad channel", "x" * 165, "#hash", "caf\u00e9", ""]
)
async def test_trigger_invalid_channel_400(api: ApiClient, channel: str) -> None:
    """An invalid channel name gives 400."""
    response = await api.trigger({"name": "e", "channels": [channel], "data": "d"})
    assert_error_body(response, 400)


@pytest.mark.parametrize(
    "payload",
    [
        {"channel": "c", "data": "d"},
        {"name": "e", "channel": "c"},
        {"name": "e", "data": "d"},
        {"name": "", "channel": "c", "data": "d"},
        {"name": "n" * 201, "channel": "c", "data": "d"},
        {"name": 5, "channel": "c", "data": "d"},
        {"name": "e", "channels": [], "data": "d"},
        {"name": "e", "channels": "c", "data": "d"},
        {"name": "e", "channel": "c", "data": "d", "socket_id": "abc"},
        {"name": "e", "channel": "c", "data": "d", "socket_id": "1.2.3"},
        {"name": "e", "channel": "c", "data": "d", "info": "bogus"},
    ],
    ids=[
        "no-name",
        "no-data",
        "no-channel",
        "empty-name",
        "name-201",
        "name-not-string",
        "empty-channels",
        "channels-not-list",
        "socket-id-letters",
        "socket-id-three-parts",
        "unknown-info",
    ],
)
async def test_trigger_invalid_fields_400(
    api: ApiClient, payload: dict[str, Any]
) -> None:
    """Missing or invalid trigger fields give 400 with a JSON error body."""
    response = await api.trigger(payload)
    assert_error_body(response, 400)


async def test_trigger_name_200_accepted(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """An event name of exactly 200 characters is accepted."""
    response = await api.trigger(
        {"name": "n" * 200, "channel": unique("c-"), "data": "d"}
    )
    assert response.status == 200


async def test_trigger_malformed_json_400(api: ApiClient) -> None:
    """A body that is not valid JSON gives 400."""
    response = await asyncio.to_thread(
        api.signed, "POST", api.app_path("/events"), b'{"name": "e",'
    )
    assert_error_body(response, 400)


async def test_trigger_json_array_body_400(api: ApiClient) -> None:
    """A JSON body that is not an object gives 400."""
    response = await asyncio.to_thread(
        api.signed, "POST", api.app_path("/events"), b"[1, 2]"
    )
    assert_error_body(response, 400)


async def test_trigger_data_10240_bytes_accepted(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """data of exactly 10240 bytes is accepted and delivered."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    data = "x" * 10240
    response = await api.trigger({"name": "big", "channel": channel, "data": data})
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("big", channel, data)


async def test_trigger_data_10241_bytes_413(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """data of 10241 bytes gives 413 and nothing is delivered."""
    channel = unique("public-")
    client = await subscriber(shared_server, clients, channel)
    response = await api.trigger(
        {"name": "big", "channel": channel, "data": "x" * 10241}
    )
    assert_error_body(response, 413)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_trigger_data_limit_counts_utf8_bytes(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """The 10 KB limit counts UTF-8 bytes: 3414 euro signs (10242 bytes) give 413."""
    data = "\u20ac" * 3414
    assert len(data.encode()) == 10242
    response = await api.trigger({"name": "big", "channel": unique("c-"), "data": data})
    assert_error_body(response, 413)


async def test_trigger_app_data_limit(shared_server: RunningServer) -> None:
    """The per-app max_event_bytes (100 here) gives 413 over the limit."""
    api = shared_server.api(SMALL_LIMITS_APP)
    response = await api.trigger({"name": "e", "channel": "c", "data": "x" * 101})
    assert_error_body(response, 413)


async def test_apps_are_isolated(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An event on app A's channel never reaches app B's same-named channel."""
    channel = unique("shared-name-")
    other = await subscriber(shared_server, clients, channel, key=OTHER_APP.key)
    await api.trigger({"name": "for-a", "channel": channel, "data": "a"})
    other_api = shared_server.api(OTHER_APP)
    await other_api.trigger({"name": "for-b", "channel": channel, "data": "b"})
    frame = await other.recv_frame()
    assert frame.text == event_frame("for-b", channel, "b")


async def test_apps_client_events_isolated(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A client event on app A never reaches app B's same-named channel."""
    channel = unique("private-")
    sender = await clients.established(shared_server.ws_url())
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, sender.socket_id or "", channel
    )
    await sender.subscribe(channel, auth=auth)
    other = await clients.established(shared_server.ws_url(key=OTHER_APP.key))
    other_auth = channel_auth(
        OTHER_APP.key, OTHER_APP.secret, other.socket_id or "", channel
    )
    await other.subscribe(channel, auth=other_auth)
    await sender.send_json({"event": "client-leak", "channel": channel, "data": "x"})
    sender_barrier = await sender.ping_barrier()
    assert sender_barrier.text == PONG_TEXT
    barrier = await other.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_batch_delivers_in_order(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch of 10 events is accepted and delivered in order."""
    channel = unique("batch-")
    client = await subscriber(shared_server, clients, channel)
    items = [
        {"name": f"e{index}", "channel": channel, "data": str(index)}
        for index in range(10)
    ]
    response = await api.batch(items)
    assert response.status == 200
    assert response.json() == {}
    frames = [(await client.recv_frame()).text for _ in range(10)]
    assert frames == [
        event_frame(f"e{index}", channel, str(index)) for index in range(10)
    ]


async def test_batch_sdk_request_accepted(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch sent by the official Python SDK is accepted."""
    channel = unique("batch-")
    client = await subscriber(shared_server, clients, channel)
    batch = [{"channel": channel, "name": "sdk-batch", "data": "one"}]
    result = await asyncio.to_thread(sdk_client(api).trigger_batch, batch)
    assert result == {}
    frame = await client.recv_frame()
    assert frame.text == event_frame("sdk-batch", channel, "one")


async def test_batch_eleven_items_400(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch of 11 events gives 400 and none is delivered."""
    channel = unique("batch-")
    client = await subscriber(shared_server, clients, channel)
    items = [
        {"name": "e", "channel": channel, "data": str(index)} for index in range(11)
    ]
    response = await api.batch(items)
    assert_error_body(response, 400)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_batch_app_item_limit(shared_server: RunningServer) -> None:
    """The per-app max_batch_events (2 here) is enforced."""
    api = shared_server.api(SMALL_LIMITS_APP)
    items = [{"name": "e", "channel": "c", "data": "d"}] * 3
    response = await api.batch(items)
    assert_error_body(response, 400)


async def test_batch_all_or_nothing(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """One invalid item rejects the batch and the valid items are not sent."""
    channel = unique("batch-")
    client = await subscriber(shared_server, clients, channel)
    items = [
        {"name": "ok", "channel": channel, "data": "d"},
        {"name": "bad", "channel": "bad channel", "data": "d"},
    ]
    response = await api.batch(items)
    assert_error_body(response, 400)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_batch_oversized_item_413(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An item with data over 10240 bytes gives 413 and nothing is sent."""
    channel = unique("batch-")
    client = await subscriber(shared_server, clients, channel)
    items = [
        {"name": "ok", "channel": channel, "data": "d"},
        {"name": "big", "channel": channel, "data": "x" * 10241},
    ]
    response = await api.batch(items)
    assert_error_body(response, 413)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_batch_info_per_item(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """With info on one item, the reply lists attributes per item in order."""
    channel = unique("batch-")
    await subscriber(shared_server, clients, channel)
    items = [
        {"name": "a", "channel": channel, "data": "d", "info": "subscription_count"},
        {"name": "b", "channel": unique("batch-"), "data": "d"},
    ]
    response = await api.batch(items)
    assert response.status == 200
    assert response.json() == {"batch": [{"subscription_count": 1}, {}]}


async def test_batch_socket_id_excluded(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch item's socket_id excludes that connection."""
    channel = unique("batch-")
    excluded = await subscriber(shared_server, clients, channel)
    included = await subscriber(shared_server, clients, channel)
    items = [
        {"name": "e", "channel": channel, "data": "d", "socket_id": excluded.socket_id}
    ]
    response = await api.batch(items)
    assert response.status == 200
    frame = await included.recv_frame()
    assert frame.text == event_frame("e", channel, "d")
    barrier = await excluded.ping_barrier()
    assert barrier.text == PONG_TEXT


@pytest.mark.parametrize(
    "body",
    [{}, {"batch": "nope"}, {"batch": [{"name": "e", "data": "d"}]}],
    ids=["no-batch", "batch-not-list", "item-without-channel"],
)
async def test_batch_invalid_body_400(api: ApiClient, body: dict[str, Any]) -> None:
    """A batch body without a list of complete items gives 400."""
    response = await asyncio.to_thread(
        api.post_json, api.app_path("/batch_events"), body
    )
    assert_error_body(response, 400)
