"""Subscribe and unsubscribe for public, private and encrypted channels."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    channel_auth,
    compact,
    event_frame,
    hmac_sha256_hex,
    sdk_client,
    subscription_error_frame,
    succeeded_frame,
)
from clarion_launch import (
    DEFAULT_APP,
    SMALL_LIMITS_APP,
    ClientOpener,
    RunningServer,
)

KEY = DEFAULT_APP.key
SECRET = DEFAULT_APP.secret


async def test_public_subscribe_with_empty_auth(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A public subscribe with auth "" (pusher-js style) succeeds with data "{}"."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    frame = await client.subscribe(channel, auth="")
    assert frame.text == succeeded_frame(channel)


async def test_public_subscribe_without_auth(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A public subscribe with no auth field succeeds."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    frame = await client.subscribe(channel)
    assert frame.text == succeeded_frame(channel)


async def test_subscribe_data_as_json_string(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """pusher:subscribe with data given as a JSON string is accepted."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    data_text = compact({"channel": channel})
    await client.send_json({"event": "pusher:subscribe", "data": data_text})
    frame = await client.recv_frame()
    assert frame.text == succeeded_frame(channel)


async def test_subscribe_unknown_keys_ignored(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Unknown top-level keys in an inbound frame are ignored."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    await client.send_json(
        {"event": "pusher:subscribe", "data": {"channel": channel}, "extra": [1, 2]}
    )
    frame = await client.recv_frame()
    assert frame.text == succeeded_frame(channel)


