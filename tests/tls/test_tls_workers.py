"""TLS with ``--workers``: every worker loads the certificate and serves wss://."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from ops_helpers import RedisProcess
from tls_helpers import TlsFiles, wss_url

from server_process import ServerProcess, launch

STARTED_WORKERS = re.compile(r"Started (\d+) workers: ([\d, ]+)")
TLS_LISTENING = re.compile(r"Listening on 127\.0\.0\.1 port \d+ with TLS")
WAIT = 15.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def supervisor(
    tmp_path: Path, redis: RedisProcess, tls_files: TlsFiles
) -> Iterator[ServerProcess]:
    """``clarion serve --workers 2`` with TLS; a worker that outlives the
    supervisor is killed by its own PID."""
    args = (
        "--workers",
        "2",
        "--redis-url",
        redis.url,
        "--tls-cert-file",
        str(tls_files.cert_file),
        "--tls-key-file",
        str(tls_files.key_file),
    )
    server = launch(None, tmp_path, args=args)
    yield server
    match = STARTED_WORKERS.search(server.log_text())
    server.stop()
    if match is not None:
        for pid in (int(text) for text in match.group(2).split(",")):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for_tls_workers(server: ServerProcess, count: int) -> int:
    """Wait up to WAIT seconds for ``count`` workers to log that they listen
    with TLS; return how many did."""
    deadline = time.monotonic() + WAIT
    while True:
        found = len(TLS_LISTENING.findall(server.log_text()))
        if found >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def test_every_worker_serves_tls(
    supervisor: ServerProcess, tls_files: TlsFiles
) -> None:
    assert wait_for_tls_workers(supervisor, 2) == 2
    context = tls_files.client_context()
    for _ in range(8):
        async with websockets.connect(wss_url(supervisor), ssl=context) as connection:
            message = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
            assert message["event"] == "pusher:connection_established"


def test_sighup_reaches_every_worker(supervisor: ServerProcess) -> None:
    """The supervisor passes SIGHUP on, and each worker reloads its certificate
    and keeps serving."""
    assert wait_for_tls_workers(supervisor, 2) == 2
    os.kill(supervisor.process.pid, signal.SIGHUP)
    deadline = time.monotonic() + WAIT
    while supervisor.log_text().count("reloaded the TLS certificate") < 2:
        assert time.monotonic() < deadline, supervisor.log_text()
        time.sleep(0.1)
    assert supervisor.is_running()
    assert "exited with code" not in supervisor.log_text()
