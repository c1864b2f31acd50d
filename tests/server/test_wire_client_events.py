"""Client events (`client-*`): forwarding, rejection rules and the rate limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    WireClient,
    channel_auth,
    compact,
    error_frame,
    event_frame,
)
from clarion_launch import (
    DEFAULT_APP,
    NO_CLIENT_EVENTS_APP,
    SMALL_LIMITS_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)

RATE_LIMIT_MESSAGE = "Client event rejected due to rate limit"


async def join_private(
    client: WireClient, channel: str, app: AppCredentials = DEFAULT_APP
) -> None:
    auth = channel_auth(app.key, app.secret, client.socket_id or "", channel)
    frame = await client.subscribe(channel, auth=auth)
    assert frame.event == "pusher_internal:subscription_succeeded"


async def join_presence(client: WireClient, channel: str, user_id: str) -> None:
    channel_data = compact({"user_id": user_id, "user_info": {"id": user_id}})
    auth = channel_auth(
        DEFAULT_APP.key,
        DEFAULT_APP.secret,
        client.socket_id or "",
        channel,
        channel_data,
    )
    frame = await client.subscribe(channel, auth=auth, channel_data=channel_data)
    assert frame.event == "pusher_internal:subscription_succeeded"


async def private_pair(
    server: RunningServer,
    clients: ClientOpener,
    channel: str,
    app: AppCredentials = DEFAULT_APP,
) -> tuple[WireClient, WireClient]:
    """Open a sender and a receiver, both subscribed to a private channel."""
    sender = await clients.established(server.ws_url(key=app.key))
    receiver = await clients.established(server.ws_url(key=app.key))
    await join_private(sender, channel, app)
    await join_private(receiver, channel, app)
    return sender, receiver


def client_event(name: str, channel: str, data: Any) -> dict[str, Any]:
    return {"event": name, "channel": channel, "data": data}


def error_texts(code: int | None, message: str, channel: str) -> set[str]:
    """Accept a client-event error with or without the `channel` key.

    The spec adds `channel` when an error concerns one channel, but whether an
    app-wide refusal counts as such is left open, so both forms pass.
    """
    return {error_frame(code, message), error_frame(code, message, channel)}


async def test_client_event_object_forwarded_compact(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Object data is forwarded as its compact JSON string."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-typing", channel, {"text": "hi"}))
    frame = await receiver.recv_frame()
    assert frame.text == event_frame("client-typing", channel, '{"text":"hi"}')


async def test_client_event_string_passthrough(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """String data is forwarded unchanged, spacing and all."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    data = '{ "spaced" : [1, 2] }  not even json'
    await sender.send_json(client_event("client-raw", channel, data))
    frame = await receiver.recv_frame()
    assert frame.text == event_frame("client-raw", channel, data)


@pytest.mark.parametrize("data", [[1, "two"], 3, True, None])
async def test_client_event_scalar_data_stringified(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    data: Any,
) -> None:
    """Non-object, non-string data is forwarded as its compact JSON text."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-value", channel, data))
    frame = await receiver.recv_frame()
    assert frame.text == event_frame("client-value", channel, compact(data))


async def test_client_event_presence_adds_user_id(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """On presence channels the forwarded event carries the sender's user_id."""
    channel = unique("presence-")
    sender = await clients.established(shared_server.ws_url())
    receiver = await clients.established(shared_server.ws_url())
    await join_presence(receiver, channel, "1")
    await join_presence(sender, channel, "42")
    added = await receiver.recv_frame()
    assert added.event == "pusher_internal:member_added"
    await sender.send_json(client_event("client-wave", channel, {"to": "all"}))
    frame = await receiver.recv_frame()
    expected = event_frame("client-wave", channel, '{"to":"all"}', user_id="42")
    assert frame.text == expected


