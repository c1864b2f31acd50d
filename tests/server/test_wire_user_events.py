"""Events sent to one user through its `#server-to-user-{user_id}` channel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    WireClient,
    channel_auth,
    error_frame,
    event_frame,
    sdk_client,
    sign_in,
    succeeded_frame,
)
from clarion_launch import DEFAULT_APP, ClientOpener, RunningServer


def user_channel(user_id: str) -> str:
    return f"#server-to-user-{user_id}"


async def open_user(
    server: RunningServer, clients: ClientOpener, user_id: str
) -> WireClient:
    """Open a socket, sign it in as `user_id` and subscribe to its user channel
    the way pusher-js does, with an empty auth."""
    client = await clients.established(server.ws_url())
    signed = await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": user_id})
    assert signed.event == "pusher:signin_success"
    frame = await client.subscribe(user_channel(user_id), auth="")
    assert frame.event == "pusher_internal:subscription_succeeded"
    return client


# Subscribing to the user channel


async def test_user_channel_subscribe_succeeds(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A signed-in socket subscribes to its own channel with pusher-js's frame."""
    user_id = unique("u-")
    client = await clients.established(shared_server.ws_url())
    await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": user_id})
    await client.send_json(
        {
            "event": "pusher:subscribe",
            "data": {"auth": "", "channel": user_channel(user_id)},
        }
    )
    frame = await client.recv_frame()
    assert frame.text == succeeded_frame(user_channel(user_id))


