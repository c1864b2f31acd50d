"""Running a real `clarion serve` child process for tests, and reaching it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A `clarion serve` child process and where to reach it."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    app_id: str = "1"
    key: str = "app-key"
    secret: str = "app-secret"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/app/{self.key}?protocol=7&client=test"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the child by its PID: SIGTERM, then SIGKILL after 5 s."""
        if self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def wait_for_port(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"clarion serve exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"clarion serve did not listen on {host}:{port} within 15 s")


def launch(
    config: str | None,
    directory: Path,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> ServerProcess:
    """Start `clarion serve` on ``port`` (default: a free port) with a TOML
    config text and wait until it listens. Its log, at DEBUG level, goes to a
    file in ``directory`` named after the port.

    ``env`` adds ``CLARION_*`` variables; those of the test process are dropped.
    The server closes its connections at once when stopped (``drain_seconds``
    0) unless ``env`` sets ``CLARION_DRAIN_SECONDS``, so that stopping a server
    with clients still connected does not wait for a drain window.
    """
    port = port or free_port()
    command = [sys.executable, "-m", "clarion", "serve", "--port", str(port)]
    if config is not None:
        config_path = directory / f"clarion-{port}.toml"
        config_path.write_text(config, encoding="utf-8")
        command += ["--config", str(config_path)]
    command += list(args)
    child_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CLARION_")
    }
    child_env["CLARION_LOG_LEVEL"] = "DEBUG"
    child_env["CLARION_DRAIN_SECONDS"] = "0"
    child_env.update(env or {})
    log_path = directory / f"clarion-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=child_env
        )
    server = ServerProcess(process, "127.0.0.1", port, log_path)
    try:
        wait_for_port(server.host, port, process)
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n{server.log_text()}") from None
    return server
