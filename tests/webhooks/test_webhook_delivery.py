"""Delivery at least once: retries after connection errors, error statuses and
timeouts, receivers that are slow or hang, and what a failure logs."""

from __future__ import annotations

from dataclasses import replace

from webhook_harness import (
    APP,
    WAIT_TIMEOUT,
    is_event,
    wait_for_log,
    webhook_config,
)

FAILURE_LINE = r"failed on attempt \d+"


def failure_lines(server):
    return [
        line for line in server.log_text().splitlines() if "failed on attempt" in line
    ]


def test_receiver_down_then_up_delivers(
    start_server, data_dir, make_receiver, raw_client
):
    """A delivery refused while the receiver is down arrives once it is up."""
    receiver = make_receiver(listening=False)
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app]))

    raw_client(server).subscribe("outage")
    wait_for_log(server, FAILURE_LINE)
    receiver.start()
    occupied = receiver.wait_for_event(
        "occupied after the outage", is_event("channel_occupied", "outage")
    )

    assert occupied == {"name": "channel_occupied", "channel": "outage"}
    assert len(receiver.delivered()) == 1


def test_error_status_retried_until_ok(start_server, data_dir, receiver, raw_client):
    """A receiver that responds 500 twice gets the same signed body a third time."""
    receiver.fail_next(2, status=500)
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app]))

    raw_client(server).subscribe("flaky")
    receiver.wait_for_event("occupied", is_event("channel_occupied", "flaky"))

    statuses = [request.status for request in receiver.requests]
    assert statuses == [500, 500, 200]
    bodies = {request.body for request in receiver.requests}
    assert len(bodies) == 1
    signatures = {
        request.headers["x-pusher-signature"] for request in receiver.requests
    }
    assert len(signatures) == 1
    lines = failure_lines(server)
    assert len(lines) == 2
    assert "attempt 1" in lines[0]
    assert "attempt 2" in lines[1]
    assert "500" in lines[0]


def test_retries_last_whole_window(start_server, data_dir, receiver, raw_client):
    """A failing delivery is retried until webhook_retry_window has passed."""
    receiver.fail_next(1_000_000, status=500)
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], retry_window=4))

    raw_client(server).subscribe("persistent")
    wait_for_log(server, "dead-letter")

    created = receiver.requests[0].payload["time_ms"] / 1000
    last_attempt = receiver.requests[-1].received_at
    # Server and receiver share this host's clock. The margin covers only
    # rounding, since a slow machine makes the last attempt later, not earlier.
    assert last_attempt >= created + 4 - 0.25, (
        f"the last of {len(receiver.requests)} attempts came "
        f"{last_attempt - created:.2f} s after the webhook was created"
    )


def test_slow_receiver_delivered_once(start_server, data_dir, receiver, raw_client):
    """A receiver that responds slowly within webhook_timeout gets each body once."""
    receiver.respond_after(1.0)
    app = replace(APP, webhooks=[{"url": receiver.url()}])
    server = start_server(webhook_config(data_dir, [app], timeout=5))
    client = raw_client(server)

    client.subscribe("slow")
    client.subscribe("slower")
    receiver.wait_for_event("occupied slower", is_event("channel_occupied", "slower"))
    receiver.wait_for_event("occupied slow", is_event("channel_occupied", "slow"))

    assert len(receiver.requests) == len(receiver.delivered())
    assert failure_lines(server) == []


