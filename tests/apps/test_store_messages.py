"""Messages about the app store: never a password, and clear words for the
mistakes a new user makes."""

from __future__ import annotations

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
    """The server's log of a failed read holds no password, in either format."""
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
