"""Fault scenarios for the differential tests, and what pusher-js 8.6.0 does in each.

A scenario drives one client through the fault proxy and waits for the states
it must reach. It does not read clocks, and each wait has a generous timeout.
The scenarios that end in `disconnected` then watch for a further
`SETTLE_TIME` seconds, longer than pusher-js's 1 s reconnect delay, so a
client that reconnects by mistake shows it in its sequence.

`expected` is the sequence of `state_change` events that pusher-js 8.6.0
produced in each scenario against a Clarion server, with `activityTimeout`
3 s, `pongTimeout` 1 s, `unavailableTimeout` 2 s and only the `ws`
transport. The tests check pusher-js against it on every run, and check
`clarion.client` against what pusher-js did in that same run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from differential_auth import AuthEndpoint
from differential_clients import RecordingClient
from fault_proxy import FaultProxy

from clarion.rest import RestClient

# Seconds to wait for a state that follows at once or after the 1 s reconnect
# delay, on loopback.
STATE_TIMEOUT = 5.0
# Seconds to wait after a fault that only the client's own timers detect: one
# activity timeout (3 s) plus one pong timeout (1 s), with margin.
SILENCE_TIMEOUT = 10.0
# Seconds to wait for a connection once the server is reachable again. pusher-js
# starts a new WebSocket attempt 15 s after a refused one, so the state
# follows up to 15 s after the proxy listens again.
UNREACHABLE_TIMEOUT = 25.0
# Seconds to keep watching after a state that should be final.
SETTLE_TIME = 1.5

PUBLIC_CHANNEL = "differential-public"
PRIVATE_CHANNEL = "private-differential"
PRESENCE_CHANNEL = "presence-differential"
ENCRYPTED_CHANNEL = "private-encrypted-differential"
CHANNELS = (PUBLIC_CHANNEL, PRIVATE_CHANNEL, PRESENCE_CHANNEL, ENCRYPTED_CHANNEL)

CONNECT = ["initialized->connecting", "connecting->connected"]
RECONNECT = ["connected->connecting", "connecting->connected"]
DISCONNECT = ["connected->disconnected"]


@dataclass
class ScenarioContext:
    """What a scenario acts on."""

    client: RecordingClient
    proxy: FaultProxy
    auth: AuthEndpoint
    rest: RestClient
    user_id: str
    observations: dict[str, Any] = field(default_factory=dict)
    """Facts besides the state changes that must match between the clients."""


ScenarioRun = Callable[[ScenarioContext], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    run: ScenarioRun
    expected: list[str]
    """The state changes of pusher-js 8.6.0, "previous->current"."""
    expected_observations: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    """An app key to connect with in place of the server's."""


# Building blocks


async def connect(context: ScenarioContext) -> None:
    await context.client.connect()
    await context.client.wait_state("connected", timeout=STATE_TIMEOUT)


async def disconnect(context: ScenarioContext) -> None:
    await context.client.disconnect()
    await context.client.wait_state("disconnected", timeout=STATE_TIMEOUT)


async def settle() -> None:
    """Leave time for any state change that should not happen."""
    await asyncio.sleep(SETTLE_TIME)


def reconnects_after(fault: ScenarioRun, timeout: float = STATE_TIMEOUT) -> ScenarioRun:
    """Connect, apply `fault`, wait for the reconnection, then disconnect."""

    async def run(context: ScenarioContext) -> None:
        await connect(context)
        await fault(context)
        await context.client.wait_state("connected", timeout=timeout)
        await disconnect(context)

    return run


def stops_after(fault: ScenarioRun) -> ScenarioRun:
    """Connect, apply `fault`, wait for `disconnected`, and watch for a retry."""

    async def run(context: ScenarioContext) -> None:
        await connect(context)
        await fault(context)
        await context.client.wait_state("disconnected", timeout=STATE_TIMEOUT)
        await settle()
        context.observations["connections"] = len(context.proxy.links)

    return run


# Faults


def close_with(code: int) -> ScenarioRun:
    async def fault(context: ScenarioContext) -> None:
        await context.proxy.latest.inject_close(code, f"closed with {code} by the test")

    return fault


def drop_tcp(*, reset: bool) -> ScenarioRun:
    async def fault(context: ScenarioContext) -> None:
        context.proxy.latest.drop(reset=reset)

    return fault


async def go_silent(context: ScenarioContext) -> None:
    context.proxy.latest.go_silent()


async def terminate_user(context: ScenarioContext) -> None:
    """Sign in, then have the app terminate the user's connections over HTTP."""
    await context.client.signin()
    await context.client.wait_signin(timeout=STATE_TIMEOUT)
    await context.rest.terminate_user_connections(context.user_id)


# Scenarios


async def connect_and_disconnect(context: ScenarioContext) -> None:
    await connect(context)
    await disconnect(context)


async def error_frame_keeps_connection(context: ScenarioContext) -> None:
    """A `pusher:error` 4301 frame on an open connection changes no state."""
    await connect(context)
    error = {
        "event": "pusher:error",
        "data": {"code": 4301, "message": "Client event rejected: rate limit"},
    }
    await context.proxy.latest.inject_text(error)
    await context.client.wait_for(
        "connection error event", lambda r: r["type"] == "error", STATE_TIMEOUT
    )
    await settle()
    await disconnect(context)


async def rejected_unknown_key(context: ScenarioContext) -> None:
    """The server refuses an unknown app key: pusher:error 4001, close 4001."""
    await context.client.connect()
    await context.client.wait_state("disconnected", timeout=STATE_TIMEOUT)
    await settle()
    context.observations["connections"] = len(context.proxy.links)


