"""Batching per app and URL, URL filters and headers, and the delay that keeps
a page reload from sending channel_vacated or member_removed."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from webhook_harness import APP, OTHER_APP, count_events, is_event, webhook_config


def test_batch_collects_events_in_window(start_server, data_dir, receiver, raw_client):
    """Events of one app within webhook_batch_ms go out in one request."""
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], batch_ms=1000))

    raw_client(server).subscribe("one", "two", "three")
    receiver.wait_until(
        "three channel_occupied events arrive",
        lambda: len(receiver.events("channel_occupied")) == 3,
    )

    requests = receiver.delivered()
    assert len(requests) == 1
    channels = [
        e["channel"] for e in requests[0].events if is_event("channel_occupied")(e)
    ]
    assert channels == ["one", "two", "three"]


def test_batch_never_mixes_apps(start_server, data_dir, receiver, raw_client):
    """Two apps with one URL get one request each, signed with their own secret."""
    apps = [
        replace(APP, webhooks=[{"url": receiver.url()}]),
        replace(OTHER_APP, webhooks=[{"url": receiver.url()}]),
    ]
    server = start_server(webhook_config(data_dir, apps, batch_ms=1000))
    first = raw_client(server, APP)
    second = raw_client(server, OTHER_APP)

    first.send_subscribe("first-app-news")
    second.send_subscribe("second-app-news")
    receiver.wait_until(
        "both apps' channel_occupied events arrive",
        lambda: len(receiver.events("channel_occupied")) == 2,
    )

    requests = receiver.delivered()
    assert sorted(request.key for request in requests) == [APP.key, OTHER_APP.key]
    for request in requests:
        prefix = "first-app-" if request.key == APP.key else "second-app-"
        channels = {event["channel"] for event in request.events}
        assert all(channel.startswith(prefix) for channel in channels), request.body
        # The receiver responds 401 unless the key's own secret signed the body.
        assert request.verified


@pytest.mark.interop
def test_filters_by_type_and_prefix(start_server, data_dir, receiver, pusher_js):
    """Each URL gets only its event types on channels with its prefix."""
    app = replace(
        APP,
        webhooks=[
            {"url": receiver.url("/occupied"), "event_types": ["channel_occupied"]},
            {
                "url": receiver.url("/presence"),
                "event_types": ["channel_occupied", "client_event"],
                "channel_prefix": "presence-",
            },
        ],
    )
    server = start_server(webhook_config(data_dir, [app]))
    alice = pusher_js(server, "alice")

    alice.subscribe("news")
    alice.subscribe("presence-room")
    assert alice.trigger("presence-room", "client-wave", {"hand": "left"})
    assert alice.trigger("presence-room", "client-wave", {"hand": "right"})
    receiver.wait_for_request(
        "the second client event",
        lambda r: r.path == "/presence" and b"right" in r.body,
    )
    # A last channel that both URLs take marks the end of the activity.
    alice.subscribe("presence-marker")
    receiver.wait_until(
        "both URLs get channel_occupied on presence-marker",
        lambda: all(
            any(
                r.path == path and b"presence-marker" in r.body
                for r in receiver.delivered()
            )
            for path in ("/occupied", "/presence")
        ),
    )

    def received(path):
        return [
            (event["name"], event["channel"])
            for request in receiver.delivered()
            if request.path == path
            for event in request.events
        ]

    assert sorted(received("/occupied")) == [
        ("channel_occupied", "news"),
        ("channel_occupied", "presence-marker"),
        ("channel_occupied", "presence-room"),
    ]
    assert sorted(received("/presence")) == [
        ("channel_occupied", "presence-marker"),
        ("channel_occupied", "presence-room"),
        ("client_event", "presence-room"),
        ("client_event", "presence-room"),
    ]


def test_custom_headers_sent(start_server, data_dir, receiver, raw_client):
    """Headers configured for a URL come with each of its requests."""
    headers = {"Authorization": "Bearer receiver-token", "X-Tenant": "blue"}
    app = replace(APP, webhooks=[{"url": receiver.url(), "headers": headers}])
    server = start_server(webhook_config(data_dir, [app]))

    raw_client(server).subscribe("news")
    receiver.wait_for_event("occupied", is_event("channel_occupied"))
    request = receiver.delivered()[0]

    assert request.headers["authorization"] == "Bearer receiver-token"
    assert request.headers["x-tenant"] == "blue"
    assert request.headers["x-pusher-key"] == APP.key


def test_vacated_waits_for_delay(start_server, data_dir, receiver, raw_client):
    """channel_vacated waits webhook_delay_ms, so later events overtake it."""
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], delay_ms=1000))
    client = raw_client(server)
    client.subscribe("leaving")
    receiver.wait_for_event("occupied", is_event("channel_occupied", "leaving"))

    client.unsubscribe("leaving")
    client.subscribe("arriving")
    receiver.wait_for_event("vacated", is_event("channel_vacated", "leaving"))

    order = [
        (event["name"], event["channel"])
        for event in receiver.events()
        if event["name"] in ("channel_occupied", "channel_vacated")
    ]
    assert order == [
        ("channel_occupied", "leaving"),
        ("channel_occupied", "arriving"),
        ("channel_vacated", "leaving"),
    ]


@pytest.mark.interop
def test_reload_cancels_vacated_and_removed(
    start_server, data_dir, receiver, pusher_js
):
    """A page reload within the delay sends nothing; leaving for good does."""
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], delay_ms=1000))
    before_reload = pusher_js(server, "alice")
    after_reload = pusher_js(server, "alice")
    before_reload.subscribe("presence-lobby")
    receiver.wait_for_event("alice added", is_event("member_added", user_id="alice"))

    before_reload.disconnect()
    after_reload.subscribe("presence-lobby")
    # The marker channel is vacated after the lobby was, and both wait the same
    # delay, so once the marker's channel_vacated arrives the lobby's would have.
    after_reload.subscribe("marker")
    after_reload.send("unsubscribe", channel="marker")
    receiver.wait_for_event("marker vacated", is_event("channel_vacated", "marker"))

    assert count_events(receiver, "channel_occupied", "presence-lobby") == 1
    assert count_events(receiver, "member_added", "presence-lobby") == 1
    assert count_events(receiver, "channel_vacated", "presence-lobby") == 0
    assert count_events(receiver, "member_removed", "presence-lobby") == 0

    after_reload.send("unsubscribe", channel="presence-lobby")
    receiver.wait_for_event(
        "lobby vacated", is_event("channel_vacated", "presence-lobby")
    )
    receiver.wait_for_event(
        "alice removed", is_event("member_removed", "presence-lobby")
    )

    assert count_events(receiver, "channel_vacated", "presence-lobby") == 1
    assert count_events(receiver, "member_removed", "presence-lobby") == 1


@pytest.mark.interop
def test_member_rejoin_cancels_removed(start_server, data_dir, receiver, pusher_js):
    """Leaving and rejoining within the delay sends no member events."""
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], delay_ms=1000))
    alice = pusher_js(server, "alice")
    bob = pusher_js(server, "bob")
    bob.subscribe("presence-room")
    alice.subscribe("presence-room")
    receiver.wait_for_event("alice added", is_event("member_added", user_id="alice"))

    alice.send("unsubscribe", channel="presence-room")
    alice.subscribe("presence-room")
    # Bob leaves for good after alice came back, so his member_removed arrives
    # after alice's would have.
    bob.disconnect()
    receiver.wait_for_event("bob removed", is_event("member_removed", user_id="bob"))

    assert count_events(receiver, "member_removed", user_id="alice") == 0
    assert count_events(receiver, "member_added", user_id="alice") == 1
    assert count_events(receiver, "channel_vacated") == 0


def test_same_url_tables_keep_own_events(start_server, data_dir, receiver, raw_client):
    """Two tables with one URL never repeat an event and keep their own headers."""
    webhooks = [
        {"url": receiver.url(), "event_types": ["channel_occupied"]},
        {
            "url": receiver.url(),
            "event_types": ["channel_occupied", "channel_vacated"],
            "headers": {"X-Tenant": "blue"},
        },
    ]
    app = replace(APP, webhooks=webhooks)
    server = start_server(webhook_config(data_dir, [app]))
    client = raw_client(server)

    client.subscribe("shared")
    client.unsubscribe("shared")
    receiver.wait_for_event("vacated", is_event("channel_vacated", "shared"))
    # Vacated waits the delay, so the occupied events went out before it.
    requests = receiver.delivered()

    for request in requests:
        events = [json.dumps(event, sort_keys=True) for event in request.events]
        assert len(events) == len(set(events)), request.body
    vacated = [r for r in requests if b"channel_vacated" in r.body]
    assert vacated[0].headers.get("x-tenant") == "blue"
    assert count_events(receiver, "channel_occupied", "shared") >= 1
