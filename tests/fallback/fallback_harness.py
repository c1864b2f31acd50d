"""Helpers shared by the HTTP fallback tests: the Python SDK, the HTTP API's
view of a channel, and pusher-js clients in child Node processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pusher

# The pusher-js driver and the auth endpoint live with the interop tests.
TESTS = Path(__file__).resolve().parent.parent
if str(TESTS / "interop") not in sys.path:
    sys.path.insert(0, str(TESTS / "interop"))

from interop_harness import PusherJsClient, node_executable  # noqa: E402

from server_process import ServerProcess, free_port  # noqa: E402

HERE = Path(__file__).resolve().parent

FALLBACK_CONFIG = """
[server]
activity_timeout = 120

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
client_events = true
"""

GRACE_SECONDS = 5.0
"""Seconds the server keeps a session without a receiving request."""
GRACE_MARGIN = 3.0
"""Seconds allowed on top of the grace for the server's cleanup to show."""


def closed_port() -> int:
    """Return a port on 127.0.0.1 that was just bound and closed, so nothing listens."""
    return free_port()


def build_sdk(server: ServerProcess) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host=server.host,
        port=server.port,
        ssl=False,
    )


def close_sdk(sdk: pusher.Pusher) -> None:
    """Close the SDK's pooled HTTP connections (pusher 3.3 has no public close)."""
    for client in (sdk._pusher_client, sdk._authentication_client):
        client.http.session.close()


def channel_occupied(sdk: pusher.Pusher, channel: str) -> bool:
    """Return the channel's `occupied` attribute from the HTTP API."""
    return bool(sdk.channel_info(channel)["occupied"])


class ScriptClient(PusherJsClient):
    """A client in a child `node SCRIPT` that speaks the line protocol of the
    interop harness's pusher-js driver, so every PusherJsClient method works."""

    def __init__(
        self, name: str, script: Path, options: dict[str, Any], log_path: Path
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.records: list[dict[str, Any]] = []
        self.socket_id: str | None = None
        self._exit_requested = False
        self._consumed: set[int] = set()
        self._changed = threading.Condition()
        self._stderr = log_path.open("wb")
        self.process = subprocess.Popen(
            [node_executable(), str(script), json.dumps(options)],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(
            target=self._read_records, name=f"node {name}", daemon=True
        )
        self._reader.start()

    def transports(self) -> list[str | None]:
        """Return the transport of each `connected` state so far, in order."""
        with self._changed:
            return [
                record.get("transport")
                for record in self.records
                if record["type"] == "state" and record["current"] == "connected"
            ]

    def records_of(self, kind: str) -> list[dict[str, Any]]:
        """Return every record of type `kind` so far, consumed or not."""
        with self._changed:
            return [record for record in self.records if record["type"] == kind]
