"""Every HTTP API endpoint through the Python and Node server SDKs, checked
against the channel state that real pusher-js clients set up."""

from __future__ import annotations

import pytest
from pusher.errors import PusherBadRequest

pytestmark = pytest.mark.interop

ROOM = "presence-room"


@pytest.fixture
def occupied_channels(connect_clients):
    """Subscribe pusher-js clients so the app has a known channel state.

    presence-room: users alice (two connections) and bob, 3 subscriptions.
    news: 2 subscriptions. private-news: 1 subscription.
    """
    alice_first, alice_second, bob = connect_clients("alice", "alice", "bob")
    for client in (alice_first, alice_second, bob):
        client.subscribe(ROOM)
    alice_first.subscribe("news")
    bob.subscribe("news")
    bob.subscribe("private-news")
    return {"alice": (alice_first, alice_second), "bob": bob}


def sorted_users(body):
    return sorted(body["users"], key=lambda user: user["id"])


# Python SDK


def test_python_channels_info_matches_state(python_sdk, occupied_channels):
    """`channels_info` lists occupied channels, filtered and counted."""
    everything = python_sdk.channels_info()
    presence = python_sdk.channels_info(
        prefix_filter="presence-", attributes=["user_count"]
    )
    private = python_sdk.channels_info(prefix_filter="private-")

    assert everything == {"channels": {ROOM: {}, "news": {}, "private-news": {}}}
    assert presence == {"channels": {ROOM: {"user_count": 2}}}
    assert private == {"channels": {"private-news": {}}}


def test_python_channel_info_matches_state(python_sdk, occupied_channels):
    """`channel_info` reports occupancy and the requested counts."""
    room = python_sdk.channel_info(ROOM, ["user_count", "subscription_count"])
    news = python_sdk.channel_info("news", ["subscription_count"])
    empty = python_sdk.channel_info("nobody-here")
    empty_counted = python_sdk.channel_info("nobody-here", ["subscription_count"])

    assert room == {"occupied": True, "user_count": 2, "subscription_count": 3}
    assert news == {"occupied": True, "subscription_count": 2}
    assert empty == {"occupied": False}
    assert empty_counted == {"occupied": False, "subscription_count": 0}


def test_python_users_info_lists_users(python_sdk, occupied_channels):
    """`users_info` lists each distinct presence user once."""
    result = python_sdk.users_info(ROOM)

    assert sorted_users(result) == [{"id": "alice"}, {"id": "bob"}]
    assert len(result["users"]) == 2


def test_python_invalid_queries_are_400(python_sdk, occupied_channels):
    """Queries the HTTP API rejects raise PusherBadRequest (HTTP 400)."""
    with pytest.raises(PusherBadRequest):
        python_sdk.channels_info(attributes=["user_count"])
    with pytest.raises(PusherBadRequest):
        python_sdk.users_info("news")
    with pytest.raises(PusherBadRequest):
        python_sdk.channel_info("news", ["user_count"])


# Node SDK


def test_node_get_channels_matches_state(node_sdk, occupied_channels):
    """`get /channels` lists occupied channels, filtered and counted."""
    everything = node_sdk(method="get", path="/channels")
    presence = node_sdk(
        method="get",
        path="/channels",
        params={"filter_by_prefix": "presence-", "info": "user_count"},
    )

    assert everything == {
        "ok": True,
        "status": 200,
        "body": {"channels": {ROOM: {}, "news": {}, "private-news": {}}},
    }
    assert presence == {
        "ok": True,
        "status": 200,
        "body": {"channels": {ROOM: {"user_count": 2}}},
    }


def test_node_get_channel_and_users(node_sdk, occupied_channels):
    """`get /channels/{name}` and `/users` describe the presence channel."""
    channel = node_sdk(
        method="get",
        path=f"/channels/{ROOM}",
        params={"info": "user_count,subscription_count"},
    )
    users = node_sdk(method="get", path=f"/channels/{ROOM}/users")

    assert channel["ok"], channel
    assert channel["body"] == {
        "occupied": True,
        "user_count": 2,
        "subscription_count": 3,
    }
    assert users["ok"], users
    assert sorted_users(users["body"]) == [{"id": "alice"}, {"id": "bob"}]
    assert len(users["body"]["users"]) == 2


def test_node_get_users_of_public_is_400(node_sdk, occupied_channels):
    """The users endpoint on a public channel returns 400."""
    outcome = node_sdk(method="get", path="/channels/news/users")

    assert outcome["ok"] is False
    assert outcome["error"]["status"] == 400


def test_node_trigger_with_info(node_sdk, occupied_channels):
    """A trigger with `info` returns the counts of each target channel."""
    outcome = node_sdk(
        method="trigger",
        channels=[ROOM, "news"],
        event="counted",
        data="x",
        params={"info": "user_count,subscription_count"},
    )
    bob = occupied_channels["bob"]
    bob.wait_event(ROOM, "counted")
    bob.wait_event("news", "counted")

    assert outcome["ok"], outcome
    assert outcome["body"] == {
        "channels": {
            ROOM: {"user_count": 2, "subscription_count": 3},
            "news": {"subscription_count": 2},
        }
    }


def test_node_trigger_batch_with_info(node_sdk, occupied_channels):
    """A batch with `info` on one item returns counts for that item only."""
    batch = [
        {"channel": ROOM, "name": "counted", "data": "x", "info": "user_count"},
        {"channel": "news", "name": "counted", "data": "y"},
    ]

    outcome = node_sdk(method="triggerBatch", batch=batch)

    assert outcome["ok"], outcome
    assert outcome["body"] == {"batch": [{"user_count": 2}, {}]}
