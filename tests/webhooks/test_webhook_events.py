"""Each webhook event type, caused by what pusher-js clients do, and the body,
headers and signature that carry it."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pusher
import pytest
from webhook_harness import APP, count_events, is_event, webhook_config

ALL_EVENT_TYPES = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
    "user_online",
    "user_offline",
]


def start_with_webhook(start_server, data_dir, receiver, **webhook):
    """Start a server whose app sends every webhook matching `webhook` (default:
    Pusher's seven types) to `receiver`."""
    app = replace(APP, webhooks=[{"url": receiver.url(), **webhook}])
    return start_server(webhook_config(data_dir, [app]))


@pytest.mark.interop
def test_channel_occupied_and_vacated(start_server, data_dir, receiver, pusher_js):
    """Subscribing sends channel_occupied and the last unsubscribe channel_vacated."""
    server = start_with_webhook(start_server, data_dir, receiver)
    client = pusher_js(server)

    client.subscribe("news")
    occupied = receiver.wait_for_event("occupied", is_event("channel_occupied"))
    client.send("unsubscribe", channel="news")
    vacated = receiver.wait_for_event("vacated", is_event("channel_vacated"))

    assert occupied == {"name": "channel_occupied", "channel": "news"}
    assert vacated == {"name": "channel_vacated", "channel": "news"}


def test_body_and_headers_match_pusher(start_server, data_dir, receiver, raw_client):
    """A delivery has Pusher's body shape, JSON content type and app key."""
    server = start_with_webhook(start_server, data_dir, receiver)
    before_ms = int(time.time() * 1000)
    raw_client(server).subscribe("news")
    receiver.wait_for_event("occupied", is_event("channel_occupied"))
    request = receiver.delivered()[0]
    payload = json.loads(request.body)

    assert sorted(payload) == ["events", "time_ms"]
    assert isinstance(payload["time_ms"], int)
    assert payload["time_ms"] >= before_ms
    assert payload["time_ms"] <= int(time.time() * 1000)
    assert request.headers["x-pusher-key"] == APP.key
    assert request.headers["content-type"] == "application/json"
    assert request.verified


def test_python_sdk_validates_webhooks(start_server, data_dir, receiver, raw_client):
    """pusher.Pusher.validate_webhook accepts each body exactly as it arrived."""
    server = start_with_webhook(start_server, data_dir, receiver)
    client = raw_client(server)
    client.subscribe("news", "sports")
    client.unsubscribe("news")
    receiver.wait_for_event("vacated", is_event("channel_vacated", "news"))
    sdk = pusher.Pusher(app_id=APP.id, key=APP.key, secret=APP.secret)

    for request in receiver.delivered():
        signature = request.headers["x-pusher-signature"]
        validated = sdk.validate_webhook(APP.key, signature, request.body)
        assert validated is not None, request.body
        assert validated["events"] == request.events
    tampered = receiver.delivered()[0].body.replace(b"news", b"NEWS")
    signature = receiver.delivered()[0].headers["x-pusher-signature"]
    assert sdk.validate_webhook(APP.key, signature, tampered) is None


@pytest.mark.interop
def test_member_added_and_removed(start_server, data_dir, receiver, pusher_js):
    """Presence joins send member_added and leaves member_removed, with user ids."""
    server = start_with_webhook(start_server, data_dir, receiver)
    alice = pusher_js(server, "alice")
    bob = pusher_js(server, "bob")

    alice.subscribe("presence-room")
    bob.subscribe("presence-room")
    receiver.wait_for_event("bob added", is_event("member_added", user_id="bob"))
    bob.disconnect()
    removed = receiver.wait_for_event(
        "bob removed", is_event("member_removed", user_id="bob")
    )

    added = sorted(receiver.events("member_added"), key=lambda e: e["user_id"])
    assert added == [
        {"name": "member_added", "channel": "presence-room", "user_id": "alice"},
        {"name": "member_added", "channel": "presence-room", "user_id": "bob"},
    ]
    assert removed == {
        "name": "member_removed",
        "channel": "presence-room",
        "user_id": "bob",
    }


@pytest.mark.interop
def test_client_event_fields(start_server, data_dir, receiver, pusher_js):
    """client_event carries channel, event, data string, socket id, user id."""
    server = start_with_webhook(start_server, data_dir, receiver)
    alice = pusher_js(server, "alice")
    socket_id = alice.socket_id
    alice.subscribe("private-chat")
    alice.subscribe("presence-chat")

    assert alice.trigger("private-chat", "client-typing", {"text": "hi"})
    assert alice.trigger("presence-chat", "client-typing", {"text": "hé"})
    private = receiver.wait_for_event(
        "private client event", is_event("client_event", "private-chat")
    )
    presence = receiver.wait_for_event(
        "presence client event", is_event("client_event", "presence-chat")
    )

    assert private["event"] == "client-typing"
    assert isinstance(private["data"], str)
    assert json.loads(private["data"]) == {"text": "hi"}
    assert private["socket_id"] == socket_id
    assert "user_id" not in private
    assert json.loads(presence["data"]) == {"text": "hé"}
    assert presence["socket_id"] == socket_id
    assert presence["user_id"] == "alice"


@pytest.mark.interop
def test_cache_miss_sent_once_until_cached(
    start_server, data_dir, receiver, pusher_js, http_api
):
    """cache_miss goes out for the first miss only, until a new cached event."""
    app = replace(APP, webhooks=[{"url": receiver.url()}], settings={"cache_ttl": 1})
    server = start_server(webhook_config(data_dir, [app]))

    def subscribe_and_miss(client, channel):
        client.subscribe(channel)
        client.wait_for(
            f"pusher:cache_miss on {channel}",
            lambda r: (
                r["type"] == "message"
                and r.get("event") == "pusher:cache_miss"
                and r.get("channel") == channel
            ),
        )

    first, second, third = pusher_js(server), pusher_js(server), pusher_js(server)
    subscribe_and_miss(first, "cache-scores")
    receiver.wait_for_event("first miss", is_event("cache_miss", "cache-scores"))
    subscribe_and_miss(second, "cache-scores")
    # A miss on another channel, caused later, marks the end of the first part.
    subscribe_and_miss(second, "cache-marker")
    receiver.wait_for_event("marker miss", is_event("cache_miss", "cache-marker"))
    misses_before_event = count_events(receiver, "cache_miss", "cache-scores")

    http_api(server).trigger("cache-scores", "score", {"home": 1})
    # cache_ttl is 1 s: after that the cached event is gone, so the next
    # subscriber misses again, this time after a new cached event.
    time.sleep(1.5)
    subscribe_and_miss(third, "cache-scores")
    receiver.wait_until(
        "a second cache_miss on cache-scores arrives",
        lambda: count_events(receiver, "cache_miss", "cache-scores") >= 2,
    )

    assert misses_before_event == 1
    assert receiver.events("cache_miss")[0] == {
        "name": "cache_miss",
        "channel": "cache-scores",
    }


@pytest.mark.interop
def test_subscription_count_follows_subscribers(
    start_server, data_dir, receiver, pusher_js
):
    """subscription_count reports the count after each subscribe and unsubscribe."""
    server = start_with_webhook(
        start_server, data_dir, receiver, event_types=["subscription_count"]
    )
    first, second = pusher_js(server), pusher_js(server)

    def wait_for_count(count, times=1):
        receiver.wait_until(
            f"{times} subscription_count event(s) with count {count} arrive",
            lambda: (
                count_events(
                    receiver, "subscription_count", "counted", subscription_count=count
                )
                >= times
            ),
        )

    first.subscribe("counted")
    wait_for_count(1)
    second.subscribe("counted")
    wait_for_count(2)
    second.send("unsubscribe", channel="counted")
    wait_for_count(1, times=2)

    counts = [e["subscription_count"] for e in receiver.events("subscription_count")]
    assert counts == [1, 2, 1]


@pytest.mark.interop
def test_user_online_and_offline(start_server, data_dir, receiver, pusher_js):
    """user_online follows a user's first sign-in, user_offline their last close."""
    server = start_with_webhook(
        start_server,
        data_dir,
        receiver,
        event_types=["user_online", "user_offline"],
    )
    first_tab = pusher_js(server, "alice")
    second_tab = pusher_js(server, "alice")

    first_tab.sign_in("alice")
    online = receiver.wait_for_event("alice online", is_event("user_online"))
    second_tab.sign_in("alice")
    first_tab.disconnect()
    second_tab.disconnect()
    offline = receiver.wait_for_event("alice offline", is_event("user_offline"))
    # Carol's sign-in comes after everything alice did, so once it arrives any
    # extra event for alice would have arrived too.
    carol = pusher_js(server, "carol")
    carol.sign_in("carol")
    receiver.wait_for_event("carol online", is_event("user_online", user_id="carol"))

    assert online == {"name": "user_online", "user_id": "alice"}
    assert offline == {"name": "user_offline", "user_id": "alice"}
    assert count_events(receiver, "user_online", user_id="alice") == 1
    assert count_events(receiver, "user_offline", user_id="alice") == 1


@pytest.mark.interop
def test_user_events_off_by_default(start_server, data_dir, receiver, pusher_js):
    """A URL without event_types gets no user_online or user_offline."""
    server = start_with_webhook(start_server, data_dir, receiver)
    alice = pusher_js(server, "alice")
    alice.sign_in("alice")
    alice.subscribe("after-sign-in")
    receiver.wait_for_event("marker", is_event("channel_occupied", "after-sign-in"))

    assert receiver.events("user_online") == []


@pytest.mark.interop
def test_server_to_user_channels_send_nothing(
    start_server, data_dir, receiver, pusher_js
):
    """The #server-to-user- channel of a sign-in causes no webhook."""
    server = start_with_webhook(
        start_server, data_dir, receiver, event_types=ALL_EVENT_TYPES
    )
    alice = pusher_js(server, "alice")
    alice.sign_in("alice")
    alice.disconnect()
    receiver.wait_for_event("alice offline", is_event("user_offline"))
    # The marker channel is vacated after alice's channel would have been, and
    # channel_vacated waits the same delay for both.
    marker = pusher_js(server)
    marker.subscribe("marker")
    marker.send("unsubscribe", channel="marker")
    receiver.wait_for_event("marker vacated", is_event("channel_vacated", "marker"))

    channels = [e.get("channel") for e in receiver.events()]
    assert [c for c in channels if c and c.startswith("#")] == []
    assert count_events(receiver, "user_online", user_id="alice") == 1
