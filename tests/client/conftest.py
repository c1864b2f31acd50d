"""Fixtures for the client tests: a Clarion server, the official SDK, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pusher
import pytest
from client_helpers import MASTER_KEY_BASE64, SdkAuth

from clarion.client import Client
from server_process import ServerProcess

CLIENT_TEST_CONFIG = """
[server]
activity_timeout = 120

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
client_events = true
subscription_count_events = true
"""


@pytest.fixture
def clarion(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server whose app has client events and subscription counts on."""
    return start_server(CLIENT_TEST_CONFIG)


@pytest.fixture
def sdk(clarion: ServerProcess) -> pusher.Pusher:
    """The official Python server SDK, pointed at the test server."""
    return pusher.Pusher(
        app_id=clarion.app_id,
        key=clarion.key,
        secret=clarion.secret,
        host=clarion.host,
        port=clarion.port,
        ssl=False,
        encryption_master_key_base64=MASTER_KEY_BASE64,
    )


@pytest.fixture
async def make_client(
    clarion: ServerProcess, sdk: pusher.Pusher
) -> AsyncIterator[Callable[..., tuple[Client, SdkAuth]]]:
    """Return a factory of clients with SDK-backed auth; all close at the end."""
    clients: list[Client] = []

    def make(
        user_id: str = "user-1", user_info: Any = None, **options: Any
    ) -> tuple[Client, SdkAuth]:
        auth = SdkAuth(sdk, user_id, user_info)
        settings: dict[str, Any] = {
            "host": clarion.host,
            "port": clarion.port,
            "channel_authorizer": auth.authorize,
            "user_authenticator": auth.authenticate,
        }
        settings.update(options)
        client = Client(clarion.key, **settings)
        clients.append(client)
        return client, auth

    yield make
    for client in clients:
        await client.aclose()
