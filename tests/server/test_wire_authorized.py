"""Authorized connections: with the per-app switch on, a connection must sign
in or subscribe to a channel that needs auth within `authorization_timeout`
seconds, or it is closed with 4009."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from clarion_e2e import (
    PONG_TEXT,
    WireClient,
    channel_auth,
    compact,
    error_frame,
    sign_in,
)
from clarion_launch import (
    DEFAULT_APP,
    OTHER_APP,
    ClientOpener,
    RunningServer,
    launch_server,
)

STRICT_APP = DEFAULT_APP
TIMEOUT_ERROR = error_frame(4009, "Connection not authorized within timeout")
CONFIG = f"""
[server]
activity_timeout = 120

[[apps]]
id = "{STRICT_APP.app_id}"
key = "{STRICT_APP.key}"
secret = "{STRICT_APP.secret}"
authorized_connections = true
authorization_timeout = 1

[[apps]]
id = "{OTHER_APP.app_id}"
key = "{OTHER_APP.key}"
secret = "{OTHER_APP.secret}"
authorization_timeout = 1
"""
# Seconds to wait for the close. The server checks every quarter of the timeout,
# so an unauthorized socket closes between 1 and 1.25 s after it opened.
CLOSE_WINDOW = 4.0
# Seconds a socket that must stay open is watched: the timeout plus two checks.
STAY_OPEN_WAIT = 1.6


@pytest.fixture(scope="module")
def strict_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """A server whose default app requires authorized connections within 1 s."""
    server = launch_server(CONFIG, tmp_path_factory.mktemp("authorized-server"))
    yield server
    server.stop()


async def subscribe_private(client: WireClient, channel: str) -> str:
    auth = channel_auth(STRICT_APP.key, STRICT_APP.secret, client.socket_id, channel)
    return (await client.subscribe(channel, auth=auth)).event


async def subscribe_presence(client: WireClient, channel: str) -> str:
    channel_data = compact({"user_id": "member"})
    auth = channel_auth(
        STRICT_APP.key, STRICT_APP.secret, client.socket_id, channel, channel_data
    )
    frame = await client.subscribe(channel, auth=auth, channel_data=channel_data)
    return frame.event


async def sign_in_event(client: WireClient) -> str:
    frame = await sign_in(client, STRICT_APP.key, STRICT_APP.secret, {"id": "someone"})
    return frame.event


async def subscribe_private_cache(client: WireClient, channel: str) -> str:
    event = await subscribe_private(client, channel)
    miss = await client.recv_frame()
    assert miss.event == "pusher:cache_miss", miss.text
    return event


async def subscribe_public_cache(client: WireClient, channel: str) -> str:
    event = (await client.subscribe(channel)).event
    miss = await client.recv_frame()
    assert miss.event == "pusher:cache_miss", miss.text
    return event


async def sign_in_late(client: WireClient) -> str:
    """Sign in half way through the timeout."""
    await asyncio.sleep(0.5)
    return await sign_in_event(client)


async def subscribe_then_leave(client: WireClient, channel: str) -> str:
    event = await subscribe_private(client, channel)
    await client.unsubscribe(channel)
    return event


# Each action is what a socket does right after it connects, and `suffix`
# makes its channel names unique.
Action = Callable[[WireClient, str], Awaitable[object]]

AUTHORIZING_ACTIONS: dict[str, Action] = {
    "signin": lambda client, suffix: sign_in_event(client),
    "late-signin": lambda client, suffix: sign_in_late(client),
    "private": lambda client, suffix: subscribe_private(client, f"private-{suffix}"),
    "private-cache": lambda client, suffix: subscribe_private_cache(
        client, f"private-cache-{suffix}"
    ),
    "encrypted": lambda client, suffix: subscribe_private(
        client, f"private-encrypted-{suffix}"
    ),
    "presence": lambda client, suffix: subscribe_presence(client, f"presence-{suffix}"),
    "private-then-unsubscribe": lambda client, suffix: subscribe_then_leave(
        client, f"private-{suffix}"
    ),
}


async def test_authorized_unauthorized_sockets_closed(
    strict_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """An unauthorized socket gets error 4009 and then close 4009, whatever
    else it did. An authorized socket on the same app keeps receiving."""
    attempts: dict[str, Action] = {
        "idle": lambda client, suffix: asyncio.sleep(0),
        "ping": lambda client, suffix: client.ping_barrier(),
        "public": lambda client, suffix: client.subscribe(suffix),
        "cache": lambda client, suffix: subscribe_public_cache(
            client, f"cache-{suffix}"
        ),
        "forged-signin": lambda client, suffix: client.signin(
            compact({"id": "x"}), f"{STRICT_APP.key}:{'0' * 64}"
        ),
        "forged-private": lambda client, suffix: client.subscribe(
            f"private-{suffix}", auth=f"{STRICT_APP.key}:{'0' * 64}"
        ),
        "user-channel": lambda client, suffix: client.subscribe(
            "#server-to-user-x", auth=""
        ),
    }

    async def outcome(attempt: Action) -> tuple[str, int | None]:
        client = await clients.established(strict_server.ws_url())
        await attempt(client, unique("authorized-"))
        frame = await client.recv_frame(timeout=CLOSE_WINDOW)
        code, _ = await client.wait_closed(timeout=CLOSE_WINDOW)
        return frame.text, code

    channel = unique("private-authorized-")
    member = await clients.established(strict_server.ws_url())
    await subscribe_private(member, channel)
    results = await asyncio.gather(*(outcome(attempt) for attempt in attempts.values()))
    for name, (text, code) in zip(attempts, results, strict=True):
        assert text == TIMEOUT_ERROR, f"{name}: {text}"
        assert code == 4009, f"{name}: closed with {code}"

    response = await strict_server.api().trigger(
        {"name": "after", "channel": channel, "data": "d"}
    )
    assert response.status == 200
    frame = await member.recv_frame()
    assert frame.event == "after"


async def test_authorized_in_time_stays_open(
    strict_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """Sign-in or a private, encrypted or presence subscription in time keeps
    the socket open, even after it leaves the channel again."""

    async def outcome(name: str, action: Action) -> str:
        client = await clients.established(strict_server.ws_url())
        reply = await action(client, unique("authorized-"))
        assert reply in (
            "pusher:signin_success",
            "pusher_internal:subscription_succeeded",
        ), f"{name}: {reply}"
        await asyncio.sleep(STAY_OPEN_WAIT)
        return (await client.ping_barrier()).text

    async def switch_off_outcome() -> str:
        client = await clients.established(strict_server.ws_url(OTHER_APP.key))
        await asyncio.sleep(STAY_OPEN_WAIT)
        return (await client.ping_barrier()).text

    results = await asyncio.gather(
        switch_off_outcome(),
        *(outcome(name, action) for name, action in AUTHORIZING_ACTIONS.items()),
    )
    names = ["idle on an app with the switch off", *AUTHORIZING_ACTIONS]
    for name, text in zip(names, results, strict=True):
        assert text == PONG_TEXT, f"{name}: {text}"
