"""`clarion serve` start-up failures end with one clear line, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from server_process import ServerProcess


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion", "serve", *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_serve_port_in_use_message(server: ServerProcess) -> None:
    """A taken port exits with status 1 and a message naming the port."""
    result = run_serve("--port", str(server.port))
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1 port {server.port}" in result.stderr
    assert "choose another --port" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_invalid_config_message(tmp_path: Path) -> None:
    """An invalid config file exits with status 2 and names the setting."""
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nport = "6001"\n', encoding="utf-8")
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("clarion: Invalid server.port")
    assert "Traceback" not in result.stderr


def test_serve_dev_app_public_host_rejected() -> None:
    """The public development app is not served beyond loopback by default."""
    result = run_serve("--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "--expose-dev-app" in result.stderr
