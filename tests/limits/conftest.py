"""Fixtures for the per-app limit tests: one server with an app per limit, and a
two-node cluster on a real redis-server, built from the cluster test harness."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "cluster", "interop"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from clarion_e2e import ApiClient  # noqa: E402
from clarion_launch import ClientOpener, RunningServer, launch_server  # noqa: E402
from cluster_harness import RedisServer, launch_node  # noqa: E402

from server_process import ServerProcess  # noqa: E402


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
    "22", "c-api-rate-key", "c-api-rate-secret", "max_api_requests_per_second = 2"
)
CLUSTER_EVENT_RATE_APP = LimitApp(
    "23",
    "c-event-rate-key",
    "c-event-rate-secret",
    "max_backend_events_per_second = 2",
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


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module, with an app per limit."""
    server = launch_server(
        config_text(SINGLE_NODE_APPS), tmp_path_factory.mktemp("limits-server")
    )
    yield server
    server.stop()


@dataclass
class TwoNodes:
    nodes: tuple[ServerProcess, ServerProcess]
    redis: RedisServer

    def logs(self) -> str:
        return "\n".join(
            f"--- node on port {node.port} ---\n{node.log_text()[-6000:]}"
            for node in self.nodes
        )


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    """Two nodes sharing one redis-server, both joined, for the module."""
    directory = tmp_path_factory.mktemp("limits-cluster")
    redis = RedisServer(directory)
    redis.start()
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(launch_node(config_text(CLUSTER_APPS), directory, redis.url))
        yield TwoNodes((started[0], started[1]), redis)
    finally:
        for node in started:
            node.stop()
        redis.stop()


@pytest.fixture
async def clients() -> AsyncIterator[ClientOpener]:
    """A WebSocket client opener whose sockets close when the test ends."""
    opener = ClientOpener()
    yield opener
    await opener.close_all()
