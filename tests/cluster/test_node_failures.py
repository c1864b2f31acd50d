"""Nodes that die, stall or are still starting. A dead node's connections
leave cluster wide within node_timeout plus a few seconds, and the other
nodes keep working."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from cluster_harness import (
    COUNTS_APP_ID,
    COUNTS_APP_KEY,
    HEARTBEAT_INTERVAL,
    REMOVAL_SLACK,
    Cluster,
    Peers,
    RedisServer,
    frame_data,
    kill_node,
    node_config,
    read_json,
    send_marker,
    trigger,
    unique,
    wait_until_http,
)

NODE_TIMEOUT = 3
"""Seconds of silence after which a node counts as dead, in these tests."""

REMOVAL_BOUND = NODE_TIMEOUT + REMOVAL_SLACK
"""Seconds within which a dead node's members must have left."""


def fast_failure_config(tmp_path: Path) -> str:
    return node_config(tmp_path / "data", node_timeout=NODE_TIMEOUT)


async def test_killed_node_members_leave(
    start_cluster: Callable[..., Cluster], peers: Peers, tmp_path: Path
) -> None:
    """Members only on a SIGKILLed node leave once, within the bound."""
    cluster = start_cluster(3, fast_failure_config(tmp_path))
    presence = unique("presence-room-")
    doomed_user = unique("doomed-")
    both_user = unique("on-two-nodes-")
    observers = [await peers.open(cluster.node(i), f"observer {i}") for i in range(2)]
    for index, observer in enumerate(observers):
        await observer.join_presence(presence, f"observer-{index}")
    doomed = await peers.open(cluster.node(2), "doomed user on node 2")
    await doomed.join_presence(presence, doomed_user)
    both_dead_half = await peers.open(cluster.node(2), "two-node user on node 2")
    both_live_half = await peers.open(cluster.node(0), "two-node user on node 0")
    await both_dead_half.join_presence(presence, both_user)
    await both_live_half.join_presence(presence, both_user)

    kill_node(cluster.node(2))
    killed_at = time.monotonic()
    for observer in observers:
        await observer.wait_for(
            f"member_removed of {doomed_user}",
            lambda f: (
                f.event == "pusher_internal:member_removed"
                and frame_data(f) == {"user_id": doomed_user}
            ),
            timeout=REMOVAL_BOUND + 2,
        )
    elapsed = time.monotonic() - killed_at
    # A second survivor looks for dead nodes within one more heartbeat; any
    # duplicate removal would be published by then.
    await asyncio.sleep(HEARTBEAT_INTERVAL + 0.5)
    await send_marker(cluster.api(0), presence, observers + [both_live_half])

    assert elapsed <= REMOVAL_BOUND, f"members left after {elapsed:.1f} s"
    for observer in observers:
        removed = [
            frame_data(f)
            for f in observer.events(presence, "pusher_internal:member_removed")
        ]
        assert removed == [{"user_id": doomed_user}], observer.describe()
    for index in range(2):
        api = cluster.api(index)
        users = await read_json(api, f"/channels/{presence}/users")
        channel_info = await read_json(
            api, f"/channels/{presence}", {"info": "user_count,subscription_count"}
        )
        assert sorted(u["id"] for u in users["users"]) == sorted(
            ["observer-0", "observer-1", both_user]
        ), f"node {index}"
        assert channel_info == {
            "occupied": True,
            "user_count": 3,
            "subscription_count": 3,
        }, f"node {index}"


async def test_killed_node_channels_vacated(
    start_cluster: Callable[..., Cluster], peers: Peers, tmp_path: Path
) -> None:
    """Channels held only by a killed node vacate; shared ones lose its share."""
    cluster = start_cluster(2, fast_failure_config(tmp_path))
    solo = unique("solo-")
    shared = unique("shared-")
    survivor = await peers.open(cluster.node(0), "survivor on node 0")
    await survivor.subscribe(shared)
    victim = await peers.open(cluster.node(1), "victim on node 1")
    await victim.subscribe(shared)
    await victim.subscribe(solo)

    kill_node(cluster.node(1))
    api = cluster.api(0)

    async def solo_state() -> object:
        return await read_json(api, f"/channels/{solo}", {"info": "subscription_count"})

    solo_after = await wait_until_http(
        "the solo channel is vacated",
        solo_state,
        {"occupied": False, "subscription_count": 0},
        timeout=REMOVAL_BOUND,
    )
    shared_after = await read_json(
        api, f"/channels/{shared}", {"info": "subscription_count"}
    )
    listed = await read_json(api, "/channels")
    await trigger(api, shared, "still-here", "yes")

    assert solo_after == {"occupied": False, "subscription_count": 0}
    assert shared_after == {"occupied": True, "subscription_count": 1}
    assert solo not in listed["channels"]
    assert (await survivor.wait_event(shared, "still-here")).data == "yes"


