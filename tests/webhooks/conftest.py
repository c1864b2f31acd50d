"""Fixtures for the webhook tests: receivers, clients and the Python SDK, each
stopped when the test ends."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest
from webhook_harness import (
    APP,
    OTHER_APP,
    AppSpec,
    RawClient,
    WebhookReceiver,
    build_sdk,
    close_sdk,
)

from server_process import ServerProcess

# The pusher-js driver lives with the interop tests; import it from there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from interop_harness import AuthEndpoint, PusherJsClient  # noqa: E402


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., WebhookReceiver]]:
    """Return a factory of started receivers that verify requests for `apps`
    (default: APP and OTHER_APP). Each is closed when the test ends, and the
    test fails if any request had an unknown key or a wrong signature."""
    receivers: list[WebhookReceiver] = []

    def make(
        apps: tuple[AppSpec, ...] = (APP, OTHER_APP), *, listening: bool = True
    ) -> WebhookReceiver:
        receiver = WebhookReceiver({app.key: app.secret for app in apps})
        receivers.append(receiver)
        if listening:
            receiver.start()
        return receiver

    yield make
    for receiver in receivers:
        receiver.close()
    for receiver in receivers:
        unverified = receiver.unverified()
        assert not unverified, (
            f"receiver on port {receiver.port} got requests with an unknown "
            f"X-Pusher-Key or a wrong X-Pusher-Signature\n{receiver.describe()}"
        )


@pytest.fixture
def receiver(make_receiver: Callable[..., WebhookReceiver]) -> WebhookReceiver:
    """A receiver on 127.0.0.1 that responds 200 until the test changes it."""
    return make_receiver()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The server's data directory, kept across restarts within one test."""
    return tmp_path / "data"


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawClient]]:
    """Return a factory of raw WebSocket clients, closed when the test ends."""
    clients: list[RawClient] = []

    def open_client(server: ServerProcess, app: AppSpec = APP) -> RawClient:
        client = RawClient(server, app)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def http_api() -> Iterator[Callable[..., pusher.Pusher]]:
    """Return a factory of Python SDK clients for a server's app."""
    sdks: list[pusher.Pusher] = []

    def make(server: ServerProcess, app: AppSpec = APP) -> pusher.Pusher:
        sdk = build_sdk(server, app)
        sdks.append(sdk)
        return sdk

    yield make
    for sdk in sdks:
        close_sdk(sdk)


@pytest.fixture
def pusher_js(tmp_path: Path) -> Iterator[Callable[..., PusherJsClient]]:
    """Return a factory of connected pusher-js clients.

    `user_id` names the client's user to the app's auth endpoint, which
    presence channels and sign-in need. Clients, and the auth endpoint
    of each server, stop when the test ends.
    """
    clients: list[PusherJsClient] = []
    endpoints: dict[tuple[int, str], AuthEndpoint] = {}
    """Auth endpoint per server port and app key."""
    sdks: list[pusher.Pusher] = []
    numbers = itertools.count(1)

    def start(
        server: ServerProcess,
        user_id: str | None = None,
        *,
        app: AppSpec = APP,
        wait: bool = True,
    ) -> PusherJsClient:
        endpoint = endpoints.get((server.port, app.key))
        if endpoint is None:
            sdk = build_sdk(server, app)
            sdks.append(sdk)
            endpoint = endpoints[(server.port, app.key)] = AuthEndpoint(sdk)
        number = next(numbers)
        params = {} if user_id is None else {"user_id": user_id}
        options = {
            "port": server.port,
            "key": app.key,
            "authEndpoint": f"{endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{endpoint.base_url}/pusher/user-auth",
            "authParams": params,
            "customUserAuthenticator": False,
        }
        name = f"pusher-js {number}" + (f" ({user_id})" if user_id else "")
        client = PusherJsClient(name, options, tmp_path / f"pusher-js-{number}.log")
        clients.append(client)
        if wait:
            client.wait_connected()
        return client

    yield start
    for client in clients:
        client.request_exit()
    for client in clients:
        client.close()
    for endpoint in endpoints.values():
        endpoint.close()
    for sdk in sdks:
        close_sdk(sdk)
