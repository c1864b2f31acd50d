"""Client events sent by one pusher-js client and received by another."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop

TYPING = {"text": "hi ✓", "line": 1}


def test_client_event_on_private_channel(connect_clients, send_marker):
    """A private-channel client event reaches the peer and not the sender."""
    sender, receiver = connect_clients(None, None)
    sender.subscribe("private-chat", bind=("client-typing",))
    receiver.subscribe("private-chat", bind=("client-typing",))

    sent = sender.trigger("private-chat", "client-typing", TYPING)
    received = receiver.wait_event("private-chat", "client-typing")
    frame = receiver.wait_for(
        "the client-typing frame",
        lambda r: r["type"] == "message" and r.get("event") == "client-typing",
    )
    send_marker("private-chat", sender, receiver)

    assert sent is True
    assert received["data"] == TYPING
    assert "user_id" not in frame, frame
    assert sender.events("private-chat", "client-typing") == [], sender.describe()


def test_client_event_on_presence_channel(connect_clients, send_marker):
    """A presence-channel client event carries the sender's user id."""
    alice, bob = connect_clients("alice", "bob")
    alice.subscribe("presence-chat", bind=("client-typing",))
    bob.subscribe("presence-chat", bind=("client-typing",))

    sent = alice.trigger("presence-chat", "client-typing", TYPING)
    received = bob.wait_event("presence-chat", "client-typing")
    send_marker("presence-chat", alice, bob)

    assert sent is True
    assert received["data"] == TYPING
    assert received["metadata"] == {"user_id": "alice"}
    assert alice.events("presence-chat", "client-typing") == [], alice.describe()


def test_client_events_flow_both_ways(connect_clients, send_marker):
    """Each of two clients receives the other's client events, in order."""
    alice, bob = connect_clients("alice", "bob")
    alice.subscribe("presence-chat", bind=("client-move",))
    bob.subscribe("presence-chat", bind=("client-move",))

    for step in range(3):
        alice.trigger("presence-chat", "client-move", {"by": "alice", "step": step})
        bob.trigger("presence-chat", "client-move", {"by": "bob", "step": step})
    at_bob = [bob.wait_event("presence-chat", "client-move")["data"] for _ in range(3)]
    at_alice = [
        alice.wait_event("presence-chat", "client-move")["data"] for _ in range(3)
    ]
    send_marker("presence-chat", alice, bob)

    assert at_bob == [{"by": "alice", "step": step} for step in range(3)]
    assert at_alice == [{"by": "bob", "step": step} for step in range(3)]
    assert len(alice.events("presence-chat", "client-move")) == 3, alice.describe()
    assert len(bob.events("presence-chat", "client-move")) == 3, bob.describe()
