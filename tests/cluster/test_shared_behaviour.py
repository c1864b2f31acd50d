"""One suite, two adapters: every test runs against a single node with the
in-process adapter (`local`) and against two nodes sharing Redis (`redis`),
with its peers split over the nodes. A cluster must behave like one process.

The nodes are shared by the tests of this module, so each test uses channel
and user names of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from clarion_e2e import Frame
from cluster_harness import (
    COUNTS_APP_ID,
    COUNTS_APP_KEY,
    LIMITS_APP_KEY,
    MAX_PRESENCE_MEMBERS,
    Cluster,
    Peers,
    RedisServer,
    frame_data,
    launch_node,
    node_config,
    read_json,
    send_marker,
    trigger,
    unique,
    wait_until_http,
)


@pytest.fixture(scope="module", params=["local", "redis"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """One node without Redis, or two nodes sharing a fresh redis-server."""
    directory = tmp_path_factory.mktemp(f"shared-{request.param}")
    config = node_config(directory / "data")
    redis = None
    nodes = []
    try:
        if request.param == "local":
            nodes.append(launch_node(config, directory, None))
        else:
            redis = RedisServer(directory)
            redis.start()
            for _ in range(2):
                nodes.append(launch_node(config, directory, redis.url))
        yield Cluster(nodes, redis)
    finally:
        for node in nodes:
            node.stop()
        if redis is not None:
            redis.stop()


async def test_event_fanout_excludes_socket_id(cluster: Cluster, peers: Peers) -> None:
    """An HTTP event reaches each subscriber once, except the excluded socket."""
    channel = unique("fanout-")
    subscribers = [await peers.open(cluster.node(i), f"peer {i}") for i in range(4)]
    for peer in subscribers:
        await peer.subscribe(channel)
    excluded = subscribers[1]

    await trigger(cluster.api(0), channel, "greeting", "hello", excluded.socket_id)
    await send_marker(cluster.api(0), channel, subscribers)

    for peer in subscribers:
        expected = 0 if peer is excluded else 1
        assert peer.count(channel, "greeting") == expected, peer.describe()


async def test_event_from_each_node_once(cluster: Cluster, peers: Peers) -> None:
    """Events triggered on either node reach subscribers on both, once each."""
    channel = unique("both-ways-")
    subscribers = [await peers.open(cluster.node(i), f"peer {i}") for i in range(2)]
    for peer in subscribers:
        await peer.subscribe(channel)

    for index in range(2):
        await trigger(cluster.api(index), channel, f"from-node-{index}", "x")
        await send_marker(cluster.api(index), channel, subscribers)

    for peer in subscribers:
        for index in range(2):
            assert peer.count(channel, f"from-node-{index}") == 1, peer.describe()


async def test_presence_member_events_once(cluster: Cluster, peers: Peers) -> None:
    """One user on two nodes is added once and removed after its last leaves."""
    channel = unique("presence-roster-")
    user = unique("alice-")
    observers = [await peers.open(cluster.node(i), f"observer {i}") for i in range(2)]
    for index, observer in enumerate(observers):
        await observer.join_presence(channel, f"observer-{index}")
    first = await peers.open(cluster.node(0), "alice on node 0")
    second = await peers.open(cluster.node(1), "alice on node 1")

    await first.join_presence(channel, user, {"name": "Alice"})
    reply = await second.join_presence(channel, user, {"name": "Alice"})
    await second.barrier()
    await send_marker(cluster.api(1), channel, observers)

    roster = json.loads(reply.data)["presence"]
    assert sorted(roster["ids"]) == sorted(["observer-0", "observer-1", user])
    assert roster["count"] == 3
    assert roster["hash"][user] == {"name": "Alice"}
    for observer in observers:
        added = [
            frame_data(f)
            for f in observer.events(channel, "pusher_internal:member_added")
            if frame_data(f)["user_id"] == user
        ]
        assert added == [{"user_id": user, "user_info": {"name": "Alice"}}], (
            observer.describe()
        )

    await first.close()
    remaining = await wait_until_http(
        "the first connection has left",
        lambda: _subscription_count(cluster, 0, channel),
        3,
    )
    assert remaining == 3
    await send_marker(cluster.api(0), channel, observers)
    for observer in observers:
        assert observer.count(channel, "pusher_internal:member_removed") == 0, (
            observer.describe()
        )

    await second.close()
    remaining = await wait_until_http(
        "the second connection has left",
        lambda: _subscription_count(cluster, 1, channel),
        2,
    )
    assert remaining == 2
    await send_marker(cluster.api(0), channel, observers)
    for observer in observers:
        removed = [
            frame_data(f)
            for f in observer.events(channel, "pusher_internal:member_removed")
        ]
        assert removed == [{"user_id": user}], observer.describe()


async def test_presence_limit_counts_every_node(cluster: Cluster, peers: Peers) -> None:
    """The presence member limit counts the members on every node."""
    channel = unique("presence-full-")
    members = [
        await peers.open(cluster.node(i), f"member {i}", key=LIMITS_APP_KEY)
        for i in range(MAX_PRESENCE_MEMBERS)
    ]
    for index, peer in enumerate(members):
        await peer.join_presence(channel, f"member-{index}")
    again = await peers.open(cluster.node(1), "member 0 again", key=LIMITS_APP_KEY)
    late = await peers.open(cluster.node(0), "one too many", key=LIMITS_APP_KEY)

    await again.join_presence(channel, "member-0")
    rejection = await late.join_presence(channel, "latecomer", expect_error=True)

    assert frame_data(rejection)["status"] == 4100, rejection.text


async def _subscription_count(cluster: Cluster, index: int, channel: str) -> int:
    info = await read_json(
        cluster.api(index), f"/channels/{channel}", {"info": "subscription_count"}
    )
    return int(info.get("subscription_count", 0))


async def test_http_reads_agree_on_nodes(cluster: Cluster, peers: Peers) -> None:
    """Channel lists, counts and presence users read the same on every node."""
    tag = unique("agree")
    public = [f"{tag}-a", f"{tag}-b"]
    presence = f"presence-{tag}"
    private = f"private-{tag}"
    on_node_0 = await peers.open(cluster.node(0), "peer on node 0")
    on_node_1 = await peers.open(cluster.node(1), "peer on node 1")
    also_on_node_1 = await peers.open(cluster.node(1), "second peer on node 1")
    for peer in (on_node_0, on_node_1):
        await peer.subscribe(public[0])
    await on_node_1.subscribe(public[1])
    await on_node_0.join_presence(presence, "u1")
    await on_node_1.join_presence(presence, "u2")
    await also_on_node_1.join_presence(presence, "u1")
    await also_on_node_1.subscribe_private(private)

    expected_list = {
        "channels": {
            public[0]: {"subscription_count": 2},
            public[1]: {"subscription_count": 1},
        }
    }
    expected_presence_list = {"channels": {presence: {"user_count": 2}}}
    expected_presence = {"occupied": True, "user_count": 2, "subscription_count": 3}
    expected_private = {"occupied": True, "subscription_count": 1}
    for index in range(cluster.node_count):
        api = cluster.api(index)
        listed = await read_json(
            api, "/channels", {"filter_by_prefix": tag, "info": "subscription_count"}
        )
        presence_listed = await read_json(
            api, "/channels", {"filter_by_prefix": presence, "info": "user_count"}
        )
        channel_info = await read_json(
            api,
            f"/channels/{presence}",
            {"info": "user_count,subscription_count"},
        )
        private_info = await read_json(
            api, f"/channels/{private}", {"info": "subscription_count"}
        )
        users = await read_json(api, f"/channels/{presence}/users")
        node = f"node {index}"
        assert listed == expected_list, node
        assert presence_listed == expected_presence_list, node
        assert channel_info == expected_presence, node
        assert private_info == expected_private, node
        assert sorted(u["id"] for u in users["users"]) == ["u1", "u2"], node


async def test_http_reads_after_everyone_leaves(cluster: Cluster, peers: Peers) -> None:
    """Once every subscriber has left, no node lists the channels any more."""
    tag = unique("leave")
    presence = f"presence-{tag}"
    subscribers = [await peers.open(cluster.node(i), f"peer {i}") for i in range(2)]
    for index, peer in enumerate(subscribers):
        await peer.subscribe(f"{tag}-public")
        await peer.join_presence(presence, f"user-{index}")

    for peer in subscribers:
        await peer.close()

    for index in range(cluster.node_count):
        api = cluster.api(index)

        async def list_channels(api=api) -> object:
            return await read_json(api, "/channels", {"filter_by_prefix": tag})

        listed = await wait_until_http(
            "channels vacated", list_channels, {"channels": {}}
        )
        channel_info = await read_json(
            api, f"/channels/{presence}", {"info": "user_count"}
        )
        users = await read_json(api, f"/channels/{presence}/users")
        assert listed == {"channels": {}}, f"node {index}"
        assert channel_info == {"occupied": False, "user_count": 0}, f"node {index}"
        assert users == {"users": []}, f"node {index}"


async def test_client_event_reaches_other_nodes(cluster: Cluster, peers: Peers) -> None:
    """A client event reaches every other member once, with the sender's user id."""
    channel = unique("presence-chat-")
    sender = await peers.open(cluster.node(0), "sender on node 0")
    receivers = [
        await peers.open(cluster.node(0), "receiver on node 0"),
        await peers.open(cluster.node(1), "receiver on node 1"),
    ]
    await sender.join_presence(channel, "sender")
    for index, receiver in enumerate(receivers):
        await receiver.join_presence(channel, f"receiver-{index}")

    await sender.trigger_client_event(channel, "client-typing", {"text": "hi"})
    await sender.barrier()
    await send_marker(cluster.api(0), channel, [sender, *receivers])

    assert sender.count(channel, "client-typing") == 0, sender.describe()
    for receiver in receivers:
        events = receiver.events(channel, "client-typing")
        assert len(events) == 1, receiver.describe()
        assert events[0].message.get("user_id") == "sender", receiver.describe()
        assert frame_data(events[0]) == {"text": "hi"}, receiver.describe()


