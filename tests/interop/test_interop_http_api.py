"""Every HTTP API endpoint through the Python and Node server SDKs, checked
against the channel state that real pusher-js clients set up."""

from __future__ import annotations

import pytest
from pusher.errors import PusherBadRequest

pytestmark = pytest.mark.interop

ROOM = "presence-room"


@pytest.fixture
def occupied_channels(connect_client):
    """Subscribe pusher-js clients so the app has a known channel state.

    presence-room: users alice (two connections) and bob, 3 subscriptions.
    news: 2 subscriptions. private-news: 1 subscription.
    """
    alice_first = connect_client("alice")
    alice_second = connect_client("alice")
    bob = connect_client("bob")
    for client in (alice_first, alice_second, bob):
        client.subscribe(ROOM)
    alice_first.subscribe("news")
    bob.subscribe("news")
    bob.subscribe("private-news")
    return {"alice": (alice_first, alice_second), "bob": bob}


def sorted_users(body):
    return sorted(body["users"], key=lambda user: user["id"])


# Python SDK


def test_python_channels_info_lists_occupied(python_sdk, occupied_channels):
    """`channels_info` lists each occupied channel with an empty object."""
    result = python_sdk.channels_info()

    assert result == {"channels": {ROOM: {}, "news": {}, "private-news": {}}}


def test_python_channels_info_user_count(python_sdk, occupied_channels):
    """A presence prefix filter with `user_count` counts distinct users."""
    result = python_sdk.channels_info(
        prefix_filter="presence-", attributes=["user_count"]
    )

    assert result == {"channels": {ROOM: {"user_count": 2}}}


def test_python_channels_info_prefix_filter(python_sdk, occupied_channels):
    """A prefix filter keeps only the channels whose names start with it."""
    result = python_sdk.channels_info(prefix_filter="private-")

    assert result == {"channels": {"private-news": {}}}


def test_python_channel_info_presence_counts(python_sdk, occupied_channels):
    """`channel_info` on presence reports users and connections separately."""
    result = python_sdk.channel_info(ROOM, ["user_count", "subscription_count"])

    assert result == {"occupied": True, "user_count": 2, "subscription_count": 3}


def test_python_channel_info_public_counts(python_sdk, occupied_channels):
    """`channel_info` on a public channel reports its subscriptions."""
    result = python_sdk.channel_info("news", ["subscription_count"])

    assert result == {"occupied": True, "subscription_count": 2}


def test_python_channel_info_unoccupied(python_sdk, occupied_channels):
    """An unoccupied channel is reported with zero requested counts."""
    bare = python_sdk.channel_info("nobody-here")
    counted = python_sdk.channel_info("nobody-here", ["subscription_count"])

    assert bare == {"occupied": False}
    assert counted == {"occupied": False, "subscription_count": 0}


def test_python_users_info_lists_users(python_sdk, occupied_channels):
    """`users_info` lists each distinct presence user once."""
    result = python_sdk.users_info(ROOM)

    assert sorted_users(result) == [{"id": "alice"}, {"id": "bob"}]
    assert len(result["users"]) == 2


@pytest.mark.parametrize(
    "request_name",
    [
        "user_count without presence prefix",
        "users of public channel",
        "user_count of public",
    ],
)
def test_python_invalid_query_is_400(python_sdk, occupied_channels, request_name):
    """Queries the HTTP API rejects raise PusherBadRequest (HTTP 400)."""
    requests = {
        "user_count without presence prefix": lambda: python_sdk.channels_info(
            attributes=["user_count"]
        ),
        "users of public channel": lambda: python_sdk.users_info("news"),
        "user_count of public": lambda: python_sdk.channel_info("news", ["user_count"]),
    }

    with pytest.raises(PusherBadRequest):
        requests[request_name]()


# Node SDK


def test_node_get_channels_user_count(node_sdk, occupied_channels):
    """`get /channels` with a presence filter and `user_count`."""
    outcome = node_sdk(
        method="get",
        path="/channels",
        params={"filter_by_prefix": "presence-", "info": "user_count"},
    )

    assert outcome == {
        "ok": True,
        "status": 200,
        "body": {"channels": {ROOM: {"user_count": 2}}},
    }


def test_node_get_channels_lists_occupied(node_sdk, occupied_channels):
    """`get /channels` without parameters lists every occupied channel."""
    outcome = node_sdk(method="get", path="/channels")

    assert outcome["ok"], outcome
    assert outcome["body"] == {"channels": {ROOM: {}, "news": {}, "private-news": {}}}


def test_node_get_channel_counts(node_sdk, occupied_channels):
    """`get /channels/{name}` with both counts on a presence channel."""
    outcome = node_sdk(
        method="get",
        path=f"/channels/{ROOM}",
        params={"info": "user_count,subscription_count"},
    )

    assert outcome["ok"], outcome
    assert outcome["body"] == {
        "occupied": True,
        "user_count": 2,
        "subscription_count": 3,
    }


def test_node_get_channel_users(node_sdk, occupied_channels):
    """`get /channels/{name}/users` lists each distinct user once."""
    outcome = node_sdk(method="get", path=f"/channels/{ROOM}/users")

    assert outcome["ok"], outcome
    assert sorted_users(outcome["body"]) == [{"id": "alice"}, {"id": "bob"}]
    assert len(outcome["body"]["users"]) == 2


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
