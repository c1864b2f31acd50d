"""Each per-app limit over real sockets on one server: the documented close
code, subscription error, pusher:error or HTTP status, and the JSON body."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pusher
import pytest
from clarion_e2e import (
    ApiResponse,
    Frame,
    channel_auth,
    error_frame,
    sdk_client,
)
from clarion_launch import ClientOpener, RunningServer
from limits_harness import (
    API_RATE_APP,
    CLIENT_RATE_APP,
    EVENT_RATE_APP,
    PAYLOAD_APP,
    PRESENCE_APP,
    QUOTA_APP,
    SDK_API_RATE_APP,
    api_client,
    join_presence,
    ws_url,
)
from prometheus_client.parser import text_string_to_metric_families

BURST = 20
"""Requests or events sent back to back against a limit of 5 per second."""
LIMIT = 5


def most_accepted(seconds: float) -> float:
    """Return the most that a limit of 5 per second lets through in a burst
    that took ``seconds``: 5 per second, plus under 5 more at a window
    boundary, so under 10 for a burst shorter than a second."""
    return LIMIT * (seconds + 2)


def subscription_error(frame: Frame) -> dict[str, Any]:
    assert frame.event == "pusher:subscription_error", frame.text
    return dict(frame.data)


def user_info_of_size(size: int) -> dict[str, str]:
    """Return a user_info whose compact JSON is exactly ``size`` bytes."""
    return {"n": "x" * (size - len('{"n":""}'))}


async def send_burst(
    probe: Callable[[], ApiResponse],
) -> tuple[list[ApiResponse], float]:
    """Send ``BURST`` requests one after another; return the responses and
    the seconds the burst took."""
    started = time.monotonic()
    responses = [await asyncio.to_thread(probe) for _ in range(BURST)]
    return responses, time.monotonic() - started


def statuses(responses: list[ApiResponse]) -> list[int]:
    return [response.status for response in responses]


# Connections


async def test_connection_over_quota_gets_4004(
    limits_server: RunningServer, clients: ClientOpener
) -> None:
    """The third connection of an app with max_connections = 2 gets 4004, and
    the rejection is logged with the app id."""
    first = await clients.established(ws_url(limits_server, QUOTA_APP))
    await clients.established(ws_url(limits_server, QUOTA_APP))
    third = await clients.raw(ws_url(limits_server, QUOTA_APP))

    frame = await third.recv_frame()
    code, reason = await third.wait_closed()

    assert frame.text == error_frame(4004, "Application is over connection quota")
    assert code == 4004
    assert reason == "Application is over connection quota"
    assert (await first.ping_barrier()).event == "pusher:pong"
    assert f"[app {QUOTA_APP.app_id}] Rejected by max_connections" in (
        limits_server.log_text()
    )


# Presence


async def test_presence_limit_above_100(
    limits_server: RunningServer, clients: ClientOpener
) -> None:
    """With max_presence_members = 101, 101 users join and the 102nd gets
    LimitReached with 4100; a member's second connection still joins."""
    channel = "presence-crowd"
    members = await asyncio.gather(
        *(clients.established(ws_url(limits_server, PRESENCE_APP)) for _ in range(102))
    )
    replies = await asyncio.gather(
        *(
            join_presence(member, PRESENCE_APP, channel, f"user-{i}", {})
            for i, member in enumerate(members[:101])
        )
    )
    late = await join_presence(members[101], PRESENCE_APP, channel, "user-101", {})
    second_tab = await clients.established(ws_url(limits_server, PRESENCE_APP))
    again = await join_presence(second_tab, PRESENCE_APP, channel, "user-0", {})
    # Each member has queued a member_added per later member; closing them
    # together bounds the wait for their close handshakes to one timeout.
    await asyncio.gather(*(client.close() for client in [*members, second_tab]))

    assert {reply.event for reply in replies} == {
        "pusher_internal:subscription_succeeded"
    }
    error = subscription_error(late)
    assert error["type"] == "LimitReached"
    assert error["status"] == 4100
    assert again.event == "pusher_internal:subscription_succeeded", again.text


