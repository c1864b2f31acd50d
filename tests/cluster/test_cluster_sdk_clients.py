"""Real client libraries spread over two nodes: pusher-js in Node.js and the
asyncio `clarion.client`, with auth signed by the official Python SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from clarion_e2e import StdlibBackend
from cluster_harness import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    WAIT_TIMEOUT,
    Cluster,
    Peers,
    unique,
)
from interop_harness import AuthEndpoint, PusherJsClient

from clarion.client import ChannelAuthorizationRequest, Client
from server_process import ServerProcess


def app_sdk(node: ServerProcess) -> pusher.Pusher:
    """Return the official Python SDK for the test app, aimed at ``node``."""
    return pusher.Pusher(
        app_id=APP_ID,
        key=APP_KEY,
        secret=APP_SECRET,
        host=node.host,
        port=node.port,
        ssl=False,
        backend=StdlibBackend,
    )


@pytest.fixture
def pusher_js(tmp_path: Path) -> Iterator[Callable[..., PusherJsClient]]:
    """Return a factory of connected pusher-js clients, stopped at the end."""
    clients: list[PusherJsClient] = []

    def start(
        node: ServerProcess, endpoint: AuthEndpoint, user_id: str
    ) -> PusherJsClient:
        options = {
            "port": node.port,
            "key": APP_KEY,
            "authEndpoint": f"{endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{endpoint.base_url}/pusher/user-auth",
            "authParams": {"user_id": user_id, "user_name": user_id.capitalize()},
            "customUserAuthenticator": False,
        }
        number = len(clients) + 1
        client = PusherJsClient(
            f"pusher-js {number} ({user_id})",
            options,
            tmp_path / f"pusher-js-{number}.log",
        )
        clients.append(client)
        client.wait_connected()
        return client

    yield start
    for client in clients:
        client.request_exit()
    for client in clients:
        client.close()


def test_pusher_js_presence_across_nodes(
    start_cluster: Callable[..., Cluster],
    pusher_js: Callable[..., PusherJsClient],
) -> None:
    """pusher-js clients on two nodes see one roster and each other's events."""
    cluster = start_cluster(2)
    endpoint = AuthEndpoint(app_sdk(cluster.node(0)))
    try:
        channel = unique("presence-js-")
        alice = pusher_js(cluster.node(0), endpoint, "alice")
        bob = pusher_js(cluster.node(1), endpoint, "bob")
        alice.subscribe(channel)
        bob.subscribe(channel)
        added = alice.wait_event(channel, "pusher:member_added")
        bob_roster = bob.members(channel)
        bob.trigger(channel, "client-hello", {"from": "bob"})
        hello = alice.wait_event(channel, "client-hello")
        alice_roster = alice.members(channel)
        # Events published on one node reach the others in order, so once the
        # marker from bob's node is in, so is any duplicate of the client event.
        app_sdk(cluster.node(1)).trigger(channel, "marker", {"last": True})
        alice.wait_event(channel, "marker")
    finally:
        endpoint.close()

    assert added["data"]["id"] == "bob"
    assert bob_roster["count"] == 2
    assert alice_roster["count"] == 2
    assert hello["data"] == {"from": "bob"}
    assert len(alice.events(channel, "client-hello")) == 1


async def test_clarion_client_receives_from_other_node(
    start_cluster: Callable[..., Cluster], peers: Peers
) -> None:
    """clarion.client on one node gets an event triggered through another."""
    cluster = start_cluster(2)
    channel = unique("private-sdk-")
    sdk = app_sdk(cluster.node(0))

    def authorize(request: ChannelAuthorizationRequest) -> dict[str, Any]:
        return sdk.authenticate(request.channel_name, request.socket_id)

    received: list[Any] = []
    receiver_node = cluster.node(1)
    client = Client(
        APP_KEY,
        host=receiver_node.host,
        port=receiver_node.port,
        channel_authorizer=authorize,
    )
    try:
        client.connect()
        subscription = client.subscribe(channel)
        subscription.bind("news", lambda data: received.append(data))
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not subscription.subscribed:
                await asyncio.sleep(0.01)
        await asyncio.to_thread(sdk.trigger, channel, "news", {"headline": "rain"})
        async with asyncio.timeout(WAIT_TIMEOUT):
            while not received:
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()

    assert received == [{"headline": "rain"}], json.dumps(received)
