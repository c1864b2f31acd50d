"""Webhook events that wait in memory at SIGTERM (in the batch window, or in
the delay of vacated and removed events) reach the receiver. One node sends
them during the drain or, from the SQLite outbox, after the next start. In a
cluster, another node delivers them from the Redis outbox and sends the held
vacated events once they are overdue."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from clarion_e2e import WireClient, open_established, poll_until
from cluster_harness import (
    APP_KEY,
    RedisServer,
    WebhookReceiver,
    node_config,
    wait_joined_redis,
    with_redis_url,
)
from drain_helpers import WAIT_TIMEOUT, send_signal, wait_exit

from server_process import ServerProcess, launch

HOLD_MS = 60_000
"""webhook_batch_ms and webhook_delay_ms: far longer than the test, so every
event is still in memory when the server gets SIGTERM."""
EXPECTED = [
    ("channel_occupied", "drain-kept"),
    ("channel_occupied", "drain-left"),
    ("channel_vacated", "drain-kept"),
    ("channel_vacated", "drain-left"),
]
"""(event, channel) of every webhook: ``drain-left`` is vacated by an
unsubscribe before SIGTERM, ``drain-kept`` by the drain itself."""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """The servers a test starts, stopped by PID when it ends."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start_node(
    tmp_path: Path, receiver: WebhookReceiver, servers: list[ServerProcess]
) -> ServerProcess:
    config = node_config(
        tmp_path / "data",
        server={"webhook_batch_ms": HOLD_MS, "webhook_delay_ms": HOLD_MS},
        webhook_url=receiver.url,
    )
    server = launch(config, tmp_path, env={"CLARION_DRAIN_SECONDS": "1"})
    server.key = APP_KEY
    servers.append(server)
    return server


async def hold_events(server: ServerProcess) -> WireClient:
    """Occupy two channels and vacate one; return the client that keeps the
    other. Every webhook event of this is still waiting in memory."""
    client = await open_established(server.ws_url)
    for channel in ("drain-kept", "drain-left"):
        reply = await client.subscribe(channel)
        assert reply.event == "pusher_internal:subscription_succeeded", reply.text
    await client.unsubscribe("drain-left")
    pong = await client.ping_barrier()
    assert pong.event == "pusher:pong", pong.text
    return client