def test_hanging_receiver_keeps_fanout(
    start_server, data_dir, make_receiver, raw_client, http_api
):
    """A hanging URL delays neither subscribers nor other URLs, and is retried."""
    hanging = make_receiver()
    healthy = make_receiver()
    hanging.hang()
    app = replace(APP, webhooks=[{"url": hanging.url()}, {"url": healthy.url()}])
    server = start_server(webhook_config(data_dir, [app], timeout=5))
    subscriber = raw_client(server)
    subscriber.subscribe("live")
    hanging.wait_until(
        "the hanging receiver holds a request", lambda: hanging.held_count
    )
    healthy.wait_for_event("occupied live", is_event("channel_occupied", "live"))

    http_api(server).trigger("live", "score", {"home": 2})
    event = subscriber.wait_for("score", "live")
    subscriber.subscribe("live-2")
    healthy.wait_for_event("occupied live-2", is_event("channel_occupied", "live-2"))
    # webhook_timeout is 5 s and no failure is logged yet, so both arrived
    # while the hanging receiver still held the server's request.
    assert failure_lines(server) == []
    assert hanging.held_count >= 1
    assert event["data"] == '{"home": 2}'

    hanging.release()
    hanging.wait_for_event("occupied live", is_event("channel_occupied", "live"))
    # The retry sends the held request's body again, byte for byte.
    assert hanging.requests[0].body in [r.body for r in hanging.delivered()]


def hang_with_backlog(start_server, data_dir, make_receiver, raw_client, timeout):
    """Start a server with a hanging URL for `slow-` channels and a healthy one
    for `fast-` channels, and queue 40 deliveries for the hanging one."""
    hanging = make_receiver()
    healthy = make_receiver()
    hanging.hang()
    webhooks = [
        {
            "url": hanging.url(),
            "event_types": ["channel_occupied"],
            "channel_prefix": "slow-",
        },
        {
            "url": healthy.url(),
            "event_types": ["channel_occupied"],
            "channel_prefix": "fast-",
        },
    ]
    app = replace(APP, webhooks=webhooks)
    # With no batch window, each subscription is a delivery of its own.
    config = webhook_config(data_dir, [app], batch_ms=0, timeout=timeout)
    server = start_server(config)
    client = raw_client(server)
    for number in range(40):
        client.subscribe(f"slow-{number}")
    hanging.wait_until(
        "the hanging receiver holds requests", lambda: hanging.held_count
    )
    return server, client, hanging, healthy


def test_hanging_receiver_connections_bounded(
    start_server, data_dir, make_receiver, raw_client
):
    """Forty deliveries to a hanging URL do not open forty requests at once."""
    server, _, hanging, _ = hang_with_backlog(
        start_server, data_dir, make_receiver, raw_client, timeout=1
    )

    # By the first timeouts, every request of the first round has started.
    wait_for_log(server, r"attempt 1\b", count=4)

    assert 1 <= hanging.max_held_count < 40


def test_hung_backlog_does_not_delay_other_url(
    start_server, data_dir, make_receiver, raw_client
):
    """A healthy URL's delivery does not wait behind a hanging URL's backlog."""
    server, client, hanging, healthy = hang_with_backlog(
        start_server, data_dir, make_receiver, raw_client, timeout=3
    )

    client.subscribe("fast-1")
    healthy.wait_for_event(
        "occupied fast-1",
        is_event("channel_occupied", "fast-1"),
        timeout=WAIT_TIMEOUT + 6,
    )

    # No hung request has timed out yet, so the healthy delivery did not wait
    # for slots that the hanging URL's backlog held.
    failures = failure_lines(server)
    assert failures == [], (
        f"the healthy URL's delivery arrived only after {len(failures)} "
        f"attempts to the hanging URL timed out; first: {failures[:1]}"
    )


def test_failure_log_names_app_host_attempt(
    start_server, data_dir, make_receiver, raw_client
):
    """Failures log app id, host and attempt, never the secret or header values."""
    receiver = make_receiver(listening=False)
    webhook = {
        "url": receiver.url("/hooks?token=query-token"),
        "headers": {"Authorization": "Bearer header-token"},
    }
    app = replace(APP, webhooks=[webhook])
    server = start_server(webhook_config(data_dir, [app]))

    raw_client(server).subscribe("logged")
    lines = wait_for_log(server, FAILURE_LINE, count=2)
    log = server.log_text()

    for attempt, line in enumerate(lines[:2], start=1):
        assert APP.id in line, line
        assert "127.0.0.1" in line, line
        assert f"attempt {attempt}" in line, line
    assert APP.secret not in log
    assert "header-token" not in log
