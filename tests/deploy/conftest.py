"""Fixtures for the deployment tests: the files under deploy/ run for real,
with nginx started by the tests on free ports of 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The pusher-js driver and the auth endpoint live with the interop tests, the
# fallback session client with the drain tests, polling with the server tests.
TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "interop", "drain"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from nginx_process import NginxProcess  # noqa: E402


@pytest.fixture
def start_nginx(tmp_path: Path) -> Iterator[Callable[[str], NginxProcess]]:
    """Return a factory that runs nginx with a config text in its own prefix
    directory. Every nginx started here is stopped by PID when the test ends."""
    started: list[NginxProcess] = []

    def start(config: str) -> NginxProcess:
        nginx = NginxProcess(tmp_path / f"nginx-{len(started)}", config)
        started.append(nginx)
        nginx.start()
        return nginx

    yield start
    for nginx in started:
        nginx.stop()
