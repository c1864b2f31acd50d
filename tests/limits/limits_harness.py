"""Apps, config text and helpers shared by the per-app limit tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarion_e2e import ApiClient, Frame, WireClient, channel_auth, compact
from cluster_harness import RedisServer

from server_process import ServerProcess


@dataclass(frozen=True)
class LimitApp:
    """A test app and the limit lines of its ``[[apps]]`` table."""

    app_id: str
    key: str
    secret: str
    settings: str = ""
    """TOML lines that set the app's limits and switches."""


QUOTA_APP = LimitApp("11", "quota-key", "quota-secret", "max_connections = 2")
BROWSER_QUOTA_APP = LimitApp(
    "12", "browser-quota-key", "browser-quota-secret", "max_connections = 1"
)
PRESENCE_APP = LimitApp(
    "13",
    "presence-key",
    "presence-secret",
    "max_presence_members = 101\nmax_presence_user_info_bytes = 2048",
)
PAYLOAD_APP = LimitApp(
    "14",
    "payload-key",
    "payload-secret",
    "max_event_bytes = 100\nmax_channels_per_event = 3\nmax_batch_events = 2",
)
API_RATE_APP = LimitApp(
    "15", "api-rate-key", "api-rate-secret", "max_api_requests_per_second = 5"
)
SDK_API_RATE_APP = LimitApp(
    "18", "sdk-rate-key", "sdk-rate-secret", "max_api_requests_per_second = 5"
)
EVENT_RATE_APP = LimitApp(
    "16",
    "event-rate-key",
    "event-rate-secret",
    "max_backend_events_per_second = 5\nmax_channels_per_event = 10",
)
CLIENT_RATE_APP = LimitApp(
    "17",
    "client-rate-key",
    "client-rate-secret",
    "client_events = true\nclient_event_rate = 5",
)
SINGLE_NODE_APPS = (
    QUOTA_APP,
    BROWSER_QUOTA_APP,
    PRESENCE_APP,
    PAYLOAD_APP,
    API_RATE_APP,
    SDK_API_RATE_APP,
    EVENT_RATE_APP,
    CLIENT_RATE_APP,
)

CLUSTER_QUOTA_APP = LimitApp(
    "21", "c-quota-key", "c-quota-secret", "max_connections = 3"
)
CLUSTER_API_RATE_APP = LimitApp(
    "22", "c-api-rate-key", "c-api-rate-secret", "max_api_requests_per_second = 1"
)
CLUSTER_EVENT_RATE_APP = LimitApp(
    "23",
    "c-event-rate-key",
    "c-event-rate-secret",
    "max_backend_events_per_second = 1",
)
CLUSTER_PRESENCE_APP = LimitApp(
    "24", "c-presence-key", "c-presence-secret", "max_presence_members = 2"
)
CLUSTER_APPS = (
    CLUSTER_QUOTA_APP,
    CLUSTER_API_RATE_APP,
    CLUSTER_EVENT_RATE_APP,
    CLUSTER_PRESENCE_APP,
)


def config_text(apps: tuple[LimitApp, ...]) -> str:
    """Return a server config with a ``[server]`` table and one table per app."""
    lines = ["[server]", "activity_timeout = 120", ""]
    for app in apps:
        lines += [
            "[[apps]]",
            f'id = "{app.app_id}"',
            f'key = "{app.key}"',
            f'secret = "{app.secret}"',
            app.settings,
            "",
        ]
    return "\n".join(lines)


def api_client(node: ServerProcess, app: LimitApp) -> ApiClient:
    return ApiClient(node.host, node.port, app.app_id, app.key, app.secret)


def ws_url(node: ServerProcess, app: LimitApp) -> str:
    return f"ws://{node.host}:{node.port}/app/{app.key}?protocol=7&client=limits-test"


async def join_presence(
    client: WireClient, app: LimitApp, channel: str, user_id: str, user_info: Any
) -> Frame:
    """Send a signed presence subscribe and return the server's reply to it."""
    assert client.socket_id is not None
    channel_data = compact({"user_id": user_id, "user_info": user_info})
    auth = channel_auth(app.key, app.secret, client.socket_id, channel, channel_data)
    await client.send_json(
        {
            "event": "pusher:subscribe",
            "data": {"channel": channel, "auth": auth, "channel_data": channel_data},
        }
    )
    return await client.recv_frame()


@dataclass
class TwoNodes:
    """Two nodes that share one redis-server."""

    nodes: tuple[ServerProcess, ServerProcess]
    redis: RedisServer

    def logs(self) -> str:
        return "\n".join(
            f"--- node on port {node.port} ---\n{node.log_text()[-6000:]}"
            for node in self.nodes
        )