async def test_killed_node_user_goes_offline(
    start_cluster: Callable[..., Cluster], peers: Peers, tmp_path: Path
) -> None:
    """A user signed in only on a killed node goes offline for watchers."""
    cluster = start_cluster(2, fast_failure_config(tmp_path))
    watched = unique("watched-")
    watcher = await peers.open(cluster.node(0), "watcher on node 0")
    await watcher.sign_in(unique("watcher-"), watchlist=[watched])
    await watcher.wait_for(
        "the initial watchlist", lambda f: f.event == "pusher_internal:watchlist_events"
    )
    target = await peers.open(cluster.node(1), "watched user on node 1")
    await target.sign_in(watched)
    online = await watcher.wait_for(
        "online event", lambda f: f.event == "pusher_internal:watchlist_events"
    )

    kill_node(cluster.node(1))
    offline = await watcher.wait_for(
        "offline event",
        lambda f: f.event == "pusher_internal:watchlist_events",
        timeout=REMOVAL_BOUND,
    )

    assert frame_data(online) == {"events": [{"name": "online", "user_ids": [watched]}]}
    assert frame_data(offline) == {
        "events": [{"name": "offline", "user_ids": [watched]}]
    }


async def test_killed_node_updates_subscription_count(
    start_cluster: Callable[..., Cluster], peers: Peers, tmp_path: Path
) -> None:
    """Subscribers left on live nodes get the count without the dead node."""
    cluster = start_cluster(2, fast_failure_config(tmp_path))
    channel = unique("counted-")
    survivor = await peers.open(
        cluster.node(0), "survivor on node 0", key=COUNTS_APP_KEY
    )
    victim = await peers.open(cluster.node(1), "victim on node 1", key=COUNTS_APP_KEY)
    # One subscriber at a time: the survivor's count is read from Redis when
    # its subscription is done, so with both in flight it may already be 2.
    for expected, subscriber in ((1, survivor), (2, victim)):
        await subscriber.subscribe(channel)
        await survivor.wait_for(
            f"subscription_count {expected}",
            lambda f, expected=expected: (
                f.event == "pusher_internal:subscription_count"
                and frame_data(f) == {"subscription_count": expected}
            ),
        )

    kill_node(cluster.node(1))
    count = await survivor.wait_for(
        "subscription_count after the node died",
        lambda f: f.event == "pusher_internal:subscription_count",
        timeout=REMOVAL_BOUND,
    )
    channel_info = await read_json(
        cluster.api(0, app=COUNTS_APP_ID),
        f"/channels/{channel}",
        {"info": "subscription_count"},
    )

    assert frame_data(count) == {"subscription_count": 1}
    assert channel_info == {"occupied": True, "subscription_count": 1}


async def test_stalled_node_restores_its_share(
    start_cluster: Callable[..., Cluster], peers: Peers, tmp_path: Path
) -> None:
    """A node stalled past node_timeout counts its subscribers again on resume.

    Other nodes remove a node that stops beating (a long pause, an overloaded
    host), but its sockets stay open. When it beats again, its subscriptions
    must be back in the shared counts.
    """
    cluster = start_cluster(2, fast_failure_config(tmp_path))
    channel = unique("stall-")
    staller = cluster.node(1)
    local_peer = await peers.open(cluster.node(0), "peer on node 0")
    stalled_peer = await peers.open(staller, "peer on node 1")
    await local_peer.subscribe(channel)
    await stalled_peer.subscribe(channel)
    api = cluster.api(0)

    async def count() -> object:
        return await read_json(
            api, f"/channels/{channel}", {"info": "subscription_count"}
        )

    os.kill(staller.process.pid, signal.SIGSTOP)
    try:
        while_stalled = await wait_until_http(
            "the stalled node is removed",
            count,
            {"occupied": True, "subscription_count": 1},
            timeout=REMOVAL_BOUND,
        )
    finally:
        os.kill(staller.process.pid, signal.SIGCONT)
    after_resume = await wait_until_http(
        "the resumed node counts again",
        count,
        {"occupied": True, "subscription_count": 2},
        timeout=REMOVAL_BOUND,
    )
    await trigger(api, channel, "after-stall", "x")
    await send_marker(api, channel, [local_peer, stalled_peer])

    assert while_stalled == {"occupied": True, "subscription_count": 1}
    assert after_resume == {"occupied": True, "subscription_count": 2}, cluster.logs()
    assert stalled_peer.count(channel, "after-stall") == 1, stalled_peer.describe()


async def test_starting_node_serves_full_roster(
    start_cluster: Callable[..., Cluster],
    redis_server: RedisServer,
    peers: Peers,
    tmp_path: Path,
) -> None:
    """A node that has not finished its first heartbeat still joins members to
    the cluster's roster, not to a roster of its own.

    Redis is paused for half a second while the new node starts, which delays
    its first heartbeat without any error, so the node has no reason to think
    that Redis is down. The same window exists, only shorter, on every start.
    """
    config = node_config(tmp_path / "data")
    cluster = start_cluster(1, config)
    channel = unique("presence-startup-")
    observer = await peers.open(cluster.node(0), "observer on the first node")
    await observer.join_presence(channel, "observer")

    redis_server.pause()
    try:
        late_node = start_cluster(1, config, wait_joined=False).node(0)
        joiner = await peers.open(late_node, "member on the starting node")
        asyncio.get_running_loop().call_later(0.5, redis_server.resume)
        reply = await joiner.join_presence(channel, "joiner")
    finally:
        redis_server.resume()

    roster = frame_data(reply)["presence"]
    assert sorted(roster["ids"]) == ["joiner", "observer"], reply.text
