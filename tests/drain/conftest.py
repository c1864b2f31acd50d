"""Fixtures for the drain tests: `clarion serve` processes stopped with SIGTERM
while clients are connected, on free ports of 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The WebSocket client, the pusher-js driver and the cluster fixtures live with
# other test folders.
TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "interop", "cluster", "ops"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from cluster_harness import RedisServer, WebhookReceiver  # noqa: E402


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped when the test ends."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1, closed when the test ends."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
