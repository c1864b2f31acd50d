"""Presence rosters as pusher-js reports them, across users and connections."""

from __future__ import annotations

import pytest
from interop_harness import wait_until

pytestmark = pytest.mark.interop

ROOM = "presence-room"


def subscription_count(python_sdk, channel):
    info = python_sdk.channel_info(channel, ["subscription_count"])
    return info.get("subscription_count")


def test_presence_roster_two_users(connect_clients, send_marker):
    """Two users see each other join, count to two, and see the other leave."""
    alice, bob = connect_clients("alice", "bob")

    alice_joined = alice.subscribe(ROOM)
    bob_joined = bob.subscribe(ROOM)
    added = alice.wait_event(ROOM, "pusher:member_added")
    send_marker(ROOM, alice, bob)

    assert alice_joined["data"] == {
        "count": 1,
        "me": {"id": "alice", "info": {"name": "Alice"}},
        "members": {"alice": {"name": "Alice"}},
    }
    assert bob_joined["data"] == {
        "count": 2,
        "me": {"id": "bob", "info": {"name": "Bob"}},
        "members": {"alice": {"name": "Alice"}, "bob": {"name": "Bob"}},
    }
    assert added["data"] == {"id": "bob", "info": {"name": "Bob"}}
    assert alice.members(ROOM)["count"] == 2
    assert bob.events(ROOM, "pusher:member_added") == [], bob.describe()

    bob.disconnect()
    removed = alice.wait_event(ROOM, "pusher:member_removed")

    assert removed["data"] == {"id": "bob", "info": {"name": "Bob"}}
    assert alice.members(ROOM)["count"] == 1


def test_presence_user_on_two_connections(connect_clients, python_sdk, send_marker):
    """One user on two connections is one member until both have left."""
    bob, alice_first, alice_second = connect_clients("bob", "alice", "alice")
    bob.subscribe(ROOM)

    alice_first.subscribe(ROOM)
    bob.wait_event(ROOM, "pusher:member_added")
    second_joined = alice_second.subscribe(ROOM)
    send_marker(ROOM, bob, alice_first, alice_second)

    assert second_joined["data"] == {
        "count": 2,
        "me": {"id": "alice", "info": {"name": "Alice"}},
        "members": {"alice": {"name": "Alice"}, "bob": {"name": "Bob"}},
    }
    assert len(bob.events(ROOM, "pusher:member_added")) == 1, bob.describe()
    assert alice_first.events(ROOM, "pusher:member_added") == [], alice_first.describe()
    assert bob.members(ROOM)["count"] == 2

    alice_first.disconnect()
    wait_until(
        "the server has dropped alice's first connection from the room",
        lambda: subscription_count(python_sdk, ROOM) == 2,
    )
    send_marker(ROOM, bob)

    assert bob.events(ROOM, "pusher:member_removed") == [], bob.describe()
    assert bob.members(ROOM)["count"] == 2

    alice_second.disconnect()
    removed = bob.wait_event(ROOM, "pusher:member_removed")

    assert removed["data"] == {"id": "alice", "info": {"name": "Alice"}}
    assert bob.members(ROOM)["count"] == 1