async def test_cache_channel_miss_then_hit(cluster: Cluster, peers: Peers) -> None:
    """A cache channel misses first, then serves the last event on any node."""
    channel = unique("cache-news-")
    first = await peers.open(cluster.node(0), "first subscriber on node 0")
    await first.subscribe(channel)
    await first.wait_for("pusher:cache_miss", lambda f: f.event == "pusher:cache_miss")

    await trigger(cluster.api(0), channel, "headline", "rain")
    late = await peers.open(cluster.node(1), "late subscriber on node 1")
    await late.subscribe(channel)
    cached = await late.wait_event(channel, "headline")
    channel_info = await read_json(
        cluster.api(1), f"/channels/{channel}", {"info": "cache"}
    )

    assert cached.data == "rain"
    assert late.count(channel, "pusher:cache_miss") == 0, late.describe()
    assert channel_info["cache"]["data"] == "rain"


async def test_terminate_connections_on_every_node(
    cluster: Cluster, peers: Peers
) -> None:
    """terminate_connections closes the user's sockets on every node with 4009."""
    user = unique("terminated-")
    targets = [
        await peers.open(cluster.node(i), f"{user} on node {i}") for i in range(2)
    ]
    bystander = await peers.open(cluster.node(1), "bystander on node 1")
    for peer in targets:
        await peer.sign_in(user)
    await bystander.sign_in(unique("bystander-"))

    api = cluster.api(0)
    path = api.app_path(f"/users/{user}/terminate_connections")
    response = await asyncio.to_thread(api.post_json, path, {})

    assert response.status == 200, response.body
    for peer in targets:
        assert await peer.wait_closed() == 4009, peer.name
    await bystander.barrier()


