"""pusher-js through a secret rotation: backends that sign with the old or the
new secret both authorize its subscriptions until the old one is retired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pusher
import pusher.errors
import pytest
from clarion_e2e import StdlibBackend
from interop_harness import AuthEndpoint, PusherJsClient
from store_harness import SEEN_TIMEOUT, StoreTarget

from server_process import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


def sdk(server: ServerProcess, app: dict[str, str], secret: str) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=app["id"],
        key=app["key"],
        secret=secret,
        host="127.0.0.1",
        port=server.port,
        ssl=False,
        backend=StdlibBackend,
    )


def accepts(client: pusher.Pusher) -> bool:
    """Return whether the server accepts the SDK's signature on a trigger."""
    try:
        client.trigger("accepts-probe", "probe", {})
    except pusher.errors.PusherBadAuth:
        return False
    return True


def wait_accepts(client: pusher.Pusher, expected: bool) -> None:
    deadline = time.monotonic() + SEEN_TIMEOUT
    while accepts(client) is not expected:
        assert time.monotonic() < deadline, f"signature accepted is not {expected}"
        time.sleep(0.05)


@pytest.fixture
def clients() -> Iterator[list[PusherJsClient]]:
    started: list[PusherJsClient] = []
    yield started
    for client in started:
        client.request_exit()
    for client in started:
        client.close()


def test_pusher_js_through_rotation(
    sqlite_store: StoreTarget, clients: list[PusherJsClient], tmp_path: Path
) -> None:
    """Both backends authorize pusher-js during the rotation; after the
    retirement the old one gets AuthError 401."""
    app = sqlite_store.create()
    server = sqlite_store.serve()
    old_sdk = sdk(server, app, app["secret"])
    new = sqlite_store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    new_sdk = sdk(server, app, new)
    wait_accepts(new_sdk, True)

    endpoints = {"old": AuthEndpoint(old_sdk), "new": AuthEndpoint(new_sdk)}
    try:
        for name, endpoint in endpoints.items():
            client = PusherJsClient(
                f"{name} backend",
                {
                    "port": server.port,
                    "key": app["key"],
                    "authEndpoint": f"{endpoint.base_url}/pusher/auth",
                    "userAuthEndpoint": f"{endpoint.base_url}/pusher/user-auth",
                    "authParams": {},
                },
                tmp_path / f"pusher-js-{name}.log",
            )
            clients.append(client)
            client.wait_connected()
            client.subscribe("private-rotation", bind=("news",))
        old_sdk.trigger("private-rotation", "news", {"n": 1})
        for client in clients:
            assert client.wait_event("private-rotation", "news")["data"] == {"n": 1}

        assert sqlite_store.cli("retire-secret", app["id"]).returncode == 0
        wait_accepts(old_sdk, False)
        old_client, new_client = clients
        old_client.send("subscribe", channel="private-retired", bind=[])
        error = old_client.wait_event("private-retired", "pusher:subscription_error")
        assert error["data"]["type"] == "AuthError", error
        assert error["data"]["status"] == 401, error
        new_client.subscribe("private-current")
    finally:
        for endpoint in endpoints.values():
            endpoint.close()
