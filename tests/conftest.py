"""Fixtures that run a real Clarion server in a child process on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server_process import ServerProcess, launch

DEFAULT_CONFIG = """
[server]
activity_timeout = 120

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
client_events = true
"""


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Return a factory that starts `clarion serve` with a TOML config text.

    Extra keyword arguments become `CLARION_*` environment variables. Every
    server started here is stopped when the test ends.
    """
    started: list[ServerProcess] = []

    def start(
        config: str | None = DEFAULT_CONFIG,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = launch(config, tmp_path, args=args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A running server with the default test app (client events on)."""
    return start_server()