def received(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    return sorted((event["name"], event["channel"]) for event in receiver.events())


async def test_drain_delivers_waiting_webhooks(
    tmp_path: Path, webhook_receiver: WebhookReceiver, servers: list[ServerProcess]
) -> None:
    """Batched and delayed events are sent during the drain, each once."""
    server = start_node(tmp_path, webhook_receiver, servers)
    client = await hold_events(server)
    assert received(webhook_receiver) == []

    send_signal(server)
    code, _ = await client.wait_closed(WAIT_TIMEOUT)
    exit_code = wait_exit(server, WAIT_TIMEOUT)

    assert code == 4200
    assert exit_code == 0, server.log_text()[-4000:]
    assert received(webhook_receiver) == EXPECTED
    assert webhook_receiver.bad_signatures() == []
    assert "Wrote 4 waiting webhook event(s) to the outbox" in server.log_text()


async def test_drain_leaves_failed_webhooks_for_next_start(
    tmp_path: Path, webhook_receiver: WebhookReceiver, servers: list[ServerProcess]
) -> None:
    """When the receiver fails during the drain, the events stay in the outbox
    and the next start delivers them."""
    webhook_receiver.failure_status = 503
    server = start_node(tmp_path, webhook_receiver, servers)
    client = await hold_events(server)

    send_signal(server)
    await client.wait_closed(WAIT_TIMEOUT)
    exit_code = wait_exit(server, WAIT_TIMEOUT)
    assert exit_code == 0, server.log_text()[-4000:]
    assert webhook_receiver.failed_count() >= 1
    assert received(webhook_receiver) == []
    assert "left in the outbox" in server.log_text()

    webhook_receiver.failure_status = None
    start_node(tmp_path, webhook_receiver, servers)
    await webhook_receiver.wait_for(
        "the vacated event of drain-left",
        lambda event: event == {"name": "channel_vacated", "channel": "drain-left"},
        WAIT_TIMEOUT,
    )
    assert received(webhook_receiver) == EXPECTED


async def test_second_signal_ends_webhook_attempt(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """A second SIGTERM ends the last webhook attempt at once, even with a
    receiver that never responds, and the deliveries stay in the outbox."""
    with socket.socket() as silent:
        # The kernel completes connections to a listening socket that never
        # accepts them, so the webhook request waits for a response.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/webhooks"
        config = node_config(
            tmp_path / "data",
            server={
                "webhook_batch_ms": HOLD_MS,
                "webhook_delay_ms": HOLD_MS,
                "webhook_timeout": 600,
                "drain_webhook_seconds": 600,
            },
            webhook_url=url,
        )
        server = launch(config, tmp_path, env={"CLARION_DRAIN_SECONDS": "0"})
        server.key = APP_KEY
        servers.append(server)
        client = await hold_events(server)

        send_signal(server)
        await client.wait_closed(WAIT_TIMEOUT)
        await poll_until(
            server.log_text,
            lambda log: "Wrote 4 waiting webhook event(s)" in log,
            WAIT_TIMEOUT,
        )
        send_signal(server)
        exit_code = wait_exit(server, WAIT_TIMEOUT)

    assert exit_code == 0, server.log_text()[-4000:]
    assert "1 webhook delivery(ies) left in the outbox" in server.log_text()


CLUSTER_DELAY_MS = 5_000
"""webhook_delay_ms of the cluster test: long enough that node A stops before
the delay of its vacated events ends, short enough to wait for."""
CLUSTER_NODE_TIMEOUT = 2
"""node_timeout of the cluster test, in seconds: a held event that node A left
in Redis is sent by node B this long after its delay ends, plus a heartbeat."""


async def test_drain_leaves_failed_webhooks_to_other_node(
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    redis_server: RedisServer,
    servers: list[ServerProcess],
) -> None:
    """In a cluster, the batched events that node A could not deliver while it
    drained wait in the Redis outbox, and node B delivers them. Node A leaves
    its held vacated events in Redis, where a subscription could still cancel
    them. No subscription cancels them, so node B sends them once overdue."""
    webhook_receiver.failure_status = 503
    nodes = []
    for batch_ms in (HOLD_MS, 50):
        config = with_redis_url(
            node_config(
                tmp_path / "data",
                node_timeout=CLUSTER_NODE_TIMEOUT,
                server={
                    "webhook_batch_ms": batch_ms,
                    "webhook_delay_ms": CLUSTER_DELAY_MS,
                },
                webhook_url=webhook_receiver.url,
            ),
            redis_server.url,
        )
        node = launch(config, tmp_path, env={"CLARION_DRAIN_SECONDS": "1"})
        node.key = APP_KEY
        servers.append(node)
        wait_joined_redis(node)
        nodes.append(node)
    node_a, node_b = nodes
    client = await hold_events(node_a)

    send_signal(node_a)
    await client.wait_closed(WAIT_TIMEOUT)
    exit_code = wait_exit(node_a, WAIT_TIMEOUT)
    assert exit_code == 0, node_a.log_text()[-4000:]
    assert "left in the outbox RedisOutbox" in node_a.log_text()
    assert "or by the other nodes" in node_a.log_text()
    assert "held vacated or removed webhook event(s) in Redis" in node_a.log_text()
    assert received(webhook_receiver) == []

    webhook_receiver.failure_status = None
    takeover_seconds = CLUSTER_DELAY_MS / 1000 + CLUSTER_NODE_TIMEOUT + WAIT_TIMEOUT
    for channel in ("drain-left", "drain-kept"):
        await webhook_receiver.wait_for(
            f"the vacated event of {channel}",
            lambda event, channel=channel: (
                event == {"name": "channel_vacated", "channel": channel}
            ),
            takeover_seconds,
        )
    assert received(webhook_receiver) == EXPECTED
    assert "Sending an overdue held webhook" in node_b.log_text()
    assert node_b.is_running()
