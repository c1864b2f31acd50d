"""A rolling deploy on one port: two `clarion serve` nodes share the port with
SO_REUSEPORT and a real redis-server. pusher-js clients connected to node A
move to node B when A drains, resubscribe there, and get later events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from cluster_harness import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    RedisServer,
    node_config,
    wait_joined_redis,
    with_redis_url,
)
from drain_helpers import send_signal, wait_exit
from interop_harness import AuthEndpoint, PusherJsClient, pusher_error_code

from server_process import ServerProcess, free_port, launch

pytestmark = pytest.mark.interop

CLIENTS = 4
DRAIN_SECONDS = 2
RECONNECT_TIMEOUT = DRAIN_SECONDS + 10.0
"""Seconds a client may take to be connected again: the drain window plus the
usual wait on loopback."""
PUBLIC = "drain-news"
PRESENCE = "presence-drain-room"


@pytest.fixture
def nodes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for node in started:
        node.stop()


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[pusher.Pusher]:
    """The official Python SDK, aimed at the shared port once it is chosen."""
    client = pusher.Pusher(
        app_id=APP_ID,
        key=APP_KEY,
        secret=APP_SECRET,
        host="127.0.0.1",
        port=free_port(),
        ssl=False,
    )
    yield client
    client._pusher_client.http.session.close()


@pytest.fixture
def auth_endpoint(sdk: pusher.Pusher) -> Iterator[AuthEndpoint]:
    endpoint = AuthEndpoint(sdk)
    yield endpoint
    endpoint.close()


@pytest.fixture
def clients() -> Iterator[list[PusherJsClient]]:
    started: list[PusherJsClient] = []
    yield started
    for client in started:
        client.request_exit()
    for client in started:
        client.close()


def start_node(
    tmp_path: Path, redis_url: str, port: int, nodes: list[ServerProcess], drain: int
) -> ServerProcess:
    # Each node gets its own directory, because the log file is named after
    # the port, which the nodes share.
    directory = tmp_path / f"node-{len(nodes)}"
    directory.mkdir()
    config = with_redis_url(node_config(tmp_path / "data"), redis_url)
    env = {"CLARION_REUSE_PORT": "true", "CLARION_DRAIN_SECONDS": str(drain)}
    node = launch(config, directory, env=env, port=port)
    node.app_id, node.key, node.secret = APP_ID, APP_KEY, APP_SECRET
    nodes.append(node)
    wait_joined_redis(node)
    return node


def wait_reconnected(client: PusherJsClient) -> str:
    record = client.wait_for(
        "connected again",
        lambda r: r["type"] == "state" and r["current"] == "connected",
        RECONNECT_TIMEOUT,
    )
    return str(record["socket_id"])


def wait_resubscribed(client: PusherJsClient, channel: str) -> dict[str, Any]:
    return client.wait_for(
        f"subscribed again to {channel}",
        lambda r: (
            r["type"] == "event"
            and r["channel"] == channel
            and r["event"] == "pusher:subscription_succeeded"
        ),
        RECONNECT_TIMEOUT,
    )


def test_drain_moves_pusher_js_to_other_node(
    tmp_path: Path,
    redis_server: RedisServer,
    nodes: list[ServerProcess],
    sdk: pusher.Pusher,
    auth_endpoint: AuthEndpoint,
    clients: list[PusherJsClient],
) -> None:
    """Every client reconnects to node B, is in both channels again, and
    receives an event triggered through the HTTP API after the drain."""
    port = sdk._pusher_client.port
    node_a = start_node(tmp_path, redis_server.url, port, nodes, DRAIN_SECONDS)
    for index in range(CLIENTS):
        user_id = f"user-{index}"
        options = {
            "port": port,
            "key": APP_KEY,
            "authEndpoint": f"{auth_endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth_endpoint.base_url}/pusher/user-auth",
            "authParams": {"user_id": user_id, "user_name": user_id},
        }
        log_path = tmp_path / f"pusher-js-{index}.log"
        clients.append(PusherJsClient(user_id, options, log_path))
    first_ids = [client.wait_connected() for client in clients]
    for client in clients:
        client.subscribe(PUBLIC)
        client.subscribe(PRESENCE)
    # B starts only now, so every client is on A.
    node_b = start_node(tmp_path, redis_server.url, port, nodes, 0)

    send_signal(node_a)
    new_ids = [wait_reconnected(client) for client in clients]
    for client in clients:
        wait_resubscribed(client, PUBLIC)
        wait_resubscribed(client, PRESENCE)
    exit_code = wait_exit(node_a, RECONNECT_TIMEOUT)

    assert exit_code == 0, node_a.log_text()[-4000:]
    node_a_log = node_a.log_text()
    node_b_log = node_b.log_text()
    for client, first_id, new_id in zip(clients, first_ids, new_ids, strict=True):
        assert f"Connection {first_id} opened" in node_a_log
        assert f"Connection {new_id} opened" in node_b_log, client.describe()
        codes = [
            pusher_error_code(record)
            for record in client.records
            if record["type"] == "error"
        ]
        # pusher-js reports the pusher:error and the close frame separately.
        assert codes, client.describe()
        assert set(codes) == {4200}, client.describe()
    # A's members left and B's joined: the roster is exactly the clients.
    users = sdk.users_info(PRESENCE)["users"]
    assert sorted(user["id"] for user in users) == [
        f"user-{index}" for index in range(CLIENTS)
    ]

    sdk.trigger(PUBLIC, "after-drain", {"deploy": "done"})
    for client in clients:
        record = client.wait_event(PUBLIC, "after-drain")
        assert record["data"] == {"deploy": "done"}
