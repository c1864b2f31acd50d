"""Redis going away under a running cluster: nodes keep serving their own
clients, and once Redis is back no subscription is lost."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cluster_harness import (
    HEARTBEAT_INTERVAL,
    Cluster,
    Peer,
    Peers,
    RedisServer,
    frame_data,
    node_config,
    read_json,
    send_marker,
    trigger,
    unique,
    wait_until_http,
)

from server_process import ServerProcess

RECOVERY_TIMEOUT = 30.0
"""Seconds the nodes get to reconnect to a restarted Redis; the adapter's
back-off stays under 30 s between two attempts."""

STALL_RECOVERY = 10.0
"""Seconds the nodes get to restore their state after a Redis stall of a few
seconds. Their back-off after one or two failed attempts is far shorter."""

STOP_TIMEOUT = 5.0
"""Seconds a node gets to exit after SIGTERM, as the test harness allows."""


async def _keep_triggering(cluster: Cluster, channel: str) -> None:
    """Trigger ``tick`` events on both nodes every 50 ms until cancelled.

    Requests that fail while Redis is down are expected and ignored.
    """
    for number in itertools.count():
        api = cluster.api(number % 2)
        payload = {"name": "tick", "channel": channel, "data": str(number)}
        with contextlib.suppress(OSError):
            await api.trigger(payload)
        await asyncio.sleep(0.05)


async def _wait_cross_node_delivery(
    cluster: Cluster, channel: str, sender: int, receiver: Peer
) -> None:
    """Trigger probes on node ``sender`` until ``receiver`` gets one."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        probe = unique("probe-")
        await trigger(cluster.api(sender), channel, "probe", probe)
        try:
            await receiver.wait_for(
                f"probe {probe}",
                lambda f, probe=probe: f.event == "probe" and f.data == probe,
                timeout=0.5,
            )
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no event from node {sender} reached {receiver.name} within "
                    f"{RECOVERY_TIMEOUT} s of the Redis restart\n{cluster.logs()}"
                ) from None


async def test_redis_restart_keeps_subscriptions(
    start_cluster: Callable[..., Cluster], redis_server: RedisServer, peers: Peers
) -> None:
    """After Redis restarts empty mid-traffic, every subscription is back."""
    cluster = start_cluster(2)
    channel = unique("restart-")
    presence = unique("presence-restart-")
    traffic = unique("traffic-")
    before = [await peers.open(cluster.node(i), f"peer {i}") for i in range(2)]
    for index, peer in enumerate(before):
        await peer.subscribe(channel)
        await peer.subscribe(traffic)
        await peer.join_presence(presence, f"user-{index}")
    ticker = asyncio.create_task(_keep_triggering(cluster, traffic))

    try:
        await asyncio.sleep(0.3)
        redis_server.kill()
        # While Redis is down, a node still serves its own clients.
        during = await peers.open(cluster.node(1), "peer joining during the outage")
        await during.subscribe(channel)
        await trigger(cluster.api(1), channel, "local-only", "x")
        local_delivery = await during.wait_event(channel, "local-only")
        redis_server.start()
        for sender, receiver in ((0, before[1]), (1, before[0])):
            await _wait_cross_node_delivery(cluster, channel, sender, receiver)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker

    everyone = [*before, during]
    expected_count = {"occupied": True, "subscription_count": 3}
    expected_presence = {"occupied": True, "user_count": 2}
    for index in range(2):
        api = cluster.api(index)

        async def count(api=api) -> object:
            return await read_json(
                api, f"/channels/{channel}", {"info": "subscription_count"}
            )

        counted = await wait_until_http(
            "counts restored", count, expected_count, timeout=RECOVERY_TIMEOUT
        )
        channel_info = await read_json(
            api, f"/channels/{presence}", {"info": "user_count"}
        )
        assert counted == expected_count, f"node {index}\n{cluster.logs()}"
        assert channel_info == expected_presence, f"node {index}"
    for sender in range(2):
        event = f"after-restart-{sender}"
        await trigger(cluster.api(sender), channel, event, "x")
        await send_marker(cluster.api(sender), channel, everyone)
        for peer in everyone:
            assert peer.count(channel, event) == 1, peer.describe()
    assert local_delivery.data == "x"


async def test_redis_outage_is_logged(
    start_cluster: Callable[..., Cluster], redis_server: RedisServer, peers: Peers
) -> None:
    """A node logs a warning when it loses Redis and a line when it is back."""
    node = start_cluster(1).node(0)
    peer = await peers.open(node)
    await peer.subscribe(unique("logged-"))

    redis_server.kill()
    lost = await _wait_for_log_line(node, "WARNING", "Redis")
    outage_start = len(node.log_text())
    redis_server.start()
    back = await _wait_for_log_line(node, "INFO", "reachable", after=outage_start)

    assert lost is not None, node.log_text()
    assert back is not None, node.log_text()