async def test_subscription_count_cluster_total(cluster: Cluster, peers: Peers) -> None:
    """subscription_count events carry the count of the whole cluster."""
    channel = unique("counted-")
    subscribers = [
        await peers.open(cluster.node(i), f"peer {i}", key=COUNTS_APP_KEY)
        for i in range(2)
    ]
    for peer in subscribers:
        await peer.subscribe(channel)

    def count_is_two(frame: Frame) -> bool:
        if frame.event != "pusher_internal:subscription_count":
            return False
        return frame_data(frame) == {"subscription_count": 2}

    for peer in subscribers:
        await peer.wait_for("subscription_count 2", count_is_two)
    for index in range(cluster.node_count):
        api = cluster.api(index, app=COUNTS_APP_ID)
        channel_info = await read_json(
            api, f"/channels/{channel}", {"info": "subscription_count"}
        )
        assert channel_info == {"occupied": True, "subscription_count": 2}, (
            f"node {index}"
        )


async def test_user_event_reaches_every_connection(
    cluster: Cluster, peers: Peers
) -> None:
    """An event sent to a user reaches its connection on each node once."""
    user = unique("recipient-")
    user_channel = f"#server-to-user-{user}"
    connections = [
        await peers.open(cluster.node(i), f"{user} on node {i}") for i in range(2)
    ]
    for peer in connections:
        await peer.sign_in(user)
        await peer.subscribe(user_channel)
    marker_channel = unique("user-marker-")
    for peer in connections:
        await peer.subscribe(marker_channel)

    await trigger(cluster.api(0), user_channel, "notice", "for you")
    await send_marker(cluster.api(0), marker_channel, connections)

    for peer in connections:
        assert peer.count(user_channel, "notice") == 1, peer.describe()


async def test_watchlist_follows_user_across_nodes(
    cluster: Cluster, peers: Peers
) -> None:
    """A watcher on one node sees a user on another go online and offline once."""
    watched = unique("watched-")
    watcher = await peers.open(cluster.node(0), "watcher on node 0")
    await watcher.sign_in(unique("watcher-"), watchlist=[watched])
    initial = await watcher.wait_for(
        "the initial watchlist", lambda f: f.event == "pusher_internal:watchlist_events"
    )
    assert frame_data(initial) == {
        "events": [{"name": "offline", "user_ids": [watched]}]
    }

    marker_channel = unique("watch-marker-")
    await watcher.subscribe(marker_channel)
    target = await peers.open(cluster.node(1), "watched user on node 1")
    await target.sign_in(watched)
    online = await watcher.wait_for(
        "online event", lambda f: f.event == "pusher_internal:watchlist_events"
    )
    await target.close()
    offline = await watcher.wait_for(
        "offline event", lambda f: f.event == "pusher_internal:watchlist_events"
    )
    await send_marker(cluster.api(1), marker_channel, [watcher])

    assert frame_data(online) == {"events": [{"name": "online", "user_ids": [watched]}]}
    assert frame_data(offline) == {
        "events": [{"name": "offline", "user_ids": [watched]}]
    }
    watchlist_frames = [
        f for f in watcher.frames if f.event == "pusher_internal:watchlist_events"
    ]
    assert len(watchlist_frames) == 3, watcher.describe()
