"""/metrics of `clarion serve --workers 2`: any worker reports the totals of
both, from the files in the supervisor's PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clarion_e2e import WireClient, open_established, poll_until
from ops_helpers import WAIT_TIMEOUT, RedisProcess, http_request, scrape, value
from websockets.protocol import State

from server_process import ServerProcess, launch

CLIENTS = 20
SCRAPES = 6
REDIS_PASSWORD = "redis-password-never-logged"

STARTED_WORKERS = re.compile(r"Started (\d+) workers: ([\d, ]+)")
METRICS_DIRECTORY = re.compile(r"Workers keep their metrics in (\S+)")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path, password=REDIS_PASSWORD)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def supervisor(
    tmp_path: Path, redis_with_password: RedisProcess
) -> Iterator[ServerProcess]:
    """`clarion serve --workers 2` on a Redis with a password, stopped by
    SIGTERM to the supervisor's PID; a worker that outlives it is killed by
    its own PID."""
    args = ("--workers", "2", "--redis-url", redis_with_password.url)
    server = launch(None, tmp_path, args=args)
    yield server
    match = STARTED_WORKERS.search(server.log_text())
    server.stop()
    if match is not None:
        for pid in (int(text) for text in match.group(2).split(",")):
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_workers_report_combined_totals(supervisor: ServerProcess) -> None:
    """Every scrape, whichever worker serves it, shows both workers' counts."""
    port = supervisor.port
    started = await poll_until(
        lambda: scrape(port),
        lambda s: value(s, "clarion_processes") == 2,
        WAIT_TIMEOUT,
    )
    clients: list[WireClient] = []
    try:
        for _ in range(CLIENTS):
            clients.append(await open_established(supervisor.ws_url))
        settled = await poll_until(
            lambda: scrape(port),
            lambda s: value(s, "clarion_connections", transport="websocket") == CLIENTS,
            WAIT_TIMEOUT,
        )
        later = [await asyncio.to_thread(scrape, port) for _ in range(SCRAPES)]
    finally:
        for client in clients:
            await client.close()

    assert value(started, "clarion_processes") == 2
    assert value(settled, "clarion_connections", transport="websocket") == CLIENTS
    assert (
        value(settled, "clarion_connections_opened_total", transport="websocket")
        == CLIENTS
    )
    assert value(settled, "clarion_redis_connected") == 1
    for samples in later:
        assert value(samples, "clarion_connections", transport="websocket") == CLIENTS
    for samples in later:
        assert value(samples, "clarion_processes") == 2
    for samples in later:
        assert [name for name, _ in samples if name.endswith("_created")] == []


async def test_workers_drop_gauges_of_dead_worker(supervisor: ServerProcess) -> None:
    """A killed worker's open connections leave the gauge, while its counts stay
    in the counters, and its replacement counts as a live process."""
    port = supervisor.port
    await poll_until(
        lambda: scrape(port),
        lambda s: value(s, "clarion_processes") == 2,
        WAIT_TIMEOUT,
    )
    clients = [await open_established(supervisor.ws_url) for _ in range(CLIENTS)]
    await poll_until(
        lambda: scrape(port),
        lambda s: value(s, "clarion_connections", transport="websocket") == CLIENTS,
        WAIT_TIMEOUT,
    )
    victim = worker_pids(supervisor)[0]
    os.kill(victim, signal.SIGKILL)

    def still_open() -> int:
        return sum(1 for client in clients if client.connection.state is State.OPEN)

    def scrape_surviving() -> object:
        # A scrape may reach the killed worker just before its socket goes.
        try:
            return scrape(port)
        except (ConnectionResetError, ConnectionRefusedError):
            return None

    try:
        settled = await poll_until(
            lambda: (still_open(), scrape_surviving()),
            lambda result: (
                result[1] is not None
                and result[0] < CLIENTS
                and value(result[1], "clarion_processes") == 2
                and value(result[1], "clarion_connections", transport="websocket")
                == result[0]
            ),
            WAIT_TIMEOUT,
        )
    finally:
        for client in clients:
            await client.close()
    open_count, samples = settled
    assert open_count < CLIENTS
    assert value(samples, "clarion_processes") == 2
    assert value(samples, "clarion_connections", transport="websocket") == open_count
    assert (
        value(samples, "clarion_connections_opened_total", transport="websocket")
        == CLIENTS
    )


def worker_pids(supervisor: ServerProcess) -> list[int]:
    """Return the worker PIDs that the supervisor logged when it started them."""
    match = STARTED_WORKERS.search(supervisor.log_text())
    assert match is not None, supervisor.log_text()
    return [int(text) for text in match.group(2).split(",")]


def test_workers_remove_metrics_directory(supervisor: ServerProcess) -> None:
    """The supervisor removes its metrics directory when it stops."""
    match = METRICS_DIRECTORY.search(supervisor.log_text())
    assert match is not None, supervisor.log_text()
    directory = Path(match.group(1))
    existed = directory.is_dir()
    supervisor.stop()
    assert existed
    assert not directory.exists()


def test_workers_never_log_redis_password(supervisor: ServerProcess) -> None:
    """The Redis password in --redis-url never reaches the log."""
    ready = poll_ready(supervisor)
    supervisor.stop()
    assert ready
    assert REDIS_PASSWORD not in supervisor.log_text()


def poll_ready(server: ServerProcess) -> bool:
    """Wait until /ready returns 200, which needs Redis; return whether it did."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while time.monotonic() < deadline:
        if http_request(server.port, "/ready").status == 200:
            return True
        time.sleep(0.1)
    return False
