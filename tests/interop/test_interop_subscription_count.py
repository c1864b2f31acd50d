"""Subscription counts: `pusher:subscription_count` and
`channel.subscriptionCount` in pusher-js when the app turns them on, and the
`subscription_count` attribute of the HTTP API through both server SDKs."""

from __future__ import annotations

import pytest
from interop_harness import wait_until

pytestmark = pytest.mark.interop

COUNT_EVENTS_ON = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
subscription_count_events = true
"""


def wait_count(client, channel):
    """Consume the next `pusher:subscription_count` on `channel` and return
    its count."""
    record = client.wait_event(channel, "pusher:subscription_count")
    return record["data"]["subscription_count"]


def count_events(client, channel):
    return client.events(channel, "pusher:subscription_count")


@pytest.mark.server_config(COUNT_EVENTS_ON)
@pytest.mark.parametrize("channel", ["counted", "private-counted"])
def test_subscribers_see_count_change(
    connect_clients, python_sdk, node_sdk, send_marker, channel
):
    """Every subscriber gets the new count on each subscribe and leave."""
    alice, bob, carol = connect_clients("alice", "bob", "carol")
    bind = ("pusher:subscription_count",)

    alice.subscribe(channel, bind=bind)
    assert wait_count(alice, channel) == 1
    assert alice.channel_state(channel)["subscriptionCount"] == 1

    bob.subscribe(channel, bind=bind)
    assert wait_count(bob, channel) == 2
    assert wait_count(alice, channel) == 2
    carol.subscribe(channel, bind=bind)
    for client in (alice, bob, carol):
        assert wait_count(client, channel) == 3
        assert client.channel_state(channel)["subscriptionCount"] == 3

    # The HTTP API agrees, through both SDKs and on every route with counts.
    assert python_sdk.channel_info(channel, ["subscription_count"]) == {
        "occupied": True,
        "subscription_count": 3,
    }
    listed = python_sdk.channels_info(attributes=["subscription_count"])
    assert listed == {"channels": {channel: {"subscription_count": 3}}}
    triggered = node_sdk(
        method="trigger",
        channels=[channel],
        event="ping",
        data={},
        params={"info": "subscription_count"},
    )
    assert triggered["body"] == {"channels": {channel: {"subscription_count": 3}}}
    batch = python_sdk.trigger_batch(
        [{"channel": channel, "name": "ping", "data": {}, "info": "subscription_count"}]
    )
    assert batch == {"batch": [{"subscription_count": 3}]}

    # An unsubscribe and a closed connection each lower the count.
    bob.send("unsubscribe", channel=channel)
    assert wait_count(alice, channel) == 2
    assert wait_count(carol, channel) == 2
    carol.disconnect()
    assert wait_count(alice, channel) == 1
    assert alice.channel_state(channel)["subscriptionCount"] == 1
    node_channel_info = node_sdk(
        method="get",
        path=f"/channels/{channel}",
        params={"info": "subscription_count"},
    )
    assert node_channel_info["body"] == {"occupied": True, "subscription_count": 1}

    bob.subscribe("lobby")
    send_marker(channel, alice)
    send_marker("lobby", bob)
    assert [r["data"] for r in count_events(alice, channel)] == [
        {"subscription_count": n} for n in (1, 2, 3, 2, 1)
    ]
    # bob got 2 and 3 while subscribed, and no count frame after leaving.
    assert [r["data"] for r in count_events(bob, channel)] == [
        {"subscription_count": n} for n in (2, 3)
    ]
    frames = bob.messages("pusher_internal:subscription_count")
    assert [r["data"] for r in frames if r["channel"] == channel] == [
        {"subscription_count": n} for n in (2, 3)
    ]


@pytest.mark.server_config(COUNT_EVENTS_ON)
def test_no_count_events_on_presence(connect_clients, python_sdk, send_marker):
    """Presence channels get no count events, but the API counts connections."""
    channel = "presence-counted"
    alice, alice_again, bob = connect_clients("alice", "alice", "bob")
    for client in (alice, alice_again, bob):
        client.subscribe(channel)
    send_marker(channel, alice, alice_again, bob)

    info = python_sdk.channel_info(channel, ["subscription_count", "user_count"])

    assert info == {"occupied": True, "subscription_count": 3, "user_count": 2}
    for client in (alice, alice_again, bob):
        assert count_events(client, channel) == []
        assert client.messages("pusher_internal:subscription_count") == []
        assert client.channel_state(channel)["subscriptionCount"] is None


def test_count_events_off_by_default(connect_clients, python_sdk, send_marker):
    """Without the app option pusher-js gets no counts, but the API has them."""
    channel = "counted"
    alice, bob = connect_clients("alice", "bob")
    alice.subscribe(channel)
    bob.subscribe(channel)
    bob.disconnect()
    wait_until(
        f"{channel} has one subscriber",
        lambda: (
            python_sdk.channel_info(channel, ["subscription_count"])
            == {"occupied": True, "subscription_count": 1}
        ),
    )
    send_marker(channel, alice)

    assert count_events(alice, channel) == []
    assert alice.messages("pusher_internal:subscription_count") == []
    assert alice.channel_state(channel)["subscriptionCount"] is None
