"""Fixtures for the cluster tests: redis-server processes on free ports and
Clarion nodes that share them, all on 127.0.0.1 and stopped by PID."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

# The wire-level client and the pusher-js driver live with other test folders.
TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "interop"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from cluster_harness import (  # noqa: E402
    Cluster,
    Peers,
    RedisServer,
    WebhookReceiver,
    launch_node,
    node_config,
)

from server_process import ServerProcess  # noqa: E402


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped when the test ends."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_cluster(
    tmp_path: Path, redis_server: RedisServer
) -> Iterator[Callable[..., Cluster]]:
    """Return a factory that starts ``n`` nodes sharing ``redis_server``.

    ``config`` is a node config text with a ``[server]`` table (see
    ``node_config``), and the factory adds ``redis_url`` to it. Unless
    ``wait_joined`` is false, each node has reached Redis when this returns.
    Every node is stopped when the test ends.
    """
    started: list[ServerProcess] = []

    def start(
        n: int, config: str | None = None, *, wait_joined: bool = True
    ) -> Cluster:
        text = config if config is not None else node_config(tmp_path / "data")
        nodes = []
        for _ in range(n):
            node = launch_node(
                text, tmp_path, redis_server.url, wait_joined=wait_joined
            )
            started.append(node)
            nodes.append(node)
        return Cluster(nodes, redis_server)

    yield start
    for node in started:
        node.stop()


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    """An opener of WebSocket peers whose sockets close when the test ends."""
    opener = Peers()
    yield opener
    await opener.close_all()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1, closed when the test ends."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
    bad = receiver.bad_signatures()
    assert not bad, f"webhooks with a wrong key or signature: {bad}"
