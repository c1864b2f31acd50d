"""Server-side liveness: pings after activity_timeout, pruning after pong_timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from clarion_e2e import PING_TEXT, PONG_TEXT, compact, error_frame, poll_until
from clarion_launch import DEFAULT_APP, ClientOpener, RunningServer

# Short timers keep each test to a few seconds. Every wait below is bounded by
# RECEIVE_WINDOW, which is well above one timer period.
FAST_CONFIG = f"""
[server]
activity_timeout = 1
pong_timeout = 1

[[apps]]
id = "{DEFAULT_APP.app_id}"
key = "{DEFAULT_APP.key}"
secret = "{DEFAULT_APP.secret}"
client_events = true
"""
RECEIVE_WINDOW = 5.0


@pytest.fixture
def fast_server(own_server: Callable[[str], RunningServer]) -> Iterator[RunningServer]:
    """A private server with a 1 s activity timeout and a 1 s pong timeout."""
    yield own_server(FAST_CONFIG)


async def test_liveness_timeout_announced(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """connection_established announces the configured activity_timeout."""
    client = await clients.established(fast_server.ws_url())
    assert client.activity_timeout == 1


async def test_liveness_server_pings_silent_client(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """A client silent for activity_timeout gets an exact pusher:ping."""
    client = await clients.established(fast_server.ws_url())
    frame = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert frame.text == PING_TEXT


async def test_liveness_silent_client_pruned_4201(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """No pong after the ping gives pusher:error 4201 and close 4201."""
    client = await clients.established(fast_server.ws_url())
    ping = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert ping.text == PING_TEXT
    error = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert error.text == error_frame(4201, "Pong reply not received")
    close_code, close_reason = await client.wait_closed(timeout=RECEIVE_WINDOW)
    assert close_code == 4201
    assert close_reason == "Pong reply not received"


async def test_liveness_pong_keeps_socket_open(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """A client that replies pong to each ping is pinged again, not closed."""
    client = await clients.established(fast_server.ws_url())
    for _ in range(2):
        ping = await client.recv_frame(timeout=RECEIVE_WINDOW)
        assert ping.text == PING_TEXT
        await client.send_text(PONG_TEXT)
    third = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert third.text == PING_TEXT


async def test_liveness_any_frame_counts_as_pong(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """Any frame after the server's ping (here a subscribe) keeps the socket."""
    client = await clients.established(fast_server.ws_url())
    ping = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert ping.text == PING_TEXT
    subscribe = {"event": "pusher:subscribe", "data": {"channel": "alive"}}
    await client.send_text(compact(subscribe))
    succeeded = await client.recv_frame()
    assert succeeded.event == "pusher_internal:subscription_succeeded"
    next_frame = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert next_frame.text == PING_TEXT


async def test_liveness_pruned_socket_unsubscribed(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """A pruned socket leaves its channels like any closed socket."""
    silent = await clients.established(fast_server.ws_url())
    subscribe = {"event": "pusher:subscribe", "data": {"channel": "room"}}
    await silent.send_text(compact(subscribe))
    joined = await silent.recv_frame()
    assert joined.event == "pusher_internal:subscription_succeeded"
    close_code, _reason = await silent.wait_closed(timeout=2 * RECEIVE_WINDOW)
    assert close_code == 4201
    api = fast_server.api()
    path = api.app_path("/channels/room")
    response = await poll_until(
        lambda: api.get(path, {"info": "subscription_count"}),
        lambda reply: reply.json().get("occupied") is False,
    )
    assert response.json() == {"occupied": False, "subscription_count": 0}


async def test_liveness_websocket_ping_counts(
    fast_server: RunningServer, clients: ClientOpener
) -> None:
    """A WebSocket-level ping frame after the server's ping keeps the socket."""
    client = await clients.established(fast_server.ws_url())
    ping = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert ping.text == PING_TEXT
    pong_waiter = await client.connection.ping()
    await asyncio.wait_for(pong_waiter, RECEIVE_WINDOW)
    next_frame = await client.recv_frame(timeout=RECEIVE_WINDOW)
    assert next_frame.text == PING_TEXT
