"""Events triggered by the Python and Node server SDKs, received by pusher-js
on public, private, presence and private-encrypted channels."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop

CHANNELS = {
    "public": "news",
    "private": "private-news",
    "presence": "presence-news",
    "private-encrypted": "private-encrypted-news",
}

# pusher-js JSON-parses event data, so this arrives as an equal object.
JSON_PAYLOAD = {
    "text": "héllo wörld ✓",
    "count": 3,
    "nested": {"ok": True, "ids": [1, 2]},
}

# Not valid JSON, so pusher-js hands the string over unparsed: any change the
# server made to the bytes (spacing, escaping, re-encoding) would show.
RAW_PAYLOAD = 'not JSON: {"spaced":  true}, tab\t, ünïcode ✓,'


def subscribe_to_all(client):
    for channel in CHANNELS.values():
        client.subscribe(channel)


def test_python_sdk_trigger_reaches_pusherjs(connect_client, python_sdk, channel_type):
    """An event triggered by the Python SDK arrives with its exact data."""
    channel = CHANNELS[channel_type]
    client = connect_client("alice")
    client.subscribe(channel)

    json_result = python_sdk.trigger(channel, "greeting", JSON_PAYLOAD)
    json_event = client.wait_event(channel, "greeting")
    raw_result = python_sdk.trigger(channel, "greeting", RAW_PAYLOAD)
    raw_event = client.wait_event(channel, "greeting")

    assert json_result == {}
    assert json_event["data"] == JSON_PAYLOAD
    assert raw_result == {}
    assert raw_event["data"] == RAW_PAYLOAD


def test_encrypted_event_stays_encrypted_on_wire(connect_client, python_sdk):
    """The server forwards private-encrypted data as the SDK's ciphertext."""
    channel = CHANNELS["private-encrypted"]
    client = connect_client()
    client.subscribe(channel)

    python_sdk.trigger(channel, "secret", JSON_PAYLOAD)
    decrypted = client.wait_event(channel, "secret")
    frame = client.wait_for(
        "the encrypted frame",
        lambda r: r["type"] == "message" and r.get("event") == "secret",
    )

    assert decrypted["data"] == JSON_PAYLOAD
    assert sorted(frame["data"]) == ["ciphertext", "nonce"]


def test_node_sdk_trigger_reaches_pusherjs(connect_client, node_sdk, channel_type):
    """An event triggered by the Node SDK arrives with its exact data."""
    channel = CHANNELS[channel_type]
    client = connect_client("alice")
    client.subscribe(channel)

    outcome = node_sdk(
        method="trigger", channels=[channel], event="greeting", data=JSON_PAYLOAD
    )
    event = client.wait_event(channel, "greeting")

    assert outcome == {"ok": True, "status": 200, "body": {}}
    assert event["data"] == JSON_PAYLOAD


def test_python_sdk_multichannel_trigger_reaches_all(connect_client, python_sdk):
    """One trigger naming three channels reaches the client on each of them."""
    channels = [CHANNELS["public"], CHANNELS["private"], CHANNELS["presence"]]
    client = connect_client("alice")
    for channel in channels:
        client.subscribe(channel)

    result = python_sdk.trigger(channels, "headline", JSON_PAYLOAD)

    assert result == {}
    for channel in channels:
        event = client.wait_event(channel, "headline")
        assert event["data"] == JSON_PAYLOAD, channel


def test_python_sdk_trigger_batch_reaches_pusherjs(connect_client, python_sdk):
    """`trigger_batch` delivers each item's data on its own channel type."""
    client = connect_client("alice")
    subscribe_to_all(client)
    batch = [
        {"channel": channel, "name": "batched", "data": {"channel_type": channel_type}}
        for channel_type, channel in CHANNELS.items()
    ]

    result = python_sdk.trigger_batch(batch)

    assert result == {}
    for channel_type, channel in CHANNELS.items():
        event = client.wait_event(channel, "batched")
        assert event["data"] == {"channel_type": channel_type}, channel


def test_node_sdk_trigger_batch_reaches_pusherjs(connect_client, node_sdk):
    """`triggerBatch` delivers each item's data on its own channel type."""
    client = connect_client("alice")
    subscribe_to_all(client)
    batch = [
        {"channel": channel, "name": "batched", "data": {"channel_type": channel_type}}
        for channel_type, channel in CHANNELS.items()
    ]

    outcome = node_sdk(method="triggerBatch", batch=batch)

    assert outcome == {"ok": True, "status": 200, "body": {}}
    for channel_type, channel in CHANNELS.items():
        event = client.wait_event(channel, "batched")
        assert event["data"] == {"channel_type": channel_type}, channel


def trigger_excluding(trigger_method, socket_id, python_sdk, node_sdk):
    """Trigger `update` on `news` so that `socket_id` is left out."""
    data = {"excluded": socket_id}
    if trigger_method == "python trigger":
        python_sdk.trigger("news", "update", data, socket_id=socket_id)
    elif trigger_method == "python trigger_batch":
        item = {
            "channel": "news",
            "name": "update",
            "data": data,
            "socket_id": socket_id,
        }
        python_sdk.trigger_batch([item])
    elif trigger_method == "node trigger":
        outcome = node_sdk(
            method="trigger",
            channels=["news"],
            event="update",
            data=data,
            params={"socket_id": socket_id},
        )
        assert outcome["ok"], outcome
    else:
        item = {
            "channel": "news",
            "name": "update",
            "data": data,
            "socket_id": socket_id,
        }
        outcome = node_sdk(method="triggerBatch", batch=[item])
        assert outcome["ok"], outcome


@pytest.mark.parametrize(
    "trigger_method",
    ["python trigger", "python trigger_batch", "node trigger", "node triggerBatch"],
)
def test_trigger_skips_excluded_socket(
    connect_clients, python_sdk, node_sdk, send_marker, trigger_method
):
    """A trigger with one client's socket_id reaches only the other client."""
    excluded, other = connect_clients(None, None)
    excluded.subscribe("news")
    other.subscribe("news")

    trigger_excluding(trigger_method, excluded.socket_id, python_sdk, node_sdk)
    received = other.wait_event("news", "update")
    send_marker("news", excluded, other)

    assert received["data"] == {"excluded": excluded.socket_id}
    assert excluded.events("news", "update") == [], excluded.describe()


@pytest.fixture(params=list(CHANNELS))
def channel_type(request):
    """Each channel type in turn: public, private, presence, private-encrypted."""
    return request.param
