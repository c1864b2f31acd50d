"""Server launching and app credentials shared by the wire-level tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clarion_e2e import ApiClient, WireClient, open_established, open_socket

from server_process import ServerProcess, launch


@dataclass(frozen=True)
class AppCredentials:
    """The id, key and secret of one app in a server config."""

    app_id: str
    key: str
    secret: str


DEFAULT_APP = AppCredentials("1", "app-key", "app-secret")
DISABLED_APP = AppCredentials("2", "disabled-key", "disabled-secret")
NO_CLIENT_EVENTS_APP = AppCredentials("3", "quiet-key", "quiet-secret")
QUOTA_APP = AppCredentials("4", "quota-key", "quota-secret")
SMALL_LIMITS_APP = AppCredentials("5", "small-key", "small-secret")
OTHER_APP = AppCredentials("6", "other-key", "other-secret")
COUNTS_APP = AppCredentials("7", "counts-key", "counts-secret")
NO_WATCHLIST_APP = AppCredentials("8", "unwatched-key", "unwatched-secret")
USER_LIMITS_APP = AppCredentials("9", "user-limits-key", "user-limits-secret")

SHARED_CONFIG = f"""
[server]
activity_timeout = 120

[[apps]]
id = "{DEFAULT_APP.app_id}"
key = "{DEFAULT_APP.key}"
secret = "{DEFAULT_APP.secret}"
client_events = true

[[apps]]
id = "{DISABLED_APP.app_id}"
key = "{DISABLED_APP.key}"
secret = "{DISABLED_APP.secret}"
enabled = false
client_events = true

[[apps]]
id = "{NO_CLIENT_EVENTS_APP.app_id}"
key = "{NO_CLIENT_EVENTS_APP.key}"
secret = "{NO_CLIENT_EVENTS_APP.secret}"
client_events = false

[[apps]]
id = "{QUOTA_APP.app_id}"
key = "{QUOTA_APP.key}"
secret = "{QUOTA_APP.secret}"
max_connections = 1

[[apps]]
id = "{SMALL_LIMITS_APP.app_id}"
key = "{SMALL_LIMITS_APP.key}"
secret = "{SMALL_LIMITS_APP.secret}"
client_events = true
client_event_rate = 3
max_presence_members = 2
max_channel_name_length = 20
max_event_bytes = 100
max_channels_per_event = 2
max_batch_events = 2

[[apps]]
id = "{OTHER_APP.app_id}"
key = "{OTHER_APP.key}"
secret = "{OTHER_APP.secret}"
client_events = true

[[apps]]
id = "{COUNTS_APP.app_id}"
key = "{COUNTS_APP.key}"
secret = "{COUNTS_APP.secret}"
client_events = true
subscription_count_events = true

[[apps]]
id = "{NO_WATCHLIST_APP.app_id}"
key = "{NO_WATCHLIST_APP.key}"
secret = "{NO_WATCHLIST_APP.secret}"
watchlist_events = false

[[apps]]
id = "{USER_LIMITS_APP.app_id}"
key = "{USER_LIMITS_APP.key}"
secret = "{USER_LIMITS_APP.secret}"
max_watchlist_size = 3
max_presence_user_info_bytes = 64
"""


class RunningServer(ServerProcess):
    """A `clarion serve` child process with helpers for the wire-level tests."""

    def ws_url(  # type: ignore[override]
        self, key: str = DEFAULT_APP.key, query: str = "protocol=7"
    ) -> str:
        suffix = f"?{query}" if query else ""
        return f"ws://{self.host}:{self.port}/app/{key}{suffix}"

    def api(self, app: AppCredentials = DEFAULT_APP) -> ApiClient:
        return ApiClient(self.host, self.port, app.app_id, app.key, app.secret)

    def log_size(self) -> int:
        return self.log_path.stat().st_size


def launch_server(config: str, directory: Path) -> RunningServer:
    """Start `clarion serve` with a config text and wait until it listens."""
    server = launch(config, directory)
    return RunningServer(server.process, server.host, server.port, server.log_path)


class ClientOpener:
    """Opens WebSocket clients and remembers them so teardown closes them."""

    def __init__(self) -> None:
        self.opened: list[WireClient] = []

    async def established(self, url: str) -> WireClient:
        client = await open_established(url)
        self.opened.append(client)
        return client

    async def raw(self, url: str) -> WireClient:
        client = await open_socket(url)
        self.opened.append(client)
        return client

    async def close_all(self) -> None:
        for client in self.opened:
            await client.close()
