"""The systemd unit and the container files of deploy/: the unit passes
`systemd-analyze verify` and waits longer than a drain, and the container's
command with deploy/clarion.toml refuses the development app beyond loopback
but starts with app credentials from the environment."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clarion.server.config import Settings, load_settings
from clarion.server.workers import stop_timeout

REPO = Path(__file__).resolve().parent.parent.parent
UNIT = REPO / "deploy" / "systemd" / "clarion.service"
CONTAINER_CONFIG = REPO / "deploy" / "clarion.toml"
DOCKERFILE = REPO / "Dockerfile"
APP_ENVIRONMENT = {
    "CLARION_APP_ID": "42",
    "CLARION_APP_KEY": "deploy-key",
    "CLARION_APP_SECRET": "deploy-secret",
}


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    return unit


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` reports nothing once ExecStart points at this
    checkout's `clarion`."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    clarion = Path(sys.executable).parent / "clarion"
    text = UNIT.read_text().replace("/opt/clarion/venv/bin/clarion", str(clarion))
    assert str(clarion) in text
    unit = tmp_path / "clarion.service"
    unit.write_text(text)

    result = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_systemd_unit_outlasts_drain() -> None:
    """The unit sends SIGTERM to the main process only and waits longer than
    the supervisor gives its workers with the container settings."""
    service = read_unit()["Service"]
    settings = load_settings(
        flags={"config": str(CONTAINER_CONFIG)}, environ=APP_ENVIRONMENT
    )

    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"
    assert service["User"] != "root"
    assert int(service["TimeoutStopSec"]) > stop_timeout(settings)
    assert int(service["TimeoutStopSec"]) > stop_timeout(Settings())


def test_container_config_takes_app_from_environment() -> None:
    """With CLARION_APP_*, the image's settings serve that app on 0.0.0.0."""
    settings = load_settings(
        flags={"config": str(CONTAINER_CONFIG), "host": "0.0.0.0"},
        environ=APP_ENVIRONMENT,
    )

    assert settings.host == "0.0.0.0"
    assert [app.id for app in settings.apps] == ["42"]
    assert not settings.uses_dev_app
    assert settings.drain_seconds == 10
    assert settings.metrics_port == 9100


def test_container_command_refuses_dev_app() -> None:
    """The image's command, run without app credentials, exits 2 with the
    reason before it opens any socket."""
    command = dockerfile_command()
    assert command[:2] == ["clarion", "serve"]
    assert f"COPY deploy/clarion.toml {command[command.index('--config') + 1]}" in (
        DOCKERFILE.read_text()
    )
    arguments = [
        str(CONTAINER_CONFIG) if value == "/etc/clarion/clarion.toml" else value
        for value in command[2:]
    ]
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CLARION")
    }

    result = subprocess.run(
        [sys.executable, "-m", "clarion", "serve", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "Refusing to listen on 0.0.0.0 with the development app" in result.stderr


def dockerfile_command() -> list[str]:
    """Return the exec-form CMD of the Dockerfile."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")
    ]
    assert len(lines) == 1, lines
    command: list[str] = json.loads(lines[0].removeprefix("CMD "))
    return command


def test_dockerfile_runs_as_non_root() -> None:
    """The image switches to the clarion user before its command."""
    lines = DOCKERFILE.read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["clarion"]
