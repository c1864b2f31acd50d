"""Fixtures that run a real Clarion server in a child process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server_process import ServerProcess, free_port, wait_for_port

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
        port = free_port()
        command = [sys.executable, "-m", "clarion", "serve", "--port", str(port)]
        if config is not None:
            config_path = tmp_path / f"clarion-{port}.toml"
            config_path.write_text(config, encoding="utf-8")
            command += ["--config", str(config_path)]
        command += list(args)
        child_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CLARION_")
        }
        child_env["CLARION_LOG_LEVEL"] = "DEBUG"
        child_env.update(env or {})
        log_path = tmp_path / f"clarion-{port}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=child_env
            )
        server = ServerProcess(process, "127.0.0.1", port, log_path)
        started.append(server)
        wait_for_port(server.host, port, process)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A running server with the default test app (client events on)."""
    return start_server()