async def test_client_event_private_has_no_user_id(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """On private channels the forwarded event has no user_id."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-x", channel, "d"))
    frame = await receiver.recv_frame()
    assert "user_id" not in frame.message


async def test_client_event_not_echoed(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The sender never receives its own client event."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-echo", channel, "d"))
    delivered = await receiver.recv_frame()
    assert delivered.event == "client-echo"
    frame = await sender.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_client_event_reaches_all_others(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Every other subscriber of the channel receives the event."""
    channel = unique("private-")
    sender, first = await private_pair(shared_server, clients, channel)
    second = await clients.established(shared_server.ws_url())
    await join_private(second, channel)
    await sender.send_json(client_event("client-all", channel, "d"))
    expected = event_frame("client-all", channel, "d")
    first_frame = await first.recv_frame()
    assert first_frame.text == expected
    second_frame = await second.recv_frame()
    assert second_frame.text == expected


async def test_client_event_disabled_app_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An app with client events off rejects them and forwards nothing."""
    app = NO_CLIENT_EVENTS_APP
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel, app)
    await sender.send_json(client_event("client-nope", channel, "d"))
    frame = await sender.recv_frame()
    message = "Client events are not enabled for this app"
    assert frame.text in error_texts(None, message, channel)
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_public_channel_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Client events on a public channel are rejected and not forwarded."""
    channel = unique("public-")
    sender = await clients.established(shared_server.ws_url())
    receiver = await clients.established(shared_server.ws_url())
    await sender.subscribe(channel)
    await receiver.subscribe(channel)
    await sender.send_json(client_event("client-pub", channel, "d"))
    frame = await sender.recv_frame()
    message = "Client events are only supported on private and presence channels"
    assert frame.text in error_texts(None, message, channel)
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_not_subscribed_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A sender not subscribed to the channel gets an error and nothing is sent."""
    channel = unique("private-")
    outsider = await clients.established(shared_server.ws_url())
    receiver = await clients.established(shared_server.ws_url())
    await join_private(receiver, channel)
    await outsider.send_json(client_event("client-sneak", channel, "d"))
    frame = await outsider.recv_frame()
    message = (
        "Cannot broadcast client event "
        f"(connection not subscribed to channel {channel})"
    )
    assert frame.text in error_texts(None, message, channel)
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_encrypted_channel_rejected(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Client events on private-encrypted channels get pusher:error, no forward."""
    channel = unique("private-encrypted-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-secret", channel, "d"))
    frame = await sender.recv_frame()
    assert frame.event == "pusher:error"
    assert frame.data["code"] is None
    assert isinstance(frame.data["message"], str)
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_name_over_200_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An event name over 200 characters gets pusher:error and is dropped."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    name = "client-" + "n" * 194
    await sender.send_json(client_event(name, channel, "d"))
    frame = await sender.recv_frame()
    assert frame.event == "pusher:error"
    assert frame.data["code"] is None
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_name_at_200_forwarded(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An event name of exactly 200 characters is forwarded."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    name = "client-" + "n" * 193
    await sender.send_json(client_event(name, channel, "d"))
    frame = await receiver.recv_frame()
    assert frame.text == event_frame(name, channel, "d")


async def test_client_event_data_over_10kb_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Client event data over 10240 bytes gets pusher:error and is dropped."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event("client-big", channel, "x" * 10241))
    frame = await sender.recv_frame()
    assert frame.event == "pusher:error"
    assert frame.data["code"] is None
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_data_at_10kb_forwarded(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Client event data of exactly 10240 bytes is forwarded."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    data = "x" * 10240
    await sender.send_json(client_event("client-big", channel, data))
    frame = await receiver.recv_frame()
    assert frame.text == event_frame("client-big", channel, data)


async def test_client_event_app_data_limit(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The per-app max_event_bytes (100 here) applies to client events."""
    app = SMALL_LIMITS_APP
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel, app)
    await sender.send_json(client_event("client-big", channel, "x" * 101))
    frame = await sender.recv_frame()
    assert frame.event == "pusher:error"
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_rate_limit_4301(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The 11th client event within a second gets 4301 and 10 are forwarded."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    for index in range(11):
        await sender.send_json(client_event("client-burst", channel, str(index)))
    frame = await sender.recv_frame()
    assert frame.text in error_texts(4301, RATE_LIMIT_MESSAGE, channel)
    received = [(await receiver.recv_frame()).data for _ in range(10)]
    assert received == [str(index) for index in range(10)]
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_client_event_rate_limit_keeps_socket(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """After a 4301 error the socket stays open and replies to pings."""
    channel = unique("private-")
    sender, _receiver = await private_pair(shared_server, clients, channel)
    for index in range(11):
        await sender.send_json(client_event("client-burst", channel, str(index)))
    error = await sender.recv_frame()
    assert error.data["code"] == 4301
    frame = await sender.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_client_event_app_rate_limit(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The per-app client_event_rate (3 here) rejects the 4th event."""
    app = SMALL_LIMITS_APP
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel, app)
    for index in range(4):
        await sender.send_json(client_event("client-burst", channel, str(index)))
    frame = await sender.recv_frame()
    assert frame.text in error_texts(4301, RATE_LIMIT_MESSAGE, channel)
    received = [(await receiver.recv_frame()).data for _ in range(3)]
    assert received == ["0", "1", "2"]


@pytest.mark.parametrize(
    "name", ["my-client-event", "Client-upper", "clientx", "pusher:bogus", "foo"]
)
async def test_unsupported_event_name_error(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    name: str,
) -> None:
    """A name without the exact client- prefix is an unsupported event."""
    channel = unique("private-")
    sender, receiver = await private_pair(shared_server, clients, channel)
    await sender.send_json(client_event(name, channel, {"valid": "object"}))
    frame = await sender.recv_frame()
    message = f"Unsupported event received on socket: {name}"
    assert frame.text in error_texts(None, message, channel)
    barrier = await receiver.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_unsupported_pusher_internal_event(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A pusher_internal: event sent by a client is unsupported."""
    client = await clients.established(shared_server.ws_url())
    name = "pusher_internal:member_added"
    await client.send_json({"event": name, "data": {}})
    frame = await client.recv_frame()
    expected = error_frame(None, f"Unsupported event received on socket: {name}")
    assert frame.text == expected
