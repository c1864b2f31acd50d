"""Messages about the app store: never a password, and clear words for the
mistakes a new user makes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from store_harness import StoreTarget

from server_process import launch

PASSWORD = "s3cret-pw"
BAD_URLS = [
    pytest.param(f"postgresql://postgres:{PASSWORD}@[::1:7432/clarion", id="ipv6"),
    pytest.param(
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/clarion?sslmode=bogus",
        id="option",
    ),
    pytest.param(
        f"postgresql://postgres@127.0.0.1:1/clarion?password={PASSWORD}&x=1",
        id="query",
    ),
    pytest.param(
        f"postgresql://postgres@127.0.0.1:1/clarion?password={PASSWORD}%zz",
        id="query-bad-escape",
    ),
    pytest.param(
        f"postgresql://postgres@127.0.0.1:1/clarion?sslpassword={PASSWORD}%zz",
        id="sslpassword",
    ),
]
CONFIG = """
[[apps]]
id = "5"
key = "file-key"
secret = "file-secret"
"""


@pytest.mark.parametrize("url", BAD_URLS)
def test_cli_error_hides_password(tmp_path: Path, url: str) -> None:
    """libpq repeats the URL in some errors; the CLI prints it without the
    password."""
    target = StoreTarget("postgresql", tmp_path, {"CLARION_APP_STORE": url})
    result = target.cli("list")
    assert result.returncode == 1
    assert "app store failed" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_server_log_hides_password(tmp_path: Path, log_format: str) -> None:
    """The server's log of a failed read contains no password, in either format."""
    server = launch(
        CONFIG,
        tmp_path,
        env={
            "CLARION_APP_STORE": f"postgresql://postgres:{PASSWORD}@[::1:7432/x",
            "CLARION_LOG_FORMAT": log_format,
        },
    )
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert "Cannot read the app store" in log
    assert PASSWORD not in log


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    """list and show on a mistyped data directory print that the store is
    absent and leave no directory or file behind."""
    typo = tmp_path / "typo"
    target = StoreTarget("sqlite", tmp_path, {"CLARION_DATA_DIR": str(typo)})
    listed = target.cli("list")
    assert listed.returncode == 0
    assert "does not exist" in listed.stdout
    shown = target.cli("show", "5")
    assert shown.returncode == 2
    assert "does not exist" in shown.stderr
    assert not typo.exists()


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    """A data directory that is a regular file is named as the problem."""
    plain = tmp_path / "plain-file"
    plain.write_text("", encoding="utf-8")
    target = StoreTarget("sqlite", tmp_path, {"CLARION_DATA_DIR": str(plain)})
    result = target.cli("create")
    assert result.returncode == 1
    assert "is a file" in result.stderr
    assert "File exists" not in result.stderr


def test_server_says_store_absent(tmp_path: Path) -> None:
    """At start the server logs that the SQLite file does not exist yet."""
    server = launch(CONFIG, tmp_path, env={"CLARION_DATA_DIR": str(tmp_path / "d")})
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert "apps.sqlite3 (absent, so no apps yet)" in log


def test_missing_psycopg_names_both_install_commands(tmp_path: Path) -> None:
    """Without psycopg, a PostgreSQL URL gives the install command for an
    installed package and for a clone."""
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from clarion.cli import main\n"
        "main(['apps', 'list'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env["CLARION_APP_STORE"] = "postgresql://postgres@127.0.0.1:1/clarion"
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert "pip install 'clarion[postgres]'" in completed.stderr
    assert "pip install '.[postgres]'" in completed.stderr
