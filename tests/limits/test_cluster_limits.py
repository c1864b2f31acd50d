"""Per-app limits counted over two nodes that share a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from clarion_e2e import ApiClient, ApiResponse, WireClient, open_socket, poll_until
from clarion_launch import ClientOpener
from cluster_harness import WAIT_TIMEOUT, RedisServer, launch_node
from limits_harness import (
    CLUSTER_API_RATE_APP,
    CLUSTER_APPS,
    CLUSTER_EVENT_RATE_APP,
    CLUSTER_PRESENCE_APP,
    CLUSTER_QUOTA_APP,
    TwoNodes,
    api_client,
    config_text,
    join_presence,
    ws_url,
)

from server_process import ServerProcess

MAX_PROBES = 50
"""Connection attempts while waiting for a node to learn the other node's
connection count; the nodes exchange counts every 0.5 s, so a handful do."""
PROBE_PAUSE = 0.1
MAX_REQUESTS = 20
"""Requests that one node gets to use up a rate of 1 per second. With a limit
of 1, an accepted request keeps the sliding-window estimate above 0 until two
window boundaries have passed, so a request to another node within the next
second is rejected wherever the boundaries fall."""


async def probe(node: ServerProcess) -> tuple[WireClient, str | None, int | None]:
    """Open a connection to the quota app; return it with the event of its first
    frame and, for a rejection, the close code."""
    client = await open_socket(ws_url(node, CLUSTER_QUOTA_APP))
    frame = await client.recv_frame()
    if frame.event == "pusher:connection_established":
        return client, frame.event, None
    code, _reason = await client.wait_closed()
    return client, frame.event, code


async def wait_for_rejection(node: ServerProcess) -> int | None:
    """Probe ``node`` until a connection is rejected, closing each admitted one,
    and return the rejection's close code (None if every probe was admitted)."""
    for _ in range(MAX_PROBES):
        client, _event, code = await probe(node)
        await client.close()
        if code is not None:
            return code
        await asyncio.sleep(PROBE_PAUSE)
    return None


async def wait_for_admission(node: ServerProcess, clients: ClientOpener) -> bool:
    """Probe ``node`` until a connection is admitted, keeping it open."""
    for _ in range(MAX_PROBES):
        client, _event, code = await probe(node)
        if code is None:
            clients.opened.append(client)
            return True
        await asyncio.sleep(PROBE_PAUSE)
    return False


async def use_up(request: Callable[[], ApiResponse]) -> list[int]:
    """Send ``request`` until it gets 429; return every status."""
    statuses = []
    for _ in range(MAX_REQUESTS):
        statuses.append((await asyncio.to_thread(request)).status)
        if statuses[-1] == 429:
            break
    return statuses


def list_channels(api: ApiClient) -> Callable[[], ApiResponse]:
    return lambda: api.get(api.app_path("/channels"))


def trigger(api: ApiClient) -> Callable[[], ApiResponse]:
    return lambda: api.post_json(
        api.app_path("/events"), {"name": "e", "channel": "rated", "data": "d"}
    )


async def test_connection_quota_spans_nodes(
    two_nodes: TwoNodes, clients: ClientOpener
) -> None:
    """With max_connections = 3, two connections on node A and one on node B
    fill the quota: both nodes then reject with 4004, and a close on A frees a
    place on B."""
    node_a, node_b = two_nodes.nodes
    on_a = [await clients.established(ws_url(node_a, CLUSTER_QUOTA_APP))]
    on_a.append(await clients.established(ws_url(node_a, CLUSTER_QUOTA_APP)))
    await clients.established(ws_url(node_b, CLUSTER_QUOTA_APP))

    code_on_b = await wait_for_rejection(node_b)
    code_on_a = await wait_for_rejection(node_a)
    await on_a[0].close()
    admitted_on_b = await wait_for_admission(node_b, clients)

    assert code_on_b == 4004, two_nodes.logs()
    assert code_on_a == 4004, two_nodes.logs()
    assert admitted_on_b, two_nodes.logs()


async def test_api_rate_spans_nodes(two_nodes: TwoNodes) -> None:
    """Once node A has used up its 1 request per second, node B's first
    request right after gets 429 too."""
    node_a, node_b = two_nodes.nodes

    on_a = await use_up(list_channels(api_client(node_a, CLUSTER_API_RATE_APP)))
    on_b = list_channels(api_client(node_b, CLUSTER_API_RATE_APP))()

    assert on_a[-1] == 429, on_a
    assert on_b.status == 429, on_b.body
    assert on_b.json()["code"] == 429