async def test_user_channel_anonymous_autherror(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A socket that has not signed in cannot subscribe to a user channel."""
    channel = user_channel(unique("u-"))
    client = await clients.established(shared_server.ws_url())
    frame = await client.subscribe(channel, auth="")
    assert frame.event == "pusher:subscription_error"
    assert frame.message["channel"] == channel
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_user_channel_other_user_autherror(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A socket signed in as one user cannot subscribe to another's channel."""
    client = await clients.established(shared_server.ws_url())
    await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": unique("u-")})
    frame = await client.subscribe(user_channel(unique("u-")), auth="")
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_user_channel_signed_token_not_enough(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A valid channel token does not replace the sign-in on a user channel."""
    channel = user_channel(unique("u-"))
    client = await clients.established(shared_server.ws_url())
    auth = channel_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, channel)
    frame = await client.subscribe(channel, auth=auth)
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "AuthError"


@pytest.mark.parametrize("channel", ["#server-to-user-", "#server-to-user-a b", "#x"])
async def test_user_channel_invalid_name(
    shared_server: RunningServer, clients: ClientOpener, channel: str
) -> None:
    """Other names with `#` and an empty user id are invalid channel names."""
    client = await clients.established(shared_server.ws_url())
    await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": "a"})
    frame = await client.subscribe(channel, auth="")
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "InvalidChannelName"


# Delivery


async def test_user_event_http_exact_frame(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An HTTP event on the user channel arrives as an ordinary channel event."""
    user_id = unique("u-")
    client = await open_user(shared_server, clients, user_id)
    channel = user_channel(user_id)
    response = await api.trigger({"name": "notice", "channel": channel, "data": "hi"})
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("notice", channel, "hi")


async def test_user_event_sdk_send_to_user(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The Python SDK's send_to_user reaches the signed-in user."""
    user_id = unique("u-")
    client = await open_user(shared_server, clients, user_id)
    sdk = sdk_client(api)
    result = await asyncio.to_thread(
        sdk.send_to_user, user_id, "notice", {"text": "report ready"}
    )
    frame = await client.recv_frame()
    assert result == {}
    assert frame.event == "notice"
    assert frame.message["channel"] == user_channel(user_id)
    assert json.loads(frame.data) == {"text": "report ready"}


async def test_user_event_every_connection(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Each subscribed connection of the user gets the event."""
    user_id = unique("u-")
    channel = user_channel(user_id)
    tabs = [await open_user(shared_server, clients, user_id) for _ in range(2)]
    await api.trigger({"name": "notice", "channel": channel, "data": "both"})
    for index, tab in enumerate(tabs):
        frame = await tab.recv_frame()
        assert frame.text == event_frame("notice", channel, "both"), f"tab {index}"


async def test_user_event_other_users_skipped(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Another signed-in user does not get the event."""
    target, other_id = unique("u-"), unique("u-")
    await open_user(shared_server, clients, target)
    other = await open_user(shared_server, clients, other_id)
    await api.trigger({"name": "notice", "channel": user_channel(target), "data": "x"})
    barrier = await other.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_user_event_needs_subscription(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A signed-in socket not subscribed to its user channel gets nothing."""
    user_id = unique("u-")
    client = await clients.established(shared_server.ws_url())
    await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": user_id})
    await api.trigger({"name": "notice", "channel": user_channel(user_id), "data": "x"})
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_user_event_after_unsubscribe_skipped(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """After unsubscribing from its user channel a socket gets nothing."""
    user_id = unique("u-")
    client = await open_user(shared_server, clients, user_id)
    await client.unsubscribe(user_channel(user_id))
    await api.trigger({"name": "notice", "channel": user_channel(user_id), "data": "x"})
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_user_event_socket_id_excluded(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """socket_id in the request skips that connection of the user only."""
    user_id = unique("u-")
    channel = user_channel(user_id)
    skipped = await open_user(shared_server, clients, user_id)
    receiver = await open_user(shared_server, clients, user_id)
    await api.trigger(
        {
            "name": "notice",
            "channel": channel,
            "data": "x",
            "socket_id": skipped.socket_id,
        }
    )
    frame = await receiver.recv_frame()
    assert frame.text == event_frame("notice", channel, "x")
    barrier = await skipped.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_user_event_batch_delivers(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A batch item on a user channel is delivered like a single event."""
    user_id = unique("u-")
    channel = user_channel(user_id)
    client = await open_user(shared_server, clients, user_id)
    response = await api.batch([{"name": "notice", "channel": channel, "data": "b"}])
    assert response.status == 200
    frame = await client.recv_frame()
    assert frame.text == event_frame("notice", channel, "b")


async def test_user_channel_client_event_rejected(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A client event on a user channel is rejected and not forwarded."""
    user_id = unique("u-")
    channel = user_channel(user_id)
    sender = await open_user(shared_server, clients, user_id)
    other_tab = await open_user(shared_server, clients, user_id)
    await sender.send_json({"event": "client-hi", "channel": channel, "data": {}})
    frame = await sender.recv_frame()
    assert frame.text == error_frame(
        None,
        "Client events are only supported on private and presence channels",
        channel,
    )
    barrier = await other_tab.ping_barrier()
    assert barrier.text == PONG_TEXT


# The HTTP API hides user channels


async def test_user_channel_not_listed(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """GET /channels never lists a user channel, even filtered by its prefix."""
    user_id = unique("u-")
    await open_user(shared_server, clients, user_id)
    listed: dict[str, Any] = {}
    for query in ({}, {"filter_by_prefix": "#server-to-user-"}):
        response = await api.get_json("/channels", query)
        assert response.status == 200, response.body
        listed.update(response.json()["channels"])
    assert user_channel(user_id) not in listed
    assert not [name for name in listed if name.startswith("#")]


# Long user ids. Sign-in accepts ids of up to 200 characters, and pusher-js 8.6.0
# subscribes to the user channel of every id it signed in with.


async def test_user_channel_long_user_id(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A user signed in with a 160-character id can subscribe to its channel."""
    user_id = "u" * 160
    client = await clients.established(shared_server.ws_url())
    signed = await sign_in(client, DEFAULT_APP.key, DEFAULT_APP.secret, {"id": user_id})
    assert signed.event == "pusher:signin_success"
    frame = await client.subscribe(user_channel(user_id), auth="")
    assert frame.text == succeeded_frame(user_channel(user_id))


async def test_user_event_long_user_id_accepted(
    shared_server: RunningServer, api: ApiClient
) -> None:
    """The SDK's send_to_user to a 160-character id is accepted."""
    result = await asyncio.to_thread(
        sdk_client(api).send_to_user, "u" * 160, "notice", {"n": 1}
    )
    assert result == {}
