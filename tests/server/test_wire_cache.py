"""Cache channels: the last HTTP event replayed to new subscribers,
`pusher:cache_miss`, `info=cache` and expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    Frame,
    WireClient,
    cache_miss_frame,
    channel_auth,
    compact,
    event_frame,
    poll_until,
    subscription_count_frame,
)
from clarion_launch import (
    COUNTS_APP,
    DEFAULT_APP,
    OTHER_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)

CACHE_PREFIXES = [
    "cache-",
    "private-cache-",
    "presence-cache-",
    "private-encrypted-cache-",
]
# What a server SDK sends as the data of an encrypted event. The server only
# routes it, so any string of this shape will do.
CIPHERTEXT_DATA = compact(
    {"nonce": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", "ciphertext": "c2VjcmV0IGJ5dGVz"}
)


async def subscribe_any(
    client: WireClient, channel: str, app: AppCredentials = DEFAULT_APP
) -> Frame:
    """Subscribe with whatever the channel's prefix needs and return the reply.

    Presence members get a fresh random user id.
    """
    socket_id = client.socket_id or ""
    if channel.startswith("presence-"):
        channel_data = compact({"user_id": uuid.uuid4().hex[:8]})
        auth = channel_auth(app.key, app.secret, socket_id, channel, channel_data)
        return await client.subscribe(channel, auth=auth, channel_data=channel_data)
    if channel.startswith("private-"):
        auth = channel_auth(app.key, app.secret, socket_id, channel)
        return await client.subscribe(channel, auth=auth)
    return await client.subscribe(channel)


async def open_subscriber(
    server: RunningServer,
    clients: ClientOpener,
    channel: str,
    app: AppCredentials = DEFAULT_APP,
) -> tuple[WireClient, Frame]:
    """Open a socket, subscribe it, and return it with the frame after
    subscription_succeeded."""
    client = await clients.established(server.ws_url(app.key))
    succeeded = await subscribe_any(client, channel, app)
    assert succeeded.event == "pusher_internal:subscription_succeeded", succeeded.text
    return client, await client.recv_frame()


def cache_info(api: ApiClient, channel: str) -> Any:
    """GET the channel's info=cache and return the decoded body."""
    path = api.app_path(f"/channels/{channel}")
    return api.get(path, {"info": "cache"}).json()


# Replay to new subscribers, for every cache prefix


