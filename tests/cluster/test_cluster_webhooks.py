"""Webhooks of a cluster: each fires once for the whole cluster, even when the
subscribers that cause it are spread over two nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from cluster_harness import (
    HEARTBEAT_INTERVAL,
    REMOVAL_SLACK,
    Cluster,
    Peers,
    RedisServer,
    WebhookReceiver,
    kill_node,
    launch_node,
    node_config,
    read_json,
    unique,
    wait_for_condition,
    wait_until_http,
)

BATCH_MS = 50
DELAY_MS = 200
SETTLE_SECONDS = (BATCH_MS + DELAY_MS) / 1000 + 1.5
"""Seconds to wait after the expected webhooks arrived, so that a duplicate
from the other node would have arrived too."""

NODE_TIMEOUT = 2


def webhook_cluster_config(
    tmp_path: Path, receiver: WebhookReceiver, node_timeout: int = 10
) -> str:
    return node_config(
        tmp_path / "data",
        node_timeout=node_timeout,
        server={"webhook_batch_ms": BATCH_MS, "webhook_delay_ms": DELAY_MS},
        webhook_url=receiver.url,
    )


def about(channel: str) -> Callable[[dict[str, object]], bool]:
    return lambda event: event.get("channel") == channel


async def test_webhooks_fire_once_per_cluster(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """Occupied, member, client-event and vacated webhooks arrive once each."""
    cluster = start_cluster(2, webhook_cluster_config(tmp_path, webhook_receiver))
    channel = unique("presence-hooked-")
    user = unique("alice-")
    first = await peers.open(cluster.node(0), "alice on node 0")
    second = await peers.open(cluster.node(1), "alice on node 1")
    other = await peers.open(cluster.node(1), "bob on node 1")
    await first.join_presence(channel, user)
    await second.join_presence(channel, user)
    await other.join_presence(channel, "bob")
    await first.trigger_client_event(channel, "client-wave", {"hand": "left"})
    await first.barrier()
    await webhook_receiver.wait_for(
        "client_event", lambda e: e["name"] == "client_event"
    )
    for peer in (first, second, other):
        await peer.close()
    await webhook_receiver.wait_for(
        "channel_vacated", lambda e: e["name"] == "channel_vacated"
    )
    await asyncio.sleep(SETTLE_SECONDS)

    events = webhook_receiver.matching(about(channel))
    names = sorted(event["name"] for event in events)
    added = [e["user_id"] for e in events if e["name"] == "member_added"]
    removed = [e["user_id"] for e in events if e["name"] == "member_removed"]
    assert names.count("channel_occupied") == 1, events
    assert names.count("channel_vacated") == 1, events
    assert names.count("client_event") == 1, events
    assert sorted(added) == sorted([user, "bob"]), events
    assert sorted(removed) == sorted([user, "bob"]), events


async def test_user_webhooks_fire_once(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A user signed in on two nodes goes online once and offline once."""
    cluster = start_cluster(2, webhook_cluster_config(tmp_path, webhook_receiver))
    user = unique("signed-in-")
    connections = [
        await peers.open(cluster.node(i), f"{user} on node {i}") for i in range(2)
    ]
    for peer in connections:
        await peer.sign_in(user)
    for peer in connections:
        await peer.close()
    await webhook_receiver.wait_for(
        "user_offline", lambda e: e["name"] == "user_offline" and e["user_id"] == user
    )
    await asyncio.sleep(SETTLE_SECONDS)

    events = webhook_receiver.matching(lambda e: e.get("user_id") == user)
    names = [event["name"] for event in events]
    assert names == ["user_online", "user_offline"], events


