"""pusher-js 8.6.0 (Node build) over xhr_streaming and over xhr_polling alone,
against a real server: channels, SDK events, client events with a WebSocket
client, presence, and the cleanup after a disconnect."""

from __future__ import annotations

import re
from collections.abc import Callable

import pusher
import pytest
from fallback_harness import (
    GRACE_MARGIN,
    GRACE_SECONDS,
    ScriptClient,
    channel_occupied,
)
from interop_harness import AuthEndpoint, PusherJsClient, wait_until

pytestmark = pytest.mark.parametrize("transport", ["xhr_streaming", "xhr_polling"])


def test_pusher_js_connects_over_transport(
    connect_http: Callable[..., ScriptClient], transport: str
) -> None:
    """pusher-js reaches `connected` over the one HTTP transport it may use."""
    client = connect_http(transport)
    assert re.fullmatch(r"\d+\.\d+", client.socket_id), client.socket_id
    assert client.transports() == [transport]


def test_public_channel_receives_sdk_events(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """Events triggered with the SDK reach a public channel, in order."""
    client = connect_http(transport)
    channel = unique("public-")
    client.subscribe(channel)
    for number in range(5):
        sdk.trigger(channel, "my-event", {"number": number})
    received = [client.wait_event(channel, "my-event")["data"] for _ in range(5)]
    assert received == [{"number": number} for number in range(5)]


def test_private_channel_receives_sdk_events(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    auth_endpoint: AuthEndpoint,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """A private channel, authorized with the connection's socket id, gets events."""
    client = connect_http(transport)
    channel = unique("private-")
    client.subscribe(channel)
    sdk.trigger(channel, "my-event", {"secret": "yes"})
    record = client.wait_event(channel, "my-event")
    assert record["data"] == {"secret": "yes"}
    signed = [r for r in auth_endpoint.requests if r.get("channel_name") == channel]
    assert [r["socket_id"] for r in signed] == [client.socket_id]


def test_presence_channel_tracks_members(
    connect_http: Callable[..., ScriptClient],
    connect_ws: Callable[..., PusherJsClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """An HTTP and a WebSocket member see each other join and leave."""
    channel = unique("presence-")
    alice = connect_http(transport, "alice")
    joined = alice.subscribe(channel)
    assert joined["data"]["me"] == {"id": "alice", "info": {"name": "Alice"}}
    assert joined["data"]["count"] == 1

    bob = connect_ws("bob")
    roster = bob.subscribe(channel)
    assert roster["data"]["count"] == 2
    assert set(roster["data"]["members"]) == {"alice", "bob"}
    added = alice.wait_event(channel, "pusher:member_added")
    assert added["data"] == {"id": "bob", "info": {"name": "Bob"}}

    users = sdk.users_info(channel)["users"]
    assert sorted(user["id"] for user in users) == ["alice", "bob"]

    bob.disconnect()
    removed = alice.wait_event(channel, "pusher:member_removed")
    assert removed["data"] == {"id": "bob", "info": {"name": "Bob"}}


def test_client_event_reaches_websocket_client(
    connect_http: Callable[..., ScriptClient],
    connect_ws: Callable[..., PusherJsClient],
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """A client event sent over HTTP reaches a WebSocket client on the channel."""
    channel = unique("private-")
    sender = connect_http(transport)
    receiver = connect_ws()
    sender.subscribe(channel)
    receiver.subscribe(channel)
    assert sender.trigger(channel, "client-hello", {"from": "http"}) is True
    record = receiver.wait_event(channel, "client-hello")
    assert record["data"] == {"from": "http"}


def test_client_event_reaches_http_client(
    connect_http: Callable[..., ScriptClient],
    connect_ws: Callable[..., PusherJsClient],
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """A client event sent over a WebSocket reaches the HTTP client, and the
    HTTP sender of an event does not get it back."""
    channel = unique("private-")
    receiver = connect_http(transport)
    sender = connect_ws()
    receiver.subscribe(channel)
    sender.subscribe(channel)
    assert sender.trigger(channel, "client-hello", {"from": "ws"}) is True
    record = receiver.wait_event(channel, "client-hello")
    assert record["data"] == {"from": "ws"}

    assert receiver.trigger(channel, "client-reply", {"from": "http"}) is True
    sender.wait_event(channel, "client-reply")
    sender.trigger(channel, "client-done", {})
    receiver.wait_event(channel, "client-done")
    assert receiver.events(channel, "client-reply") == []


def test_unsubscribe_vacates_channel_at_once(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """An unsubscribe sent over HTTP leaves the channel without the grace delay."""
    client = connect_http(transport)
    channel = unique("public-")
    client.subscribe(channel)
    assert channel_occupied(sdk, channel) is True
    client.send("unsubscribe", channel=channel)
    wait_until("the channel is vacated", lambda: not channel_occupied(sdk, channel))


def test_disconnect_vacates_channels(
    connect_http: Callable[..., ScriptClient],
    connect_ws: Callable[..., PusherJsClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """After `disconnect()`, which sends nothing, the server removes the member
    and vacates the channels once the 5 s grace has passed."""
    public = unique("public-")
    presence = unique("presence-")
    alice = connect_http(transport, "alice")
    alice.subscribe(public)
    alice.subscribe(presence)
    bob = connect_ws("bob")
    bob.subscribe(presence)
    assert channel_occupied(sdk, public) is True

    alice.disconnect()
    removed = bob.wait_for(
        "alice's member_removed",
        lambda r: r["type"] == "event" and r["event"] == "pusher:member_removed",
        timeout=GRACE_SECONDS + GRACE_MARGIN,
    )
    assert removed["data"] == {"id": "alice", "info": {"name": "Alice"}}
    wait_until(
        "the public channel is vacated",
        lambda: not channel_occupied(sdk, public),
        timeout=GRACE_MARGIN,
    )


def test_terminate_disconnects_pusher_js(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """A user signed in over HTTP and terminated through the HTTP API gets error
    4009 and ends `disconnected`, without reconnecting."""
    user_id = unique("user-")
    client = connect_http(transport, user_id)
    client.sign_in(user_id)
    sdk.terminate_user_connections(user_id)
    client.wait_error(4009)
    client.wait_state("disconnected")
    assert client.states() == ["connected", "disconnected"]