async def unreachable_at_start(context: ScenarioContext) -> None:
    """Refused TCP connections until `unavailable`, then the server comes up."""
    await context.proxy.stop_listening()
    await context.client.connect()
    await context.client.wait_state("unavailable", timeout=STATE_TIMEOUT)
    await context.proxy.start()
    await context.client.wait_state("connected", timeout=UNREACHABLE_TIMEOUT)
    await disconnect(context)


async def resubscribe_after_drop(context: ScenarioContext) -> None:
    """Every channel is subscribed again, with fresh auth, and sign-in redone."""
    await connect(context)
    for channel in CHANNELS:
        await context.client.subscribe(channel)
    await context.client.signin()
    for channel in CHANNELS:
        outcome = await context.client.wait_subscription(channel, timeout=STATE_TIMEOUT)
        context.observations[f"first {channel}"] = outcome
    await context.client.wait_signin(timeout=STATE_TIMEOUT)

    first = context.proxy.latest
    first_socket_id = socket_id_of(first.to_client)
    first.drop(reset=False)
    await context.client.wait_state("connected", timeout=STATE_TIMEOUT)
    for channel in CHANNELS:
        outcome = await context.client.wait_subscription(channel, timeout=STATE_TIMEOUT)
        context.observations[f"again {channel}"] = outcome
    await context.client.wait_signin(timeout=STATE_TIMEOUT)

    second = context.proxy.latest
    # After signin_success, pusher-js subscribes to the user's own channel.
    user_channel = f"#server-to-user-{context.user_id}"
    await second.wait_message(
        f"subscription_succeeded on {user_channel}",
        lambda message: (
            message.get("event") == "pusher_internal:subscription_succeeded"
            and message.get("channel") == user_channel
        ),
        timeout=STATE_TIMEOUT,
    )
    second_socket_id = socket_id_of(second.to_client)
    context.observations["new socket id"] = second_socket_id != first_socket_id
    context.observations["auth requests on new socket"] = sorted(
        request.get("channel_name", "(sign-in)")
        for request in context.auth.requests
        if request["socket_id"] == second_socket_id
    )
    # Each client signs in as its own user, so the user id is left out.
    context.observations["frames to server on new socket"] = sorted(
        f"{message.get('event')} {channel_of(message)}".replace(context.user_id, "*")
        for message in second.to_server
        if message.get("event") in ("pusher:subscribe", "pusher:signin")
    )
    await disconnect(context)


def socket_id_of(messages: list[dict[str, Any]]) -> str:
    """Return the socket id from a link's `pusher:connection_established`."""
    for message in messages:
        if message.get("event") == "pusher:connection_established":
            return str(json.loads(message["data"])["socket_id"])
    raise AssertionError(f"no pusher:connection_established in {messages}")


def channel_of(message: dict[str, Any]) -> str:
    data = message.get("data")
    if isinstance(data, dict):
        return str(data.get("channel", ""))
    return ""


SUBSCRIBED = "pusher:subscription_succeeded"

SCENARIOS = [
    Scenario("connect-disconnect", connect_and_disconnect, CONNECT + DISCONNECT),
    Scenario(
        "close-4001",
        stops_after(close_with(4001)),
        CONNECT + DISCONNECT,
        {"connections": 1},
    ),
    Scenario(
        "close-4009-terminated",
        stops_after(terminate_user),
        CONNECT + DISCONNECT,
        {"connections": 1},
    ),
    Scenario(
        "close-4301",
        stops_after(close_with(4301)),
        CONNECT + DISCONNECT,
        {"connections": 1},
    ),
    Scenario(
        "unknown-app-key",
        rejected_unknown_key,
        ["initialized->connecting", "connecting->disconnected"],
        {"connections": 1},
        key="no-such-key",
    ),
    Scenario(
        "error-frame-4301",
        error_frame_keeps_connection,
        CONNECT + DISCONNECT,
    ),
    Scenario(
        "close-4100",
        reconnects_after(close_with(4100)),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "close-4200",
        reconnects_after(close_with(4200)),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "close-1000",
        reconnects_after(close_with(1000)),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "tcp-drop-fin",
        reconnects_after(drop_tcp(reset=False)),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "tcp-drop-rst",
        reconnects_after(drop_tcp(reset=True)),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "silent-until-pong-timeout",
        reconnects_after(go_silent, timeout=SILENCE_TIMEOUT),
        CONNECT + RECONNECT + DISCONNECT,
    ),
    Scenario(
        "unreachable-at-start",
        unreachable_at_start,
        [
            "initialized->connecting",
            "connecting->unavailable",
            "unavailable->connected",
            "connected->disconnected",
        ],
    ),
    Scenario(
        "resubscribe-after-drop",
        resubscribe_after_drop,
        CONNECT + RECONNECT + DISCONNECT,
        {
            **{f"first {channel}": SUBSCRIBED for channel in CHANNELS},
            **{f"again {channel}": SUBSCRIBED for channel in CHANNELS},
            "new socket id": True,
            "auth requests on new socket": sorted(
                [PRIVATE_CHANNEL, PRESENCE_CHANNEL, ENCRYPTED_CHANNEL, "(sign-in)"]
            ),
            "frames to server on new socket": sorted(
                [f"pusher:subscribe {channel}" for channel in CHANNELS]
                + ["pusher:signin ", "pusher:subscribe #server-to-user-*"]
            ),
        },
    ),
]
