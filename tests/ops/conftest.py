"""Fixtures for the operations tests: metrics, health and logs of real
`clarion serve` processes on free ports of 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The WebSocket and signed HTTP API clients live with the wire-level tests.
SERVER_TESTS = Path(__file__).resolve().parent.parent / "server"
if str(SERVER_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVER_TESTS))

from ops_helpers import RedisProcess, WebhookReceiver  # noqa: E402


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A fresh redis-server on a free port, stopped when the test ends."""
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on 127.0.0.1, closed when the test ends."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()
