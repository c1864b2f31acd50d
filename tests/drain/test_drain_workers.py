"""SIGTERM to `clarion serve --workers 2`: the supervisor passes it on, each
worker drains its connections with 4200, and the supervisor exits 0."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from clarion_e2e import poll_until
from cluster_harness import JOINED_LOG_TEXT, RedisServer
from drain_helpers import WAIT_TIMEOUT, open_raw_clients, send_signal, wait_exit

from server_process import ServerProcess, launch

CLIENTS = 40
RECONNECT = 4200


@pytest.fixture
def supervisors() -> Iterator[list[ServerProcess]]:
    """Supervisors a test starts; one still running at the end is stopped,
    and so is each worker it left, by PID."""
    started: list[ServerProcess] = []
    yield started
    for supervisor in started:
        supervisor.stop()
        for pid in worker_pids(supervisor):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def worker_pids(supervisor: ServerProcess) -> list[int]:
    for line in supervisor.log_text().splitlines():
        if "Started 2 workers: " in line:
            return [int(pid) for pid in line.split(": ")[-1].split(", ")]
    return []


async def wait_workers_joined(supervisor: ServerProcess) -> None:
    """Wait until both workers listen and have reached Redis."""
    log = await poll_until(
        supervisor.log_text,
        lambda text: text.count(JOINED_LOG_TEXT) == 2,
        WAIT_TIMEOUT,
    )
    assert log.count(JOINED_LOG_TEXT) == 2, log[-4000:]


def start_supervisor(
    tmp_path: Path,
    redis_server: RedisServer,
    drain_seconds: int,
    supervisors: list[ServerProcess],
) -> ServerProcess:
    args = ("--workers", "2", "--redis-url", redis_server.url)
    env = {"CLARION_DRAIN_SECONDS": str(drain_seconds)}
    supervisor = launch(None, tmp_path, args=args, env=env)
    supervisors.append(supervisor)
    return supervisor


async def test_workers_drain_and_exit_zero(
    tmp_path: Path, redis_server: RedisServer, supervisors: list[ServerProcess]
) -> None:
    """Both workers drain their connections with 4200; the supervisor exits 0."""
    supervisor = start_supervisor(tmp_path, redis_server, 2, supervisors)
    await wait_workers_joined(supervisor)
    clients = await open_raw_clients(supervisor.port, CLIENTS)
    watchers = [asyncio.create_task(client.watch_close()) for client in clients]

    send_signal(supervisor)
    await asyncio.wait_for(asyncio.gather(*watchers), 2 + WAIT_TIMEOUT)
    exit_code = await asyncio.to_thread(wait_exit, supervisor, WAIT_TIMEOUT)

    assert exit_code == 0, supervisor.log_text()[-4000:]
    codes = [client.closing.close_code for client in clients]
    assert codes == [RECONNECT] * CLIENTS
    log = supervisor.log_text()
    assert log.count("Draining: closing ") == 2, log[-4000:]
    drained = sum(
        int(line.split("Drained ")[1].split(" ")[0])
        for line in log.splitlines()
        if "Drained " in line
    )
    assert drained == CLIENTS, log[-4000:]
    assert "All workers stopped" in log
    assert "did not stop in time" not in log


async def test_workers_second_signal_finishes_drain(
    tmp_path: Path, redis_server: RedisServer, supervisors: list[ServerProcess]
) -> None:
    """A second SIGTERM to the supervisor ends a 600 s drain at once."""
    supervisor = start_supervisor(tmp_path, redis_server, 600, supervisors)
    await wait_workers_joined(supervisor)
    clients = await open_raw_clients(supervisor.port, CLIENTS)
    watchers = [asyncio.create_task(client.watch_close()) for client in clients]

    send_signal(supervisor)
    await poll_until(
        supervisor.log_text,
        lambda log: log.count("Draining: closing ") == 2,
        WAIT_TIMEOUT,
    )
    send_signal(supervisor)
    await asyncio.wait_for(asyncio.gather(*watchers), WAIT_TIMEOUT)
    exit_code = await asyncio.to_thread(wait_exit, supervisor, WAIT_TIMEOUT)

    assert exit_code == 0, supervisor.log_text()[-4000:]
    assert [client.closing.close_code for client in clients] == [RECONNECT] * CLIENTS
    log = supervisor.log_text()
    assert "passing it to the workers" in log
    assert log.count("finishing the drain at once") == 2, log[-4000:]
