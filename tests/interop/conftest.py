"""Fixtures for the interop tests: the Python SDK, the auth endpoint, pusher-js
clients and the Node SDK, all aimed at one `clarion serve` on 127.0.0.1."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest
from interop_harness import (
    ENCRYPTION_MASTER_KEY_BASE64,
    AuthEndpoint,
    PusherJsClient,
    Record,
    run_node_sdk,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "server_config(text): run the test's `server` with this TOML config text",
    )


@pytest.fixture
def server(start_server: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    """A running server: the default test app, or the config text given by the
    test's `server_config` marker."""
    marker = request.node.get_closest_marker("server_config")
    if marker is None:
        return start_server()
    return start_server(marker.args[0])


def build_python_sdk(server: Any, **overrides: Any) -> pusher.Pusher:
    """Return a Python SDK client for `server`, with `overrides` applied."""
    arguments: dict[str, Any] = {
        "app_id": server.app_id,
        "key": server.key,
        "secret": server.secret,
        "host": server.host,
        "port": server.port,
        "ssl": False,
        "encryption_master_key_base64": ENCRYPTION_MASTER_KEY_BASE64,
    }
    arguments.update(overrides)
    return pusher.Pusher(**arguments)


def close_python_sdk(sdk: pusher.Pusher) -> None:
    """Close the SDK's pooled HTTP connections (it has no public close)."""
    for client in (sdk._pusher_client, sdk._authentication_client):
        client.http.session.close()


@pytest.fixture
def make_python_sdk(server: Any) -> Iterator[Callable[..., pusher.Pusher]]:
    """Return a factory of Python SDK clients for the test's server."""
    made: list[pusher.Pusher] = []

    def make(**overrides: Any) -> pusher.Pusher:
        sdk = build_python_sdk(server, **overrides)
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        close_python_sdk(sdk)


@pytest.fixture
def python_sdk(make_python_sdk: Callable[..., pusher.Pusher]) -> pusher.Pusher:
    """The Python SDK with the app's real credentials."""
    return make_python_sdk()


@pytest.fixture
def auth_endpoint(python_sdk: pusher.Pusher) -> Iterator[AuthEndpoint]:
    """The app's channel and user auth endpoints, signed by the Python SDK."""
    endpoint = AuthEndpoint(python_sdk)
    yield endpoint
    endpoint.close()


@pytest.fixture
def connect_client(
    server: Any, auth_endpoint: AuthEndpoint, tmp_path: Path
) -> Iterator[Callable[..., PusherJsClient]]:
    """Return a factory that starts pusher-js clients and waits for `connected`.

    `user_id` and `user_name` tell the auth endpoint who the client's user
    is (the name defaults to the capitalized id, so "alice" is "Alice").
    `auth_params` adds form fields for the auth endpoints (see AuthEndpoint),
    `custom_user_authenticator=True` signs in through pusher-js's
    `customHandler` option in place of its built-in request. `key` overrides
    the app key, `auth` the auth endpoints, and `wait=False` returns at once.
    """
    clients: list[PusherJsClient] = []
    numbers = itertools.count(1)

    def connect(
        user_id: str | None = None,
        *,
        user_name: str | None = None,
        key: str | None = None,
        auth: AuthEndpoint | None = None,
        auth_params: dict[str, str] | None = None,
        custom_user_authenticator: bool = False,
        wait: bool = True,
    ) -> PusherJsClient:
        number = next(numbers)
        name = f"client {number}" + (f" ({user_id})" if user_id else "")
        params = {}
        if user_id is not None:
            params["user_id"] = user_id
            params["user_name"] = user_name or user_id.capitalize()
        params.update(auth_params or {})
        auth_base_url = (auth or auth_endpoint).base_url
        options = {
            "port": server.port,
            "key": key or server.key,
            "authEndpoint": f"{auth_base_url}/pusher/auth",
            "userAuthEndpoint": f"{auth_base_url}/pusher/user-auth",
            "authParams": params,
            "customUserAuthenticator": custom_user_authenticator,
        }
        client = PusherJsClient(name, options, tmp_path / f"pusher-js-{number}.log")
        clients.append(client)
        if wait:
            client.wait_connected()
        return client

    yield connect
    # Let every child shut down at once before waiting for each.
    for client in clients:
        client.request_exit()
    for client in clients:
        client.close()


@pytest.fixture
def connect_clients(
    connect_client: Callable[..., PusherJsClient],
) -> Callable[..., tuple[PusherJsClient, ...]]:
    """Return a function that starts one client per user id in parallel.

    It waits until all of them are `connected`. `None` is a client with no user.
    """

    def connect(*user_ids: str | None) -> tuple[PusherJsClient, ...]:
        clients = tuple(connect_client(user_id, wait=False) for user_id in user_ids)
        for client in clients:
            client.wait_connected()
        return clients

    return connect


@pytest.fixture
def node_sdk(server: Any) -> Callable[..., Record]:
    """Return a function that makes one call with the Node SDK.

    Call it as `node_sdk(method=..., ...)`. `clock_skew_seconds` shifts the
    clock the SDK signs with, and `secret` replaces the app secret.
    """
    config = {
        "appId": server.app_id,
        "key": server.key,
        "secret": server.secret,
        "port": server.port,
        "encryptionMasterKeyBase64": ENCRYPTION_MASTER_KEY_BASE64,
    }

    def call(
        *, clock_skew_seconds: int = 0, secret: str | None = None, **fields: Any
    ) -> Record:
        call_config = dict(config, secret=secret or server.secret)
        return run_node_sdk(call_config, fields, clock_skew_seconds=clock_skew_seconds)

    return call


@pytest.fixture
def send_marker(
    python_sdk: pusher.Pusher,
) -> Callable[..., None]:
    """Return a function that proves earlier deliveries are complete.

    It triggers a unique `marker` event on a channel and waits until every
    given client has it. The server writes each connection's frames in
    order, so any event it sent a client before the marker is in that
    client's records once the marker is. That makes "never received" checks
    exact without sleeping.
    """
    numbers = itertools.count(1)

    def send(channel: str, *clients: PusherJsClient) -> None:
        marker = {"marker": next(numbers)}
        python_sdk.trigger(channel, "marker", marker)
        for client in clients:
            client.wait_for(
                f"marker {marker} on {channel}",
                lambda r: (
                    r["type"] == "event"
                    and r["channel"] == channel
                    and r["event"] == "marker"
                    and r["data"] == marker
                ),
            )

    return send