@pytest.mark.parametrize("prefix", CACHE_PREFIXES)
async def test_cache_empty_sends_cache_miss(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """With nothing cached, subscription_succeeded is followed by cache_miss."""
    channel = unique(prefix)
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == cache_miss_frame(channel)


@pytest.mark.parametrize("prefix", CACHE_PREFIXES)
async def test_cache_hit_sends_last_event(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """An event published before anyone subscribed is replayed after
    subscription_succeeded, byte for byte."""
    channel = unique(prefix)
    response = await api.trigger(
        {"name": "price", "channel": channel, "data": CIPHERTEXT_DATA}
    )
    assert response.status == 200
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == event_frame("price", channel, CIPHERTEXT_DATA)


@pytest.mark.parametrize("prefix", CACHE_PREFIXES)
async def test_cache_replay_then_nothing_else(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """The replayed event is sent once and is the only extra frame."""
    channel = unique(prefix)
    await api.trigger({"name": "price", "channel": channel, "data": "1"})
    client, _ = await open_subscriber(shared_server, clients, channel)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_cache_keeps_latest_event(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Only the most recent event is replayed."""
    channel = unique("cache-")
    await api.trigger({"name": "first", "channel": channel, "data": "1"})
    await api.trigger({"name": "second", "channel": channel, "data": "2"})
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == event_frame("second", channel, "2")


async def test_cache_object_data_replayed_compact(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Object data is replayed as the same compact string live subscribers got."""
    channel = unique("cache-")
    live, _ = await open_subscriber(shared_server, clients, channel)
    await api.trigger({"name": "obj", "channel": channel, "data": {"a": [1, 2]}})
    delivered = await live.recv_frame()
    _, replayed = await open_subscriber(shared_server, clients, channel)
    assert replayed.text == delivered.text


async def test_cache_existing_subscriber_not_replayed(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A new subscription replays to the newcomer only."""
    channel = unique("cache-")
    first, _ = await open_subscriber(shared_server, clients, channel)
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    await first.recv_frame()
    await open_subscriber(shared_server, clients, channel)
    barrier = await first.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_cache_resubscribe_replays_again(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Unsubscribing and subscribing again replays the cached event again."""
    channel = unique("cache-")
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    client, _ = await open_subscriber(shared_server, clients, channel)
    await client.unsubscribe(channel)
    await client.subscribe(channel)
    frame = await client.recv_frame()
    assert frame.text == event_frame("e", channel, "d")


async def test_cache_excluded_socket_still_cached(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An event that skipped its sender via socket_id is still cached."""
    channel = unique("cache-")
    sender, _ = await open_subscriber(shared_server, clients, channel)
    await api.trigger(
        {"name": "e", "channel": channel, "data": "d", "socket_id": sender.socket_id}
    )
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == event_frame("e", channel, "d")


async def test_cache_multi_channel_trigger(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A trigger on several channels caches on each cache channel."""
    channels = [unique("cache-"), unique("private-cache-")]
    await api.trigger({"name": "multi", "channels": channels, "data": "m"})
    for channel in channels:
        _, frame = await open_subscriber(shared_server, clients, channel)
        assert frame.text == event_frame("multi", channel, "m"), channel


async def test_cache_batch_event_cached(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch item on a cache channel is cached."""
    channel = unique("cache-")
    response = await api.batch([{"name": "b", "channel": channel, "data": "x"}])
    assert response.status == 200
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == event_frame("b", channel, "x")


async def test_cache_apps_isolated(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An event cached for one app is not replayed to another app's subscriber."""
    channel = unique("cache-")
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    _, frame = await open_subscriber(shared_server, clients, channel, OTHER_APP)
    assert frame.text == cache_miss_frame(channel)


@pytest.mark.parametrize("prefix", ["private-cache-", "presence-cache-"])
async def test_cache_client_events_not_cached(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """A client event is forwarded but never cached."""
    channel = unique(prefix)
    sender, _ = await open_subscriber(shared_server, clients, channel)
    receiver, _ = await open_subscriber(shared_server, clients, channel)
    if prefix.startswith("presence-"):
        await sender.recv_frame()
    await sender.send_json({"event": "client-typing", "channel": channel, "data": {}})
    forwarded = await receiver.recv_frame()
    assert forwarded.event == "client-typing"
    _, frame = await open_subscriber(shared_server, clients, channel)
    assert frame.text == cache_miss_frame(channel)


async def test_cache_plain_channels_unaffected(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A channel without a cache prefix replays nothing and sends no cache_miss."""
    channel = unique("nocache-")
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    client = await clients.established(shared_server.ws_url())
    await client.subscribe(channel)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_cache_presence_member_added_to_others(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """On presence-cache, members already present get member_added, not the replay."""
    channel = unique("presence-cache-")
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    first, replayed = await open_subscriber(shared_server, clients, channel)
    assert replayed.text == event_frame("e", channel, "d")
    await open_subscriber(shared_server, clients, channel)
    frame = await first.recv_frame()
    assert frame.event == "pusher_internal:member_added"
    barrier = await first.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_cache_miss_before_subscription_count(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """With counts on, the order is succeeded, cache_miss, then the count."""
    channel = unique("cache-")
    client, frame = await open_subscriber(shared_server, clients, channel, COUNTS_APP)
    assert frame.text == cache_miss_frame(channel)
    count = await client.recv_frame()
    assert count.text == subscription_count_frame(channel, 1)


# HTTP info=cache


async def test_cache_info_reports_data_and_ttl(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """info=cache gives the cached data and whole seconds left (default 1800 s)."""
    channel = unique("cache-")
    await api.trigger({"name": "e", "channel": channel, "data": "cached"})
    info = await api.get_json(f"/channels/{channel}", {"info": "cache"})
    body = info.json()
    assert info.status == 200
    assert set(body) == {"occupied", "cache"}
    assert body["occupied"] is False
    assert body["cache"]["data"] == "cached"
    assert isinstance(body["cache"]["ttl"], int)
    assert 0 < body["cache"]["ttl"] <= 1800


async def test_cache_info_null_when_empty(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """info=cache on an empty cache channel gives cache null."""
    channel = unique("private-cache-")
    info = await api.get_json(f"/channels/{channel}", {"info": "cache"})
    assert info.status == 200
    assert info.json() == {"occupied": False, "cache": None}


async def test_cache_info_with_subscription_count(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """info=cache combines with subscription_count on an occupied channel."""
    channel = unique("cache-")
    await open_subscriber(shared_server, clients, channel)
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    info = await api.get_json(
        f"/channels/{channel}", {"info": "cache,subscription_count"}
    )
    body = info.json()
    assert body["occupied"] is True
    assert body["subscription_count"] == 1
    assert body["cache"]["data"] == "d"


@pytest.mark.parametrize("prefix", ["plain-", "private-", "presence-"])
async def test_cache_info_non_cache_channel_400(
    api: ApiClient, unique: Callable[[str], str], prefix: str
) -> None:
    """info=cache on a channel without a cache prefix gives 400."""
    info = await api.get_json(f"/channels/{unique(prefix)}", {"info": "cache"})
    assert info.status == 400


async def test_cache_info_channel_list_400(api: ApiClient) -> None:
    """info=cache is not an attribute of the channel list."""
    info = await api.get_json("/channels", {"info": "cache"})
    assert info.status == 400


# Expiry, on a private server with a 1 s cache_ttl

SHORT_TTL_CONFIG = f"""
[server]
activity_timeout = 120

[[apps]]
id = "{DEFAULT_APP.app_id}"
key = "{DEFAULT_APP.key}"
secret = "{DEFAULT_APP.secret}"
cache_ttl = 1
"""


async def test_cache_entry_expires_after_ttl(
    own_server: Callable[[str], RunningServer],
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """After cache_ttl, info=cache is null and new subscribers get cache_miss."""
    server = own_server(SHORT_TTL_CONFIG)
    api = server.api()
    channel = unique("cache-")
    await api.trigger({"name": "e", "channel": channel, "data": "d"})
    fresh = await asyncio.to_thread(cache_info, api, channel)
    assert fresh["cache"]["data"] == "d"
    assert 0 <= fresh["cache"]["ttl"] <= 1

    expired = await poll_until(
        lambda: cache_info(api, channel), lambda body: body["cache"] is None
    )
    assert expired == {"occupied": False, "cache": None}
    _, frame = await open_subscriber(server, clients, channel)
    assert frame.text == cache_miss_frame(channel)


async def test_cache_republish_restarts_ttl(
    own_server: Callable[[str], RunningServer],
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """A new event after expiry is cached again."""
    server = own_server(SHORT_TTL_CONFIG)
    api = server.api()
    channel = unique("cache-")
    await api.trigger({"name": "old", "channel": channel, "data": "1"})
    await poll_until(
        lambda: cache_info(api, channel), lambda body: body["cache"] is None
    )
    await api.trigger({"name": "new", "channel": channel, "data": "2"})
    _, frame = await open_subscriber(server, clients, channel)
    assert frame.text == event_frame("new", channel, "2")