async def test_user_info_above_default_size(
    limits_server: RunningServer, clients: ClientOpener
) -> None:
    """With max_presence_user_info_bytes = 2048, a 2048-byte user_info joins
    and a 2049-byte one gets LimitReached with 4301."""
    fits = await clients.established(ws_url(limits_server, PRESENCE_APP))
    too_big = await clients.established(ws_url(limits_server, PRESENCE_APP))

    joined = await join_presence(
        fits, PRESENCE_APP, "presence-info", "big", user_info_of_size(2048)
    )
    refused = await join_presence(
        too_big, PRESENCE_APP, "presence-info", "bigger", user_info_of_size(2049)
    )

    assert joined.event == "pusher_internal:subscription_succeeded", joined.text
    error = subscription_error(refused)
    assert error["type"] == "LimitReached"
    assert error["status"] == 4301
    assert "2049 bytes" in error["error"]


# Event size, channels per trigger, batch size


def test_event_over_max_bytes_gets_413(limits_server: RunningServer) -> None:
    """An event whose data is over max_event_bytes gets 413 and a JSON error."""
    api = api_client(limits_server, PAYLOAD_APP)

    response = api.post_json(
        api.app_path("/events"), {"name": "e", "channel": "c", "data": "x" * 101}
    )

    assert response.status == 413
    assert response.json() == {
        "error": "Event data is 101 bytes, over the limit of 100 bytes",
        "code": 413,
    }


def test_sdk_sees_too_many_channels_as_400(limits_server: RunningServer) -> None:
    """The official SDK gets PusherBadRequest for 4 channels over a limit of 3."""
    sdk = sdk_client(api_client(limits_server, PAYLOAD_APP))

    with pytest.raises(pusher.errors.PusherBadRequest) as caught:
        sdk.trigger(["a", "b", "c", "d"], "e", "data")

    assert "Too many channels: 4 given, at most 3 allowed" in str(caught.value)


def test_batch_over_max_events_gets_400(limits_server: RunningServer) -> None:
    """A batch of 3 events over max_batch_events = 2 gets 400."""
    api = api_client(limits_server, PAYLOAD_APP)
    item = {"name": "e", "channel": "c", "data": "d"}

    response = api.post_json(api.app_path("/batch_events"), {"batch": [item] * 3})

    assert response.status == 400
    assert response.json() == {
        "error": "Too many events in batch: 3 given, at most 2 allowed",
        "code": 400,
    }


# HTTP API requests per second


async def test_api_requests_over_rate_get_429(limits_server: RunningServer) -> None:
    """Of 20 requests sent back to back against 5 per second, at most 10 pass
    and the others get 429 with a JSON body and Retry-After."""
    api = api_client(limits_server, API_RATE_APP)

    responses, seconds = await send_burst(lambda: api.get(api.app_path("/channels")))

    passed = statuses(responses).count(200)
    rejected = [r for r in responses if r.status == 429]
    assert passed + len(rejected) == BURST, statuses(responses)
    assert 1 <= passed <= most_accepted(seconds), (statuses(responses), seconds)
    assert rejected[0].json() == {
        "error": "Too many HTTP API requests: the app allows 5 per second; "
        "retry after 1 s",
        "code": 429,
    }
    assert rejected[0].headers["retry-after"] == "1"


async def test_sdk_sees_api_rate_as_429(limits_server: RunningServer) -> None:
    """The official SDK raises PusherBadStatus naming 429 once over the rate."""
    sdk = sdk_client(api_client(limits_server, SDK_API_RATE_APP))
    errors: list[Exception] = []

    for _ in range(BURST):
        try:
            await asyncio.to_thread(sdk.trigger, "sdk-rate", "e", "data")
        except pusher.errors.PusherError as exc:
            errors.append(exc)

    assert errors, "no trigger was rejected"
    assert all(isinstance(exc, pusher.errors.PusherBadStatus) for exc in errors)
    assert str(errors[0]).startswith("429: ")


# Backend events per second


