"""`pusher_internal:subscription_count` on the wire, for an app that turns it
on, and the `subscription_count` info attribute of the HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    Frame,
    WireClient,
    channel_auth,
    compact,
    sign_in,
    subscription_count_frame,
)
from clarion_launch import (
    COUNTS_APP,
    DEFAULT_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)
from websockets.exceptions import ConnectionClosed

# Channels with more subscribers than this get throttled counts.
THROTTLE_ABOVE = 100


async def subscribe_any(
    client: WireClient, channel: str, app: AppCredentials = COUNTS_APP
) -> Frame:
    """Subscribe with whatever the channel's prefix needs and return the reply."""
    socket_id = client.socket_id or ""
    if channel.startswith("presence-"):
        channel_data = compact({"user_id": socket_id})
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
    app: AppCredentials = COUNTS_APP,
) -> WireClient:
    """Open a socket of `app` and subscribe it to `channel`."""
    client = await clients.established(server.ws_url(app.key))
    frame = await subscribe_any(client, channel, app)
    assert frame.event == "pusher_internal:subscription_succeeded", frame.text
    return client


# Counts sent to subscribers


@pytest.mark.parametrize("prefix", ["counted-", "private-", "private-encrypted-"])
async def test_count_first_subscriber_gets_one(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """The first subscriber gets count 1 right after subscription_succeeded."""
    channel = unique(prefix)
    client = await open_subscriber(shared_server, clients, channel)
    frame = await client.recv_frame()
    assert frame.text == subscription_count_frame(channel, 1)


async def test_count_sent_to_every_subscriber(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A new subscriber makes every subscriber, itself included, get the count."""
    channel = unique("counted-")
    first = await open_subscriber(shared_server, clients, channel)
    await first.recv_frame()
    second = await open_subscriber(shared_server, clients, channel)
    for client in (first, second):
        frame = await client.recv_frame()
        assert frame.text == subscription_count_frame(channel, 2)


async def test_count_on_unsubscribe(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An unsubscribe sends the lower count to those who remain, not the leaver."""
    channel = unique("counted-")
    stayer = await open_subscriber(shared_server, clients, channel)
    await stayer.recv_frame()
    leaver = await open_subscriber(shared_server, clients, channel)
    await stayer.recv_frame()
    await leaver.recv_frame()

    await leaver.unsubscribe(channel)
    frame = await stayer.recv_frame()
    assert frame.text == subscription_count_frame(channel, 1)
    barrier = await leaver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_count_on_disconnect(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A subscriber that disconnects lowers the count of its channels."""
    channel = unique("counted-")
    stayer = await open_subscriber(shared_server, clients, channel)
    await stayer.recv_frame()
    leaver = await open_subscriber(shared_server, clients, channel)
    await stayer.recv_frame()
    await leaver.close()
    frame = await stayer.recv_frame()
    assert frame.text == subscription_count_frame(channel, 1)


async def test_count_repeat_subscribe_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Subscribing again to the same channel changes no count and sends none."""
    channel = unique("counted-")
    client = await open_subscriber(shared_server, clients, channel)
    await client.recv_frame()
    again = await client.subscribe(channel)
    assert again.event == "pusher_internal:subscription_succeeded"
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_count_unknown_unsubscribe_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Unsubscribing a channel the socket never joined sends nobody a count."""
    channel = unique("counted-")
    subscriber = await open_subscriber(shared_server, clients, channel)
    await subscriber.recv_frame()
    stranger = await clients.established(shared_server.ws_url(COUNTS_APP.key))
    await stranger.unsubscribe(channel)
    await stranger.ping_barrier()
    barrier = await subscriber.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_count_other_channels_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Subscribers of another channel get no count."""
    bystander = await open_subscriber(shared_server, clients, unique("counted-"))
    await bystander.recv_frame()
    await open_subscriber(shared_server, clients, unique("counted-"))
    barrier = await bystander.ping_barrier()
    assert barrier.text == PONG_TEXT


@pytest.mark.parametrize("prefix", ["presence-", "presence-cache-"])
async def test_count_presence_channels_silent(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    prefix: str,
) -> None:
    """Presence channels get no counts, only their member events."""
    channel = unique(prefix)
    first = await open_subscriber(shared_server, clients, channel)
    if prefix == "presence-cache-":
        miss = await first.recv_frame()
        assert miss.event == "pusher:cache_miss"
    await open_subscriber(shared_server, clients, channel)
    added = await first.recv_frame()
    assert added.event == "pusher_internal:member_added"
    barrier = await first.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_count_user_channel_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The #server-to-user channel gets no counts."""
    user_id = unique("u-")
    client = await clients.established(shared_server.ws_url(COUNTS_APP.key))
    await sign_in(client, COUNTS_APP.key, COUNTS_APP.secret, {"id": user_id})
    frame = await client.subscribe(f"#server-to-user-{user_id}", auth="")
    assert frame.event == "pusher_internal:subscription_succeeded"
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_count_switch_off_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An app without subscription_count_events sends no counts."""
    channel = unique("counted-")
    first = await open_subscriber(shared_server, clients, channel, DEFAULT_APP)
    await open_subscriber(shared_server, clients, channel, DEFAULT_APP)
    barrier = await first.ping_barrier()
    assert barrier.text == PONG_TEXT


# Throttle above 100 subscribers. The delayed count comes 5 s later, so the
# wait for it is covered by the unit tests of SubscriptionCounts instead.


async def drain_counts(client: WireClient, channel: str, last: int) -> None:
    """Read frames until the count `last` arrives."""
    while True:
        frame = await client.recv_frame()
        if frame.text == subscription_count_frame(channel, last):
            return


async def discard_frames(client: WireClient) -> None:
    """Read and drop frames until the socket closes.

    A websockets client that nobody reads stops reading at 16 queued frames
    (its default max_queue) and then waits its full close timeout on close. On
    a channel of 100 subscribers every socket gets about 100 counts.
    """
    try:
        while True:
            await client.connection.recv()
    except ConnectionClosed:
        pass


async def test_count_busy_channel_throttled(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Past 100 subscribers the next change sends no count at once, and falling
    back to 100 sends the current count at once."""
    channel = unique("counted-")
    first = await open_subscriber(shared_server, clients, channel)
    others = [
        await open_subscriber(shared_server, clients, channel)
        for _ in range(THROTTLE_ABOVE - 1)
    ]
    discarders = [asyncio.create_task(discard_frames(other)) for other in others]
    try:
        await drain_counts(first, channel, THROTTLE_ABOVE)

        extra = await open_subscriber(shared_server, clients, channel)
        extra_barrier = await extra.ping_barrier()
        assert extra_barrier.text == PONG_TEXT
        first_barrier = await first.ping_barrier()
        assert first_barrier.text == PONG_TEXT

        await extra.unsubscribe(channel)
        frame = await first.recv_frame()
        assert frame.text == subscription_count_frame(channel, THROTTLE_ABOVE)
        await extra.close()
        await first.close()
        await asyncio.gather(*(other.close() for other in others))
    finally:
        for task in discarders:
            task.cancel()
        await asyncio.gather(*discarders, return_exceptions=True)


# The subscription_count info attribute


async def test_count_http_info_agrees(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Every HTTP API place that offers subscription_count gives the wire count."""
    channel = unique("counted-")
    api = shared_server.api(COUNTS_APP)
    for _ in range(3):
        await open_subscriber(shared_server, clients, channel)

    one_channel = await api.get_json(
        f"/channels/{channel}", {"info": "subscription_count"}
    )
    listed = await api.get_json(
        "/channels", {"filter_by_prefix": channel, "info": "subscription_count"}
    )
    triggered = await api.trigger(
        {"name": "e", "channel": channel, "data": "d", "info": "subscription_count"}
    )
    batched = await api.batch(
        [{"name": "e", "channel": channel, "data": "d", "info": "subscription_count"}]
    )
    expected: dict[str, Any] = {"subscription_count": 3}
    assert one_channel.json() == {"occupied": True, **expected}
    assert listed.json() == {"channels": {channel: expected}}
    assert triggered.json() == {"channels": {channel: expected}}
    assert batched.json() == {"batch": [expected]}


async def test_count_http_info_presence_sockets(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """On presence channels subscription_count counts sockets, user_count users."""
    channel = unique("presence-")
    api = shared_server.api(COUNTS_APP)
    for _ in range(2):
        client = await clients.established(shared_server.ws_url(COUNTS_APP.key))
        channel_data = compact({"user_id": "same-user"})
        auth = channel_auth(
            COUNTS_APP.key, COUNTS_APP.secret, client.socket_id, channel, channel_data
        )
        await client.subscribe(channel, auth=auth, channel_data=channel_data)
    one_channel = await api.get_json(
        f"/channels/{channel}", {"info": "user_count,subscription_count"}
    )
    assert one_channel.json() == {
        "occupied": True,
        "user_count": 1,
        "subscription_count": 2,
    }
