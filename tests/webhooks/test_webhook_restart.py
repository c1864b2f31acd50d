"""Deliveries pending in the outbox survive SIGKILL and SIGTERM, and a restarted
server sends each of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from webhook_harness import (
    APP,
    is_event,
    kill_server,
    outbox_rows,
    wait_for_log,
    webhook_config,
)

CHANNELS = ["kill-1", "kill-2", "kill-3"]


def occupied_channels(receiver):
    return Counter(event["channel"] for event in receiver.events("channel_occupied"))


def test_sigkill_loses_no_pending_delivery(
    start_server, data_dir, make_receiver, raw_client
):
    """After SIGKILL a restarted server sends each refused or in-flight webhook."""
    refusing = make_receiver(listening=False)
    hanging = make_receiver()
    hanging.hang()
    app = replace(
        APP,
        webhooks=[
            {"url": refusing.url(), "event_types": ["channel_occupied"]},
            {"url": hanging.url(), "event_types": ["channel_occupied"]},
        ],
    )
    # webhook_timeout is 2 s, so the last request is still in flight at the kill.
    config = webhook_config(data_dir, [app], timeout=2)
    server = start_server(config)
    client = raw_client(server)
    # One channel at a time, so that each is a delivery of its own.
    for number, channel in enumerate(CHANNELS, start=1):
        client.subscribe(channel)
        hanging.wait_for_request(channel, lambda r, c=channel: c.encode() in r.body)
        refusing.wait_until(
            f"{2 * number} deliveries are in the outbox",
            lambda n=number: outbox_rows(data_dir) == 2 * n,
        )
    held_at_kill = hanging.held_count

    kill_server(server)
    refusing.start()
    hanging.release()
    restarted = start_server(config)
    for receiver in (refusing, hanging):
        receiver.wait_until(
            "every channel_occupied arrives after the restart",
            lambda r=receiver: set(occupied_channels(r)) == set(CHANNELS),
        )
    # Once the outbox is empty, nothing is left to send again.
    refusing.wait_until("the outbox is empty", lambda: outbox_rows(data_dir) == 0)

    assert held_at_kill >= 1
    for receiver in (refusing, hanging):
        assert occupied_channels(receiver) == Counter(CHANNELS), receiver.describe()
        bodies = [request.body for request in receiver.delivered()]
        assert len(bodies) == len(set(bodies)), receiver.describe()
    assert restarted.is_running()


def test_sigterm_sends_delayed_events_later(
    start_server, data_dir, make_receiver, raw_client
):
    """A channel_vacated still in its delay at SIGTERM is sent after a restart."""
    receiver = make_receiver(listening=False)
    webhook = {
        "url": receiver.url(),
        "event_types": ["channel_occupied", "channel_vacated"],
    }
    app = replace(APP, webhooks=[webhook])
    config = webhook_config(data_dir, [app], delay_ms=60_000)
    server = start_server(config)
    client = raw_client(server)
    client.subscribe("stopping")
    wait_for_log(server, r"failed on attempt 1\b")
    client.unsubscribe("stopping")
    client.subscribe("marker")
    wait_for_log(server, r"failed on attempt 1\b", count=2)

    server.stop()
    receiver.start()
    start_server(config)
    receiver.wait_for_event("vacated", is_event("channel_vacated", "stopping"))
    receiver.wait_until("the outbox is empty", lambda: outbox_rows(data_dir) == 0)

    assert server.process.returncode == 0
    names = Counter(
        (event["name"], event["channel"])
        for event in receiver.events()
        if event["channel"] == "stopping"
    )
    assert names == Counter(
        {("channel_occupied", "stopping"): 1, ("channel_vacated", "stopping"): 1}
    )
