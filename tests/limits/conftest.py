"""Fixtures for the per-app limit tests: one server with an app per limit, and a
two-node cluster on a real redis-server, built from the cluster test harness."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "cluster", "interop"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from clarion_launch import ClientOpener, RunningServer, launch_server  # noqa: E402
from cluster_harness import RedisServer, launch_node  # noqa: E402
from limits_harness import (  # noqa: E402
    CLUSTER_APPS,
    SINGLE_NODE_APPS,
    TwoNodes,
    config_text,
)

from server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the module, with an app per limit."""
    server = launch_server(
        config_text(SINGLE_NODE_APPS), tmp_path_factory.mktemp("limits-server")
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    """Two nodes sharing one redis-server, both joined, for the module."""
    directory = tmp_path_factory.mktemp("limits-cluster")
    redis = RedisServer(directory)
    redis.start()
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(launch_node(config_text(CLUSTER_APPS), directory, redis.url))
        yield TwoNodes((started[0], started[1]), redis)
    finally:
        for node in started:
            node.stop()
        redis.stop()


@pytest.fixture
async def clients() -> AsyncIterator[ClientOpener]:
    """A WebSocket client opener whose sockets close when the test ends."""
    opener = ClientOpener()
    yield opener
    await opener.close_all()
