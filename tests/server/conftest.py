"""Fixtures for the wire-level server tests.

Most tests share one server process (`shared_server`) whose config contains several
apps, one per special setting, because starting a server per test would cost
most of the suite's time budget. Tests on a shared server use unique channel
names so they never see each other's traffic. Tests that need server-wide
settings or may crash the server start their own through `own_server`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from clarion_e2e import ApiClient
from clarion_launch import (
    SHARED_CONFIG,
    ClientOpener,
    RunningServer,
    launch_server,
)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the whole session, configured with every test app."""
    server = launch_server(SHARED_CONFIG, tmp_path_factory.mktemp("shared-server"))
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[[str], RunningServer]]:
    """Return a factory that starts a private server for one test."""
    started: list[RunningServer] = []

    def start(config: str = SHARED_CONFIG) -> RunningServer:
        server = launch_server(config, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def api(shared_server: RunningServer) -> ApiClient:
    """A signing HTTP client for the default app of the shared server."""
    return shared_server.api()


@pytest.fixture
async def clients() -> AsyncIterator[ClientOpener]:
    """A WebSocket client opener whose sockets close when the test ends."""
    opener = ClientOpener()
    yield opener
    await opener.close_all()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a function that appends a random suffix to a channel prefix."""

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:12]}"

    return make
