"""Watchlist events seen through pusher-js's `pusher.user.watchlist`, as
watched users sign in, close their connections and are terminated."""

from __future__ import annotations

import pytest
from interop_harness import wait_until

pytestmark = pytest.mark.interop


def watching(connect_client, user_id, *watched):
    """Start a client whose user data lists `watched` as its watchlist."""
    return connect_client(user_id, auth_params={"watchlist": ",".join(watched)})


def wait_vacated(python_sdk, channel):
    """Wait until the HTTP API reports `channel` as unoccupied.

    A client's `pusher.disconnect()` returns before the server has handled
    the close. A channel with that client as its only subscriber becomes
    unoccupied once the server has dropped the connection.

    NOTE: the server leaves a closed connection's channels before it signs
    its user out, so a watchlist event from the sign-out may still arrive
    after this returns. Only a later exact check of all events catches it.
    """
    wait_until(
        f"{channel} is vacated",
        lambda: not python_sdk.channel_info(channel)["occupied"],
    )


def watchlist_summary(client):
    """Return each watchlist event so far as (name, user ids)."""
    return [(r["event"], r["data"]["user_ids"]) for r in client.watchlist_events()]


def test_watchlist_follows_watched_users(
    connect_client, connect_clients, python_sdk, node_sdk, send_marker
):
    """Each connection of a watcher gets events as watched users come and go."""
    (bob_first,) = connect_clients("bob")
    bob_first.sign_in("bob")
    bob_first.subscribe("bob-first-tab")
    watchers = (
        watching(connect_client, "alice", "bob", "carol"),
        watching(connect_client, "alice", "bob", "carol"),
    )
    for watcher in watchers:
        watcher.subscribe("lobby")
        watcher.sign_in("alice")

    # At sign-in, bob is online already and carol is not.
    for watcher in watchers:
        online = watcher.wait_watchlist_event("online")
        offline = watcher.wait_watchlist_event("offline")
        assert online["data"] == {"name": "online", "user_ids": ["bob"]}
        assert offline["data"] == {"name": "offline", "user_ids": ["carol"]}

    # carol's first connection signs in, so she comes online.
    carol, bob_second = connect_clients("carol", "bob")
    carol.sign_in("carol")
    for watcher in watchers:
        event = watcher.wait_watchlist_event("online")
        assert event["data"] == {"name": "online", "user_ids": ["carol"]}

    # bob's second connection signs in and his first one closes. bob stays
    # online, so the watchers get nothing.
    bob_second.sign_in("bob")
    bob_first.disconnect()
    wait_vacated(python_sdk, "bob-first-tab")
    send_marker("lobby", *watchers)
    for watcher in watchers:
        assert watchlist_summary(watcher) == [
            ("online", ["bob"]),
            ("offline", ["carol"]),
            ("online", ["carol"]),
        ], watcher.describe()

    # bob's last connection closes, so he goes offline.
    bob_second.disconnect()
    for watcher in watchers:
        event = watcher.wait_watchlist_event("offline")
        assert event["data"] == {"name": "offline", "user_ids": ["bob"]}

    # The app terminates carol's connections, so she goes offline too.
    outcome = node_sdk(method="terminateUserConnections", userId="carol")
    assert outcome == {"ok": True, "status": 200, "body": {}}
    carol.wait_state("disconnected")
    for watcher in watchers:
        event = watcher.wait_watchlist_event("offline")
        assert event["data"] == {"name": "offline", "user_ids": ["carol"]}

    send_marker("lobby", *watchers)
    for watcher in watchers:
        assert watchlist_summary(watcher) == [
            ("online", ["bob"]),
            ("offline", ["carol"]),
            ("online", ["carol"]),
            ("offline", ["bob"]),
            ("offline", ["carol"]),
        ], watcher.describe()


WATCHLIST_EVENTS_OFF = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
watchlist_events = false
"""


@pytest.mark.server_config(WATCHLIST_EVENTS_OFF)
def test_watchlist_events_can_be_turned_off(
    connect_client, connect_clients, python_sdk, send_marker
):
    """With `watchlist_events = false` a watcher gets no watchlist events."""
    (bob,) = connect_clients("bob")
    bob.sign_in("bob")
    bob.subscribe("bob-tab")
    alice = watching(connect_client, "alice", "bob", "carol")
    alice.subscribe("lobby")
    alice.sign_in("alice")

    (carol,) = connect_clients("carol")
    carol.sign_in("carol")
    bob.disconnect()
    wait_vacated(python_sdk, "bob-tab")
    send_marker("lobby", alice)

    assert alice.watchlist_events() == [], alice.describe()
    assert alice.messages("pusher_internal:watchlist_events") == []
