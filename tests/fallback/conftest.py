"""Fixtures for the HTTP fallback tests: one Clarion server per test module,
the Python SDK for its HTTP API, and pusher-js clients over HTTP and over a
WebSocket, all on 127.0.0.1.

Tests on a module's server use unique channel names, so they never see each
other's traffic.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest
from fallback_harness import (
    FALLBACK_CONFIG,
    HERE,
    ScriptClient,
    build_sdk,
    close_sdk,
    closed_port,
)
from interop_harness import AuthEndpoint, PusherJsClient

from server_process import ServerProcess, launch


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One `clarion serve` for the test module, with the default test app."""
    process = launch(FALLBACK_CONFIG, tmp_path_factory.mktemp("fallback-server"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sdk(server: ServerProcess) -> Iterator[pusher.Pusher]:
    """The Python server SDK, pointed at the module's server."""
    client = build_sdk(server)
    yield client
    close_sdk(client)


@pytest.fixture(scope="module")
def auth_endpoint(sdk: pusher.Pusher) -> Iterator[AuthEndpoint]:
    """The app's channel and user auth endpoints, signed by the Python SDK."""
    endpoint = AuthEndpoint(sdk)
    yield endpoint
    endpoint.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a function that appends a random suffix to a channel prefix."""

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def clients() -> Iterator[list[PusherJsClient]]:
    """The clients a test started. Each is asked to exit, then stopped by PID."""
    started: list[PusherJsClient] = []
    yield started
    # Let every child shut down at once before waiting for each.
    for client in started:
        client.request_exit()
    for client in started:
        client.close()


def _auth_params(user_id: str | None) -> dict[str, str]:
    if user_id is None:
        return {}
    return {"user_id": user_id, "user_name": user_id.capitalize()}


@pytest.fixture
def connect_http(
    server: ServerProcess,
    auth_endpoint: AuthEndpoint,
    tmp_path: Path,
    clients: list[PusherJsClient],
) -> Callable[..., ScriptClient]:
    """Return a factory of pusher-js (Node build) clients that may use only
    `transport`, with their WebSocket port closed.

    `user_id` names the user for presence channels (the auth endpoint's
    `user_id` form field). With `wait=False` it returns before the client is connected.
    """
    numbers = itertools.count(1)

    def connect(
        transport: str, user_id: str | None = None, *, wait: bool = True
    ) -> ScriptClient:
        number = next(numbers)
        options = {
            "key": server.key,
            "httpPort": server.port,
            "wsPort": closed_port(),
            "transports": [transport],
            "authEndpoint": f"{auth_endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth_endpoint.base_url}/pusher/user-auth",
            "authParams": _auth_params(user_id),
        }
        client = ScriptClient(
            f"{transport} client {number}",
            HERE / "pusher_js_http.mjs",
            options,
            tmp_path / f"{transport}-{number}.log",
        )
        clients.append(client)
        if wait:
            client.wait_connected()
        return client

    return connect


@pytest.fixture
def connect_ws(
    server: ServerProcess,
    auth_endpoint: AuthEndpoint,
    tmp_path: Path,
    clients: list[PusherJsClient],
) -> Callable[..., PusherJsClient]:
    """Return a factory of pusher-js clients over a WebSocket (the interop driver)."""
    numbers = itertools.count(1)

    def connect(user_id: str | None = None) -> PusherJsClient:
        number = next(numbers)
        options = {
            "port": server.port,
            "key": server.key,
            "authEndpoint": f"{auth_endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth_endpoint.base_url}/pusher/user-auth",
            "authParams": _auth_params(user_id),
            "customUserAuthenticator": False,
        }
        client = PusherJsClient(
            f"ws client {number}", options, tmp_path / f"ws-{number}.log"
        )
        clients.append(client)
        client.wait_connected()
        return client

    return connect
