"""Running several server processes on one port, with SO_REUSEPORT.

The parent process only supervises: it starts ``workers`` copies of
``clarion serve``, restarts one that dies, and passes SIGINT and SIGTERM on.
The kernel spreads new connections over the processes, which share their
state through Redis. The workers keep their Prometheus metrics in files of one
temporary directory (``PROMETHEUS_MULTIPROC_DIR``), which the supervisor
creates at start and removes at exit, so a scrape of any worker shows the
totals of all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from clarion.server.config import Settings
from clarion.server.metrics import MULTIPROCESS_DIRECTORY_VARIABLE

__all__ = ["supervise"]

logger = logging.getLogger(__name__)

RESTART_DELAY = 1.0
"""Seconds before a worker that died is started again."""
STOP_MARGIN = 15.0
"""Seconds a worker has to stop after SIGTERM beyond its drain window and last
webhook attempt, before it is killed."""


def stop_timeout(settings: Settings) -> float:
    """Return the seconds that the workers have to stop after SIGTERM."""
    return settings.drain_seconds + settings.drain_webhook_seconds + STOP_MARGIN


def supervise(workers: int, argv: Sequence[str], stop_timeout: float) -> int:
    """Run ``workers`` copies of ``clarion serve`` with ``argv`` until a signal.

    ``argv`` are the arguments of ``clarion serve`` as given; each worker gets
    them followed by ``--workers 1 --reuse-port``. On SIGINT or SIGTERM each
    worker gets SIGTERM and drains; one still running after ``stop_timeout``
    seconds is killed. A second signal is passed on too, so the workers finish
    their drain at once. Returns 0 once every worker has stopped.
    """
    command = [sys.executable, "-m", "clarion", "serve", *argv, "--workers", "1"]
    command.append("--reuse-port")
    metrics_directory = tempfile.mkdtemp(prefix="clarion-metrics-")
    try:
        return _run_workers(workers, command, metrics_directory, stop_timeout)
    finally:
        shutil.rmtree(metrics_directory, ignore_errors=True)


def _run_workers(
    workers: int, command: list[str], metrics_directory: str, stop_timeout: float
) -> int:
    environment = {**os.environ, MULTIPROCESS_DIRECTORY_VARIABLE: metrics_directory}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=environment)

    def forget(child: subprocess.Popen[bytes]) -> None:
        # The gauges of a dead worker go; its counters stay in the totals.
        mark_process_dead(child.pid, metrics_directory)  # type: ignore[no-untyped-call]

    stopping = False
    children: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            logger.info("Received a second stop signal: passing it to the workers")
            _signal_running(children, signal.SIGTERM)
        stopping = True

    def reload(signum: int, frame: FrameType | None) -> None:
        logger.info("Received SIGHUP: passing it to the workers")
        _signal_running(children, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)

    children += [start() for _ in range(workers)]
    logger.info(
        "Started %d workers: %s", workers, ", ".join(str(c.pid) for c in children)
    )
    logger.debug("Workers keep their metrics in %s", metrics_directory)
    while not stopping:
        for index, child in enumerate(children):
            code = child.poll()
            if code is None or stopping:
                continue
            logger.warning(
                "Worker %d exited with code %s; starting it again in %g s",
                child.pid,
                code,
                RESTART_DELAY,
            )
            forget(child)
            time.sleep(RESTART_DELAY)
            children[index] = start()
        time.sleep(0.2)

    logger.info(
        "Stopping %d workers: each drains, or is killed after %g s",
        len(children),
        stop_timeout,
    )
    _signal_running(children, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("Worker %d did not stop in time; killing it", child.pid)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    logger.info("All workers stopped")
    return 0


def _signal_running(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    for child in children:
        if child.poll() is None:
            os.kill(child.pid, signum)