async def test_cache_miss_webhook_once(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """Subscribers on two nodes to an empty cache channel cause one cache_miss."""
    cluster = start_cluster(2, webhook_cluster_config(tmp_path, webhook_receiver))
    channel = unique("cache-empty-")
    for index in range(2):
        peer = await peers.open(cluster.node(index), f"peer {index}")
        await peer.subscribe(channel)
        await peer.wait_for(
            "pusher:cache_miss", lambda f: f.event == "pusher:cache_miss"
        )
    await webhook_receiver.wait_for("cache_miss", lambda e: e["name"] == "cache_miss")
    await asyncio.sleep(SETTLE_SECONDS)

    misses = webhook_receiver.matching(
        lambda e: e["name"] == "cache_miss" and e.get("channel") == channel
    )
    assert len(misses) == 1, webhook_receiver.events()


async def test_killed_node_leave_webhooks(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A killed node's members and channels cause leave webhooks, once each."""
    config = webhook_cluster_config(tmp_path, webhook_receiver, NODE_TIMEOUT)
    cluster = start_cluster(3, config)
    presence = unique("presence-doomed-")
    solo = unique("solo-")
    survivor = await peers.open(cluster.node(0), "survivor on node 0")
    await survivor.join_presence(presence, "survivor")
    victim = await peers.open(cluster.node(2), "victim on node 2")
    await victim.join_presence(presence, "victim")
    await victim.subscribe(solo)
    await webhook_receiver.wait_for(
        "channel_occupied of the solo channel",
        lambda e: e["name"] == "channel_occupied" and e.get("channel") == solo,
    )

    kill_node(cluster.node(2))
    await webhook_receiver.wait_for(
        "member_removed of the victim",
        lambda e: e["name"] == "member_removed" and e.get("user_id") == "victim",
        timeout=NODE_TIMEOUT + REMOVAL_SLACK + DELAY_MS / 1000 + 2,
    )
    await webhook_receiver.wait_for(
        "channel_vacated of the solo channel",
        lambda e: e["name"] == "channel_vacated" and e.get("channel") == solo,
    )
    await asyncio.sleep(SETTLE_SECONDS + HEARTBEAT_INTERVAL)

    removed = webhook_receiver.matching(
        lambda e: e["name"] == "member_removed" and e.get("channel") == presence
    )
    vacated = webhook_receiver.matching(
        lambda e: (
            e["name"] == "channel_vacated" and e.get("channel") in (solo, presence)
        )
    )
    assert [e["user_id"] for e in removed] == ["victim"], webhook_receiver.events()
    assert [e["channel"] for e in vacated] == [solo], webhook_receiver.events()


async def test_outbox_survives_killed_node(
    redis_server: RedisServer,
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A webhook that a killed node could not deliver is sent by a later node.

    The two nodes have separate data directories, so only Redis can carry the
    delivery from one to the other.
    """
    webhook_receiver.failure_status = 503
    config = webhook_cluster_config(tmp_path / "first", webhook_receiver)
    first = launch_node(config, tmp_path, redis_server.url)
    try:
        channel = unique("outbox-")
        peer = await peers.open(first, "peer on the first node")
        await peer.subscribe(channel)
        await wait_for_condition(
            "a failed delivery attempt", lambda: webhook_receiver.failed_count() > 0
        )
        kill_node(first)
    finally:
        first.stop()
    webhook_receiver.failure_status = None
    config = webhook_cluster_config(tmp_path / "second", webhook_receiver)
    second = launch_node(config, tmp_path, redis_server.url)
    try:
        await webhook_receiver.wait_for(
            "channel_occupied from the outbox",
            lambda e: e["name"] == "channel_occupied" and e.get("channel") == channel,
        )
    finally:
        second.stop()

    occupied = webhook_receiver.matching(
        lambda e: e["name"] == "channel_occupied" and e.get("channel") == channel
    )
    assert len(occupied) == 1, webhook_receiver.events()


async def test_quick_reoccupy_sends_no_webhooks(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """Leaving on one node and rejoining on another within the delay is silent.

    On one node, a channel vacated and occupied again within webhook_delay_ms
    sends neither webhook (a page reload). A cluster should do the same when
    the reload lands on another node.
    """
    delay_ms = 2000
    config = node_config(
        tmp_path / "data",
        server={"webhook_batch_ms": BATCH_MS, "webhook_delay_ms": delay_ms},
        webhook_url=webhook_receiver.url,
    )
    cluster = start_cluster(2, config)
    channel = unique("reloaded-")
    before = await peers.open(cluster.node(0), "page before the reload")
    await before.subscribe(channel)
    await webhook_receiver.wait_for("channel_occupied", about(channel))

    await before.close()
    api = cluster.api(0)

    async def occupied() -> object:
        channel_info = await read_json(api, f"/channels/{channel}")
        return channel_info["occupied"]

    await wait_until_http("the channel is vacated", occupied, False)
    after = await peers.open(cluster.node(1), "page after the reload")
    await after.subscribe(channel)
    await asyncio.sleep(delay_ms / 1000 + SETTLE_SECONDS)

    names = [event["name"] for event in webhook_receiver.matching(about(channel))]
    assert names == ["channel_occupied"], webhook_receiver.events()


async def test_member_moving_nodes_sends_no_webhooks(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A member who leaves on one node and rejoins on another within the delay
    causes neither member_removed nor a second member_added."""
    delay_ms = 2000
    config = node_config(
        tmp_path / "data",
        server={"webhook_batch_ms": BATCH_MS, "webhook_delay_ms": delay_ms},
        webhook_url=webhook_receiver.url,
    )
    cluster = start_cluster(2, config)
    channel = unique("presence-moving-")
    user = unique("mover-")
    stayer = await peers.open(cluster.node(0), "member who stays on node 0")
    await stayer.join_presence(channel, "stayer")
    before = await peers.open(cluster.node(0), "mover on node 0")
    await before.join_presence(channel, user)
    await webhook_receiver.wait_for(
        "member_added of the mover",
        lambda e: e["name"] == "member_added" and e.get("user_id") == user,
    )

    await before.close()
    await stayer.wait_for(
        "member_removed of the mover",
        lambda f: f.event == "pusher_internal:member_removed",
    )
    after = await peers.open(cluster.node(1), "mover on node 1")
    await after.join_presence(channel, user)
    await asyncio.sleep(delay_ms / 1000 + SETTLE_SECONDS)

    events = webhook_receiver.matching(
        lambda e: e.get("channel") == channel and e.get("user_id") == user
    )
    names = [event["name"] for event in events]
    assert names == ["member_added"], webhook_receiver.events()


async def test_held_vacated_survives_killed_node(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A channel_vacated held by a node killed within the delay is sent once by
    another node, after the delay and node_timeout."""
    delay_ms = 1000
    config = node_config(
        tmp_path / "data",
        node_timeout=NODE_TIMEOUT,
        server={"webhook_batch_ms": BATCH_MS, "webhook_delay_ms": delay_ms},
        webhook_url=webhook_receiver.url,
    )
    cluster = start_cluster(2, config)
    channel = unique("orphaned-")
    peer = await peers.open(cluster.node(0), "peer on node 0")
    await peer.subscribe(channel)
    await webhook_receiver.wait_for("channel_occupied", about(channel))

    await peer.close()
    await wait_until_http(
        "the channel is vacated",
        lambda: _occupied(cluster, channel),
        False,
    )
    kill_node(cluster.node(0))
    await webhook_receiver.wait_for(
        "channel_vacated from node 1",
        lambda e: e["name"] == "channel_vacated" and e.get("channel") == channel,
        timeout=delay_ms / 1000 + NODE_TIMEOUT + REMOVAL_SLACK + 2,
    )
    await asyncio.sleep(SETTLE_SECONDS + HEARTBEAT_INTERVAL)

    names = [event["name"] for event in webhook_receiver.matching(about(channel))]
    assert names == ["channel_occupied", "channel_vacated"], webhook_receiver.events()


async def _occupied(cluster: Cluster, channel: str) -> object:
    channel_info = await read_json(cluster.api(1), f"/channels/{channel}")
    return channel_info["occupied"]


async def test_stopped_node_leaves_holds(
    start_cluster: Callable[..., Cluster],
    webhook_receiver: WebhookReceiver,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A client that moves to another node when its node stops (a rolling
    restart) within the delay causes no vacated or second occupied webhook."""
    delay_ms = 2000
    config = node_config(
        tmp_path / "data",
        server={"webhook_batch_ms": BATCH_MS, "webhook_delay_ms": delay_ms},
        webhook_url=webhook_receiver.url,
    )
    cluster = start_cluster(2, config)
    channel = unique("restarted-")
    before = await peers.open(cluster.node(0), "client of the stopping node")
    await before.subscribe(channel)
    await webhook_receiver.wait_for("channel_occupied", about(channel))

    cluster.node(0).stop()
    after = await peers.open(cluster.node(1), "client after the restart")
    await after.subscribe(channel)
    await asyncio.sleep(delay_ms / 1000 + SETTLE_SECONDS)

    names = [event["name"] for event in webhook_receiver.matching(about(channel))]
    assert names == ["channel_occupied"], webhook_receiver.events()
