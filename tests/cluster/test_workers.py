"""`clarion serve --workers N`: worker processes on one port (SO_REUSEPORT)
that share their state through Redis, under one supervisor."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_harness import (
    APP_ID,
    APP_KEY,
    APP_SECRET,
    WAIT_TIMEOUT,
    Cluster,
    Peers,
    RedisServer,
    node_config,
    read_json,
    send_marker,
    trigger,
    unique,
    wait_joined_redis,
)

from server_process import ServerProcess, launch

CLIENTS = 20

STARTED_WORKERS = re.compile(r"Started (\d+) workers: ([\d, ]+)")


def worker_pids(supervisor: ServerProcess) -> list[int]:
    """Return the worker PIDs that the supervisor logged when it started them."""
    match = STARTED_WORKERS.search(supervisor.log_text())
    assert match is not None, supervisor.log_text()
    return [int(pid) for pid in match.group(2).split(",")]


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def supervisor(tmp_path: Path, redis_server: RedisServer) -> Iterator[ServerProcess]:
    """`clarion serve --workers 2 --redis-url URL`, stopped by SIGTERM to the
    supervisor's PID, which stops its workers."""
    args = ("--workers", "2", "--redis-url", redis_server.url)
    server = launch(node_config(tmp_path / "data"), tmp_path, args=args)
    server.app_id, server.key, server.secret = APP_ID, APP_KEY, APP_SECRET
    wait_joined_redis(server, processes=2)
    yield server
    pids = worker_pids(server)
    server.stop()
    for pid in pids:
        if is_alive(pid):
            # A worker that outlived its supervisor: stop it by its own PID.
            os.kill(pid, signal.SIGKILL)


async def test_workers_deliver_once_and_count(
    supervisor: ServerProcess, peers: Peers
) -> None:
    """20 clients over 2 workers each get one event once; the count is 20."""
    channel = unique("workers-")
    cluster = Cluster([supervisor], None)
    clients = [await peers.open(supervisor, f"client {i}") for i in range(CLIENTS)]
    for client in clients:
        await client.subscribe(channel)

    await trigger(cluster.api(0), channel, "broadcast", "to all")
    await send_marker(cluster.api(0), channel, clients)
    counts = []
    for _ in range(6):
        channel_info = await read_json(
            cluster.api(0), f"/channels/{channel}", {"info": "subscription_count"}
        )
        counts.append(channel_info["subscription_count"])

    assert len(worker_pids(supervisor)) == 2
    for client in clients:
        assert client.count(channel, "broadcast") == 1, client.describe()
    assert counts == [CLIENTS] * 6


async def test_supervisor_stops_its_workers(supervisor: ServerProcess) -> None:
    """SIGTERM to the supervisor stops every worker, and it exits with 0."""
    pids = worker_pids(supervisor)
    assert all(is_alive(pid) for pid in pids)

    supervisor.stop()
    survivors = [pid for pid in pids if is_alive(pid)]

    assert supervisor.process.returncode == 0, supervisor.log_text()
    assert survivors == []


def test_workers_without_redis_rejected(tmp_path: Path) -> None:
    """--workers 2 without a Redis URL exits with 2 and names the missing URL."""
    config_path = tmp_path / "plain.toml"
    config_path.write_text(node_config(tmp_path / "data"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    completed = subprocess.run(
        [sys.executable, "-m", "clarion", "serve", "--config", str(config_path)]
        + ["--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=WAIT_TIMEOUT * 2,
        env=env,
        check=False,
    )

    assert completed.returncode == 2, completed.stderr
    assert "redis" in completed.stderr.lower(), completed.stderr
