"""Cache channels of all four kinds: pusher-js subscribers get the last
event or `pusher:cache_miss` through `channel.bind`, and the HTTP API
reports the cache."""

from __future__ import annotations

import json

import pytest
from interop_harness import wait_until

pytestmark = pytest.mark.interop

CACHE_CHANNELS = {
    "public": "cache-prices",
    "private": "private-cache-prices",
    "presence": "presence-cache-prices",
    "private-encrypted": "private-encrypted-cache-prices",
}

DEFAULT_CACHE_TTL = 1800


def channel_events(client, channel):
    """Return the names of the events pusher-js emitted on `channel`, in order."""
    return [
        r["event"]
        for r in client.records
        if r["type"] == "event" and r["channel"] == channel
    ]


@pytest.mark.parametrize("kind", list(CACHE_CHANNELS))
def test_cache_miss_then_last_event(
    connect_clients, python_sdk, node_sdk, send_marker, kind
):
    """The first subscriber gets a miss, a later one the last event."""
    channel = CACHE_CHANNELS[kind]
    first, later = connect_clients("alice", "bob")

    first.subscribe(channel, bind=("pusher:cache_miss", "price"))
    miss = first.wait_event(channel, "pusher:cache_miss")
    empty = python_sdk.channel_info(channel, ["cache"])

    # Each SDK publishes once; only the Node SDK's later event stays cached.
    python_sdk.trigger(channel, "price", {"value": 1})
    outcome = node_sdk(
        method="trigger", channels=[channel], event="price", data={"value": 2}
    )
    assert outcome["ok"], outcome
    first.wait_event(channel, "price")
    first.wait_event(channel, "price")
    cached = python_sdk.channel_info(channel, ["cache"])

    later.subscribe(channel, bind=("pusher:cache_miss", "price"))
    hit = later.wait_event(channel, "price")
    send_marker(channel, first, later)

    # The frame has no data, so pusher-js passes `undefined`, which the
    # record leaves out.
    assert "data" not in miss, miss
    assert channel_events(first, channel)[:2] == [
        "pusher:subscription_succeeded",
        "pusher:cache_miss",
    ]
    assert empty == {"occupied": True, "cache": None}

    assert hit["data"] == {"value": 2}
    assert channel_events(later, channel) == [
        "pusher:subscription_succeeded",
        "price",
        "marker",
    ], later.describe()
    # The first subscriber's miss came once, on its own subscription.
    assert channel_events(first, channel).count("pusher:cache_miss") == 1

    assert sorted(cached) == ["cache", "occupied"]
    assert cached["occupied"] is True
    ttl = cached["cache"]["ttl"]
    assert DEFAULT_CACHE_TTL - 10 <= ttl <= DEFAULT_CACHE_TTL
    data = cached["cache"]["data"]
    if kind == "private-encrypted":
        # The server caches the SDK's ciphertext, because it never gets the key.
        assert sorted(json.loads(data)) == ["ciphertext", "nonce"]
    else:
        assert json.loads(data) == {"value": 2}


def test_client_events_not_cached(connect_clients, send_marker):
    """A client event on a cache channel leaves the cache empty."""
    channel = "private-cache-chat"
    alice, carol, bob = connect_clients("alice", "carol", "bob")
    alice.subscribe(channel)
    carol.subscribe(channel)

    assert alice.trigger(channel, "client-typing", {"typing": True})
    carol.wait_event(channel, "client-typing")
    bob.subscribe(channel, bind=("pusher:cache_miss",))
    bob.wait_event(channel, "pusher:cache_miss")
    send_marker(channel, bob)

    assert channel_events(bob, channel) == [
        "pusher:subscription_succeeded",
        "pusher:cache_miss",
        "marker",
    ]


SHORT_CACHE_TTL = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
cache_ttl = 1
"""


@pytest.mark.server_config(SHORT_CACHE_TTL)
def test_cache_expires_after_ttl(connect_clients, python_sdk, node_sdk):
    """An event older than `cache_ttl` is gone from the API and from pusher-js."""
    channel = "cache-flash"

    python_sdk.trigger(channel, "flash", {"n": 1})
    fresh = python_sdk.channel_info(channel, ["cache"])
    wait_until(
        f"the cache of {channel} expires",
        lambda: python_sdk.channel_info(channel, ["cache"])["cache"] is None,
    )
    (client,) = connect_clients("alice")
    client.subscribe(channel, bind=("pusher:cache_miss",))
    client.wait_event(channel, "pusher:cache_miss")
    not_cache = node_sdk(method="get", path="/channels/news", params={"info": "cache"})

    # No client was subscribed, yet the server cached the event.
    assert fresh["occupied"] is False
    assert fresh["cache"]["data"] == '{"n": 1}'
    assert 0 <= fresh["cache"]["ttl"] <= 1
    assert "flash" not in channel_events(client, channel)
    # info=cache exists only for cache channels.
    assert not_cache["ok"] is False, not_cache
    assert not_cache["error"]["status"] == 400
