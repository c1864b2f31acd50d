"""/metrics over real sockets: scraped, parsed with prometheus_client's parser,
and checked as connections, messages, API requests and webhooks flow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from clarion_e2e import (
    ApiClient,
    WireClient,
    channel_auth,
    compact,
    open_socket,
    poll_until,
)
from ops_helpers import (
    WAIT_TIMEOUT,
    Samples,
    WebhookReceiver,
    http_request,
    scrape,
    value,
)

from server_process import ServerProcess, free_port

KEY = "app-key"
SECRET = "app-secret"


async def send_and_receive(client: WireClient, message: dict[str, object]) -> str:
    """Send one message and return the text of the server's next frame."""
    await client.send_json(message)
    frame = await client.recv_frame()
    return frame.text


def utf8_size(texts: list[str]) -> int:
    return sum(len(text.encode()) for text in texts)


async def test_metrics_follow_websocket_traffic(server: ServerProcess) -> None:
    """Connections, subscriptions, messages and bytes show as traffic flows."""
    client = await open_socket(server.ws_url)
    established = await client.recv_frame()
    socket_id = json.loads(established.data)["socket_id"]
    received = [established.text]
    presence_data = compact({"user_id": "u1"})
    subscribes: list[dict[str, object]] = [
        {"event": "pusher:subscribe", "data": {"channel": "feed"}},
        {
            "event": "pusher:subscribe",
            "data": {
                "channel": "private-room",
                "auth": channel_auth(KEY, SECRET, socket_id, "private-room"),
            },
        },
        {
            "event": "pusher:subscribe",
            "data": {
                "channel": "presence-lobby",
                "auth": channel_auth(
                    KEY, SECRET, socket_id, "presence-lobby", presence_data
                ),
                "channel_data": presence_data,
            },
        },
    ]
    for message in subscribes:
        received.append(await send_and_receive(client, message))
    api = ApiClient(server.host, server.port, "1", KEY, SECRET)
    response = await api.trigger({"name": "news", "channel": "feed", "data": "hi"})
    received.append((await client.recv_frame()).text)

    samples = await asyncio.to_thread(scrape, server.port)
    assert response.status == 200
    assert value(samples, "clarion_connections", transport="websocket") == 1
    assert (
        value(samples, "clarion_connections_opened_total", transport="websocket") == 1
    )
    assert value(samples, "clarion_subscriptions", channel_type="public") == 1
    assert value(samples, "clarion_subscriptions", channel_type="private") == 1
    assert value(samples, "clarion_subscriptions", channel_type="presence") == 1
    assert value(samples, "clarion_received_messages_total") == 3
    assert value(samples, "clarion_received_bytes_total") == utf8_size(
        [compact(message) for message in subscribes]
    )
    assert value(samples, "clarion_sent_messages_total") == len(received)
    assert value(samples, "clarion_sent_bytes_total") == utf8_size(received)
    assert value(samples, "clarion_publish_to_write_seconds_count") == 1
    assert (
        value(
            samples,
            "clarion_http_api_requests_total",
            endpoint="/apps/{app_id}/events",
            status="200",
        )
        == 1
    )
    assert value(samples, "clarion_processes") == 1
    assert value(samples, "clarion_event_loop_lag_seconds") is not None
    assert [name for name, _ in samples if name.endswith("_created")] == []
    assert (value(samples, "clarion_resident_memory_bytes") or 0) > 0

    await client.close()
    closed = await poll_until(
        lambda: scrape(server.port),
        lambda s: value(s, "clarion_subscriptions", channel_type="presence") == 0,
        WAIT_TIMEOUT,
    )
    assert value(closed, "clarion_connections", transport="websocket") == 0
    assert value(closed, "clarion_connections_closed_total", transport="websocket") == 1
    assert value(closed, "clarion_subscriptions", channel_type="public") == 0
    assert value(closed, "clarion_subscriptions", channel_type="presence") == 0


