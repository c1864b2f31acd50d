"""Per-app limits as pusher-js 8 sees them in a browser-like client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest
from clarion_launch import ClientOpener, RunningServer
from interop_harness import AuthEndpoint, PusherJsClient
from limits_harness import BROWSER_QUOTA_APP, CLIENT_RATE_APP, LimitApp, ws_url

pytestmark = pytest.mark.interop

BURST = 20
"""Client events sent back to back against a limit of 5 per second."""


@pytest.fixture
def start_pusher_js(
    limits_server: RunningServer, tmp_path: Path
) -> Iterator[Callable[[LimitApp], PusherJsClient]]:
    """Return a factory of pusher-js clients for an app of the limits server,
    authorized by an auth endpoint that signs with the app's secret."""
    clients: list[PusherJsClient] = []
    endpoints: list[AuthEndpoint] = []

    def start(app: LimitApp) -> PusherJsClient:
        sdk = pusher.Pusher(
            app_id=app.app_id,
            key=app.key,
            secret=app.secret,
            host=limits_server.host,
            port=limits_server.port,
            ssl=False,
        )
        endpoint = AuthEndpoint(sdk)
        endpoints.append(endpoint)
        options = {
            "port": limits_server.port,
            "key": app.key,
            "authEndpoint": f"{endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{endpoint.base_url}/pusher/user-auth",
            "authParams": {},
        }
        number = len(clients) + 1
        client = PusherJsClient(
            f"pusher-js {number}", options, tmp_path / f"pusher-js-{number}.log"
        )
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.request_exit()
    for client in clients:
        client.close()
    for endpoint in endpoints:
        endpoint.close()


async def test_pusher_js_over_quota_ends_disconnected(
    limits_server: RunningServer,
    clients: ClientOpener,
    start_pusher_js: Callable[[LimitApp], PusherJsClient],
) -> None:
    """pusher-js refused with 4004 stops in `disconnected` and does not retry,
    as it does for every close code from 4000 to 4099."""
    await clients.established(ws_url(limits_server, BROWSER_QUOTA_APP))

    client = start_pusher_js(BROWSER_QUOTA_APP)
    client.wait_state("disconnected")

    assert 4004 in client.error_codes(), client.describe()
    assert "connected" not in client.states(), client.describe()


def test_pusher_js_client_events_over_rate(
    start_pusher_js: Callable[[LimitApp], PusherJsClient],
) -> None:
    """pusher-js sending client events over client_event_rate gets an `error`
    with code 4301 and stays connected."""
    client = start_pusher_js(CLIENT_RATE_APP)
    client.wait_connected()
    client.subscribe("private-browser")

    for i in range(BURST):
        client.trigger("private-browser", "client-note", {"n": i})
    client.wait_error(4301)
    client.subscribe("after-the-burst")

    assert client.states()[-1] == "connected", client.describe()