async def test_backend_events_over_rate_get_429(
    limits_server: RunningServer, clients: ClientOpener
) -> None:
    """Events over max_backend_events_per_second get 429 and are not
    delivered; every accepted one is."""
    api = api_client(limits_server, EVENT_RATE_APP)
    subscriber = await clients.established(ws_url(limits_server, EVENT_RATE_APP))
    reply = await subscriber.subscribe("rated")
    assert reply.event == "pusher_internal:subscription_succeeded", reply.text

    responses, seconds = await send_burst(
        lambda: api.post_json(
            api.app_path("/events"), {"name": "e", "channel": "rated", "data": "d"}
        )
    )
    await subscriber.send_text('{"event":"pusher:ping","data":{}}')
    delivered = 0
    while (await subscriber.recv_frame()).event == "e":
        delivered += 1

    passed = statuses(responses).count(200)
    rejected = [r for r in responses if r.status == 429]
    assert passed + len(rejected) == BURST, statuses(responses)
    assert 1 <= passed <= most_accepted(seconds), (statuses(responses), seconds)
    assert delivered == passed
    assert rejected[0].json()["error"] == (
        "Too many events: the app allows 5 per second (one per channel); "
        "retry after 1 s"
    )


def test_trigger_counts_each_channel(limits_server: RunningServer) -> None:
    """One trigger to 6 channels counts 6 events, over a limit of 5 per
    second, so it gets 429 whatever was sent before."""
    api = api_client(limits_server, EVENT_RATE_APP)
    channels = [f"wide-{i}" for i in range(6)]

    response = api.post_json(
        api.app_path("/events"), {"name": "e", "channels": channels, "data": "d"}
    )

    assert response.status == 429
    assert response.json() == {
        "error": "Too many events: the request publishes 6 (one per channel), "
        "over the app's limit of 5 per second; split it",
        "code": 429,
    }


# Client events per second


async def test_client_events_over_rate_get_4301(
    limits_server: RunningServer, clients: ClientOpener
) -> None:
    """Client events over client_event_rate = 5 get pusher:error 4301, are
    dropped, and the socket stays open."""
    channel = "private-chatter"
    sender = await clients.established(ws_url(limits_server, CLIENT_RATE_APP))
    receiver = await clients.established(ws_url(limits_server, CLIENT_RATE_APP))
    for client in (sender, receiver):
        assert client.socket_id is not None
        auth = channel_auth(
            CLIENT_RATE_APP.key, CLIENT_RATE_APP.secret, client.socket_id, channel
        )
        reply = await client.subscribe(channel, auth=auth)
        assert reply.event == "pusher_internal:subscription_succeeded", reply.text

    started = time.monotonic()
    for i in range(BURST):
        await sender.send_json({"event": "client-say", "channel": channel, "data": i})
    await sender.send_text('{"event":"pusher:ping","data":{}}')
    errors = []
    while (frame := await sender.recv_frame()).event != "pusher:pong":
        errors.append(frame)
    seconds = time.monotonic() - started
    await receiver.send_text('{"event":"pusher:ping","data":{}}')
    received = 0
    while (await receiver.recv_frame()).event == "client-say":
        received += 1

    assert errors, "no client event was rejected"
    assert {frame.text for frame in errors} == {
        error_frame(4301, "Client event rejected due to rate limit", channel)
    }
    assert received + len(errors) == BURST
    assert 1 <= received <= most_accepted(seconds), seconds


# Metrics


def test_rejections_counted_in_metrics(limits_server: RunningServer) -> None:
    """A rejection by a limit shows in clarion_limit_rejections_total under
    the limit's setting name."""
    api = api_client(limits_server, PAYLOAD_APP)
    response = api.post_json(
        api.app_path("/events"), {"name": "e", "channel": "c", "data": "x" * 101}
    )
    assert response.status == 413

    with urllib.request.urlopen(f"{limits_server.http_url}/metrics") as reply:
        text = reply.read().decode()
    samples = {
        sample.labels["limit"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "clarion_limit_rejections"
        for sample in family.samples
        if sample.name == "clarion_limit_rejections_total"
    }

    assert samples.get("max_event_bytes", 0) >= 1, text