async def test_backend_event_rate_spans_nodes(two_nodes: TwoNodes) -> None:
    """Once node A has published its 1 event per second, node B's trigger
    right after gets 429."""
    node_a, node_b = two_nodes.nodes

    on_a = await use_up(trigger(api_client(node_a, CLUSTER_EVENT_RATE_APP)))
    on_b = trigger(api_client(node_b, CLUSTER_EVENT_RATE_APP))()

    assert on_a[-1] == 429, on_a
    assert on_b.status == 429, on_b.body


async def test_presence_limit_spans_nodes(
    two_nodes: TwoNodes, clients: ClientOpener
) -> None:
    """With max_presence_members = 2, one member on each node fills a presence
    channel: a third user gets LimitReached 4100 on either node, and a
    member's second connection still joins."""
    node_a, node_b = two_nodes.nodes
    channel = "presence-spread"
    url_a = ws_url(node_a, CLUSTER_PRESENCE_APP)
    url_b = ws_url(node_b, CLUSTER_PRESENCE_APP)
    first = await clients.established(url_a)
    second = await clients.established(url_b)
    third_on_a = await clients.established(url_a)
    third_on_b = await clients.established(url_b)
    first_again_on_b = await clients.established(url_b)

    app = CLUSTER_PRESENCE_APP
    joined = [
        await join_presence(first, app, channel, "first", {}),
        await join_presence(second, app, channel, "second", {}),
    ]
    refused = [
        await join_presence(third_on_a, app, channel, "third", {}),
        await join_presence(third_on_b, app, channel, "third", {}),
    ]
    again = await join_presence(first_again_on_b, app, channel, "first", {})

    assert [frame.event for frame in joined] == [
        "pusher_internal:subscription_succeeded"
    ] * 2
    for frame in refused:
        assert frame.event == "pusher:subscription_error", frame.text
        assert frame.data["type"] == "LimitReached"
        assert frame.data["status"] == 4100
    assert again.event == "pusher_internal:subscription_succeeded", again.text


async def test_rates_fall_back_to_node_during_outage(tmp_path: Path) -> None:
    """While Redis is down, a node still limits the API rate, counting its own
    requests, and logs that it does."""
    redis = RedisServer(tmp_path)
    redis.start()
    node = launch_node(config_text(CLUSTER_APPS), tmp_path, redis.url)
    try:
        redis.kill()
        statuses = await use_up(list_channels(api_client(node, CLUSTER_API_RATE_APP)))
        log = node.log_text()
    finally:
        node.stop()
        redis.stop()

    assert statuses[-1] == 429, statuses
    assert set(statuses) == {200, 429}, statuses
    assert "Redis unreachable for limit counts" in log


STALL_REQUEST_TIMEOUT = 4.0
"""Seconds one HTTP request may take while Redis is stalled. The limit counter
gives up on Redis well within this; redis-py's default socket timeout (5 s in
redis-py 8.2) does not."""


async def test_rates_fall_back_to_node_during_stall(
    tmp_path: Path, clients: ClientOpener
) -> None:
    """While Redis is stalled (SIGSTOP: connections open, no replies), requests
    of a rate-limited app are counted in the node and answered, connections
    of an app with a quota are admitted, and the counter finds Redis again
    once Redis replies."""
    redis = RedisServer(tmp_path)
    redis.start()
    node = launch_node(config_text(CLUSTER_APPS), tmp_path, redis.url)
    rated = api_client(node, CLUSTER_API_RATE_APP)
    rated.timeout = STALL_REQUEST_TIMEOUT
    # An invalid event gets 400 after the rate check, without any other
    # Redis command, so only the limit counter can make it wait.
    invalid_event = lambda: rated.post_json(rated.app_path("/events"), {})  # noqa: E731
    await clients.established(ws_url(node, CLUSTER_QUOTA_APP))
    try:
        redis.pause()
        statuses = [(await asyncio.to_thread(invalid_event)).status for _ in range(3)]
        admitted = await clients.established(ws_url(node, CLUSTER_QUOTA_APP))
    finally:
        redis.resume()
    try:
        recovered = await poll_until(
            node.log_text,
            lambda log: "Redis reachable again for limit counts" in log,
            WAIT_TIMEOUT,
        )
        after = await asyncio.to_thread(invalid_event)
    finally:
        node.stop()
        redis.stop()

    # Counted in the node, the rate of 1 per second rejects the later ones.
    assert statuses[0] == 400, statuses
    assert set(statuses) <= {400, 429}, statuses
    assert admitted.socket_id is not None
    assert "Redis reachable again for limit counts" in recovered, recovered
    assert recovered.count("Redis unreachable for limit counts") == 1, recovered
    assert after.status in {400, 429}, after.body