async def test_subscribe_twice_is_idempotent(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A second subscribe replies again and the socket still gets one copy."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    await client.subscribe(channel)
    second = await client.subscribe(channel)
    assert second.text == succeeded_frame(channel)
    response = await api.trigger({"name": "once", "channel": channel, "data": "x"})
    assert response.status == 200
    delivered = await client.recv_frame()
    assert delivered.text == event_frame("once", channel, "x")
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_subscribe_missing_channel_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """pusher:subscribe without a channel gets pusher:error with code null."""
    client = await clients.established(shared_server.ws_url())
    await client.send_json({"event": "pusher:subscribe", "data": {"auth": ""}})
    frame = await client.recv_frame()
    assert frame.event == "pusher:error"
    assert frame.data["code"] is None
    assert isinstance(frame.data["message"], str)


async def test_subscribe_non_string_channel_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A channel that is not a string gets pusher:error with code null."""
    client = await clients.established(shared_server.ws_url())
    await client.send_json({"event": "pusher:subscribe", "data": {"channel": 42}})
    frame = await client.recv_frame()
    assert frame.event == "pusher:error"
    assert frame.data["code"] is None


@pytest.mark.parametrize(
    "channel",
    [
        "has space",
        "semi;colon-but-bang!",
        "caf\u00e9",
        "#server-to-nobody",
        "hash#inside",
        "",
        "x" * 165,
        "private-" + "x" * 157,
    ],
)
async def test_subscribe_invalid_name_4009(
    shared_server: RunningServer, clients: ClientOpener, channel: str
) -> None:
    """Invalid characters or over 164 chars give InvalidChannelName 4009."""
    client = await clients.established(shared_server.ws_url())
    frame = await client.subscribe(channel, auth="")
    assert frame.event == "pusher:subscription_error"
    assert list(frame.message) == ["event", "channel", "data"]
    assert frame.message["channel"] == channel
    assert frame.data["type"] == "InvalidChannelName"
    assert frame.data["status"] == 4009
    assert isinstance(frame.data["error"], str)


async def test_subscribe_invalid_name_keeps_socket(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """After a rejected channel name the socket stays open."""
    client = await clients.established(shared_server.ws_url())
    await client.subscribe("bad name", auth="")
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


@pytest.mark.parametrize("length", [164, 1])
async def test_subscribe_name_length_boundary(
    shared_server: RunningServer, clients: ClientOpener, length: int
) -> None:
    """Names of 1 and 164 characters are accepted."""
    client = await clients.established(shared_server.ws_url())
    channel = "n" * length
    frame = await client.subscribe(channel)
    assert frame.text == succeeded_frame(channel)


async def test_subscribe_all_allowed_characters(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Every character of A-Z a-z 0-9 _ - = @ , . ; is allowed in a name."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("AZaz09_-=@,.;")
    frame = await client.subscribe(channel)
    assert frame.text == succeeded_frame(channel)


async def test_subscribe_app_name_length_limit(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The per-app max_channel_name_length (20 here) is enforced."""
    client = await clients.established(shared_server.ws_url(key=SMALL_LIMITS_APP.key))
    accepted = await client.subscribe("c" * 20)
    assert accepted.text == succeeded_frame("c" * 20)
    rejected = await client.subscribe("c" * 21)
    assert rejected.data["type"] == "InvalidChannelName"
    assert rejected.data["status"] == 4009


async def test_private_subscribe_valid_auth(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A private channel with a correct signature succeeds with data "{}"."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    auth = channel_auth(KEY, SECRET, client.socket_id or "", channel)
    frame = await client.subscribe(channel, auth=auth)
    assert frame.text == succeeded_frame(channel)


async def test_private_subscribe_sdk_auth(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The auth token from the official Python SDK is accepted."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    token = sdk_client(api).authenticate(channel, client.socket_id)
    frame = await client.subscribe(channel, auth=token["auth"])
    assert frame.text == succeeded_frame(channel)


async def test_encrypted_subscribe_valid_auth(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """private-encrypted channels use the private signature and succeed."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-encrypted-")
    auth = channel_auth(KEY, SECRET, client.socket_id or "", channel)
    frame = await client.subscribe(channel, auth=auth)
    assert frame.text == succeeded_frame(channel)


async def test_private_bad_signature_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A wrong signature gives AuthError 401 naming the expected string."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    good = hmac_sha256_hex(SECRET, f"{client.socket_id}:{channel}")
    bad = ("0" if good[0] != "0" else "1") + good[1:]
    frame = await client.subscribe(channel, auth=f"{KEY}:{bad}")
    message = (
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"{client.socket_id}:{channel}, but got {bad}"
    )
    assert frame.text == subscription_error_frame(channel, "AuthError", message, 401)


async def test_private_wrong_key_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A token whose key is not the app key gives AuthError naming that key."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    signature = hmac_sha256_hex(SECRET, f"{client.socket_id}:{channel}")
    frame = await client.subscribe(channel, auth=f"other-key:{signature}")
    message = "Invalid key in subscription auth data: 'other-key'"
    assert frame.text == subscription_error_frame(channel, "AuthError", message, 401)


@pytest.mark.parametrize("auth", ["no-colon-here", ""])
async def test_private_malformed_auth_error(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    auth: str,
) -> None:
    """An auth value without a colon gives the key:signature format error."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    frame = await client.subscribe(channel, auth=auth)
    message = (
        f"Auth value for subscription to {channel} is invalid: "
        "should be of format 'key:signature'"
    )
    assert frame.text == subscription_error_frame(channel, "AuthError", message, 401)


async def test_private_missing_auth_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A private subscribe with no auth field gives AuthError 401."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    frame = await client.subscribe(channel)
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_private_signature_for_other_socket_rejected(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A token signed for another socket_id is rejected."""
    first = await clients.established(shared_server.ws_url())
    second = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    auth = channel_auth(KEY, SECRET, first.socket_id or "", channel)
    frame = await second.subscribe(channel, auth=auth)
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_private_auth_error_not_subscribed(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """After an AuthError the socket receives no events from that channel."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("private-")
    await client.subscribe(channel, auth=f"{KEY}:{'0' * 64}")
    response = await api.trigger({"name": "secret", "channel": channel, "data": "x"})
    assert response.status == 200
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_unsubscribe_stops_delivery(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """After pusher:unsubscribe (no reply) the socket gets no more events."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    await client.subscribe(channel)
    await client.unsubscribe(channel)
    reply = await client.ping_barrier()
    assert reply.text == PONG_TEXT
    response = await api.trigger({"name": "late", "channel": channel, "data": "x"})
    assert response.status == 200
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_unsubscribe_unknown_channel_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Unsubscribing from a channel the socket is not in sends nothing."""
    client = await clients.established(shared_server.ws_url())
    await client.unsubscribe(unique("public-"))
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_resubscribe_after_unsubscribe(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A socket can subscribe again after unsubscribing."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("public-")
    await client.subscribe(channel)
    await client.unsubscribe(channel)
    frame = await client.subscribe(channel)
    assert frame.text == succeeded_frame(channel)