async def _wait_for_log_line(
    node: ServerProcess, level: str, word: str, after: int = 0
) -> str | None:
    """Return the first ``level`` line of the node's log that contains ``word``
    and starts beyond its first ``after`` characters, or None if none appears
    within RECOVERY_TIMEOUT."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        lines = node.log_text()[after:].splitlines()
        for line in lines:
            if f" {level} " in line and word in line:
                return line
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.1)


async def test_unresponsive_redis_keeps_local_service(
    start_cluster: Callable[..., Cluster], redis_server: RedisServer, peers: Peers
) -> None:
    """With Redis stopped (SIGSTOP), a node still subscribes and later stops.

    A stopped Redis keeps its TCP connections open but sends no replies, as
    behind a network partition. The node must fall back to local service, and
    once Redis replies again, SIGTERM must still stop it.
    """
    cluster = start_cluster(1)
    node = cluster.node(0)
    channel = unique("stalled-redis-")
    redis_server.pause()
    try:
        peer = await peers.open(node, "peer during the stall")
        await peer.wire.send_json(
            {"event": "pusher:subscribe", "data": {"channel": channel}}
        )
        reply = await peer.wait_for(
            f"subscription result on {channel}",
            lambda f: f.message.get("channel") == channel,
            timeout=15,
        )
    finally:
        redis_server.resume()
    await peer.close()
    os.kill(node.process.pid, signal.SIGTERM)
    try:
        exit_code = await asyncio.to_thread(node.process.wait, STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        exit_code = None

    assert reply.event == "pusher_internal:subscription_succeeded"
    assert exit_code == 0, (
        f"node still running {STOP_TIMEOUT} s after SIGTERM\n{node.log_text()}"
    )


async def test_long_redis_stall_keeps_rosters(
    start_cluster: Callable[..., Cluster],
    redis_server: RedisServer,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """After Redis stalls longer than node_timeout, clients' rosters still list
    every member: a member announced as removed is announced as added again."""
    node_timeout = 2
    cluster = start_cluster(
        2, node_config(tmp_path / "data", node_timeout=node_timeout)
    )
    presence = unique("presence-stall-")
    member = unique("member-")
    observer = await peers.open(cluster.node(0), "observer on node 0")
    await observer.join_presence(presence, "observer")
    remote = await peers.open(cluster.node(1), "member on node 1")
    await remote.join_presence(presence, member)
    await observer.wait_for(
        "member_added", lambda f: f.event == "pusher_internal:member_added"
    )

    redis_server.pause()
    try:
        await asyncio.sleep(node_timeout + 4)
    finally:
        redis_server.resume()
    for sender, receiver in ((0, remote), (1, observer)):
        await _wait_cross_node_delivery(cluster, presence, sender, receiver)
    api = cluster.api(0)

    async def users() -> object:
        return await read_json(api, f"/channels/{presence}/users")

    expected_users = {
        "users": sorted([{"id": "observer"}, {"id": member}], key=lambda u: u["id"])
    }
    listed = await wait_until_http(
        "both members listed", _sorted_users(users), expected_users, STALL_RECOVERY
    )
    # A removal announced during recovery is followed by a new member_added
    # within a heartbeat or two; the marker then closes the count.
    await asyncio.sleep(2 * HEARTBEAT_INTERVAL)
    await send_marker(cluster.api(1), presence, [observer])
    added = len(
        [
            f
            for f in observer.events(presence, "pusher_internal:member_added")
            if frame_data(f)["user_id"] == member
        ]
    )
    removed = len(
        [
            f
            for f in observer.events(presence, "pusher_internal:member_removed")
            if frame_data(f)["user_id"] == member
        ]
    )

    assert listed == expected_users, cluster.logs()
    assert added - removed == 1, observer.describe()


def _sorted_users(read: Callable[[], Any]) -> Callable[[], Any]:
    async def sorted_read() -> Any:
        value = await read()
        return {"users": sorted(value["users"], key=lambda user: user["id"])}

    return sorted_read


async def test_outage_roster_changes_reach_others(
    start_cluster: Callable[..., Cluster], redis_server: RedisServer, peers: Peers
) -> None:
    """Members who leave or join on one node while Redis is down are announced
    to the other nodes' clients once Redis is back, and the roster agrees."""
    cluster = start_cluster(2)
    presence = unique("presence-outage-")
    observer = await peers.open(cluster.node(0), "observer on node 0")
    await observer.join_presence(presence, "observer")
    leaver = await peers.open(cluster.node(1), "leaver on node 1")
    await leaver.join_presence(presence, "leaver")
    await observer.wait_for("member_added of leaver", _member_event("added", "leaver"))

    redis_server.kill()
    await leaver.close()
    joiner = await peers.open(cluster.node(1), "joiner on node 1")
    await joiner.join_presence(presence, "joiner")
    redis_server.start()

    await observer.wait_for(
        "member_removed of leaver",
        _member_event("removed", "leaver"),
        timeout=RECOVERY_TIMEOUT,
    )
    await observer.wait_for(
        "member_added of joiner",
        _member_event("added", "joiner"),
        timeout=RECOVERY_TIMEOUT,
    )
    api = cluster.api(0)

    async def users() -> object:
        return await read_json(api, f"/channels/{presence}/users")

    expected_users = {"users": [{"id": "joiner"}, {"id": "observer"}]}
    listed = await wait_until_http(
        "roster after the outage", _sorted_users(users), expected_users, STALL_RECOVERY
    )
    assert listed == expected_users, cluster.logs()


def _member_event(kind: str, user_id: str) -> Callable[[Any], bool]:
    event = f"pusher_internal:member_{kind}"
    return lambda f: f.event == event and frame_data(f)["user_id"] == user_id