async def test_metrics_count_api_requests_by_status(server: ServerProcess) -> None:
    """API requests are counted by route template and status, 404s as other."""
    api = ApiClient(server.host, server.port, "1", KEY, SECRET)
    wrong = ApiClient(server.host, server.port, "1", KEY, "wrong-secret")
    ok = await api.trigger({"name": "e", "channel": "c", "data": "d"})
    unsigned = await wrong.trigger({"name": "e", "channel": "c", "data": "d"})
    listed = await api.get_json("/channels")
    missing = await asyncio.to_thread(api.get, "/apps/1/nothing")

    samples = await asyncio.to_thread(scrape, server.port)
    events = "/apps/{app_id}/events"
    assert ok.status == 200
    assert unsigned.status == 401
    assert listed.status == 200
    assert missing.status == 404
    assert (
        value(samples, "clarion_http_api_requests_total", endpoint=events, status="200")
        == 1
    )
    assert (
        value(samples, "clarion_http_api_requests_total", endpoint=events, status="401")
        == 1
    )
    assert (
        value(
            samples,
            "clarion_http_api_requests_total",
            endpoint="/apps/{app_id}/channels",
            status="200",
        )
        == 1
    )
    assert (
        value(
            samples, "clarion_http_api_requests_total", endpoint="other", status="404"
        )
        == 1
    )


def webhook_config(data_dir: Path, receiver: WebhookReceiver) -> str:
    return f"""
[server]
data_dir = "{data_dir}"
webhook_retry_window = 2

[[apps]]
id = "1"
key = "{KEY}"
secret = "{SECRET}"

[[apps.webhooks]]
url = "{receiver.url("/ok")}"
event_types = ["channel_occupied"]

[[apps.webhooks]]
url = "{receiver.url("/fail")}"
event_types = ["channel_occupied"]
"""


async def test_metrics_count_webhook_outcomes(
    start_server: Callable[..., ServerProcess],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """A webhook to a 2xx receiver counts as sent. One to a failing receiver
    waits as pending, is retried, and fails at the end of the retry window."""
    server = start_server(webhook_config(tmp_path / "data", webhook_receiver))
    client = await open_socket(server.ws_url)
    await client.recv_frame()
    await send_and_receive(
        client, {"event": "pusher:subscribe", "data": {"channel": "hooked"}}
    )

    waiting = await poll_until(
        lambda: scrape(server.port),
        lambda s: (value(s, "clarion_webhooks_pending") or 0) >= 1,
        WAIT_TIMEOUT,
    )
    finished = await poll_until(
        lambda: scrape(server.port),
        lambda s: (
            value(s, "clarion_webhooks_failed_total") == 1
            and value(s, "clarion_webhooks_pending") == 0
        ),
        WAIT_TIMEOUT,
    )
    await client.close()
    assert (value(waiting, "clarion_webhooks_pending") or 0) >= 1
    assert value(finished, "clarion_webhooks_sent_total") == 1
    assert (value(finished, "clarion_webhooks_retried_total") or 0) >= 1
    assert value(finished, "clarion_webhooks_failed_total") == 1
    assert value(finished, "clarion_webhooks_pending") == 0
    assert webhook_receiver.requests.get("/ok") == 1


async def test_metrics_port_keeps_metrics_apart(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With metrics_port set, /metrics is served there and not on the main port."""
    metrics_port = free_port()
    server = start_server(env={"CLARION_METRICS_PORT": str(metrics_port)})

    samples = await poll_until(
        lambda: _try_scrape(metrics_port),
        lambda s: s is not None,
        WAIT_TIMEOUT,
    )
    main_metrics = await asyncio.to_thread(http_request, server.port, "/metrics")
    main_ready = await asyncio.to_thread(http_request, server.port, "/ready")
    side_ready = await asyncio.to_thread(http_request, metrics_port, "/ready")
    side_other = await asyncio.to_thread(http_request, metrics_port, "/apps/1/events")
    assert samples is not None
    assert value(samples, "clarion_processes") == 1
    assert main_metrics.status == 404
    assert main_ready.status == 200
    assert side_ready.status == 200
    assert side_other.status == 404


def _try_scrape(port: int) -> Samples | None:
    """Scrape ``port``, or return None while nothing listens there yet."""
    try:
        return scrape(port)
    except OSError:
        return None
