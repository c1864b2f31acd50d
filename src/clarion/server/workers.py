"""Running several server processes on one port, with SO_REUSEPORT.

The parent process only supervises: it starts ``workers`` copies of
``clarion serve``, restarts one that dies, and passes SIGINT and SIGTERM on.
The kernel spreads new connections over the processes, which share their
state through Redis.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["supervise"]

logger = logging.getLogger(__name__)

RESTART_DELAY = 1.0
"""Seconds before a worker that died is started again."""
STOP_TIMEOUT = 30.0
"""Seconds each worker has to stop after SIGTERM before it is killed."""


def supervise(workers: int, argv: Sequence[str]) -> int:
    """Run ``workers`` copies of ``clarion serve`` with ``argv`` until a signal.

    ``argv`` are the arguments of ``clarion serve`` as given; each worker gets
    them followed by ``--workers 1 --reuse-port``. Returns 0 once every worker
    has stopped after SIGINT or SIGTERM.
    """
    command = [sys.executable, "-m", "clarion", "serve", *argv, "--workers", "1"]
    command.append("--reuse-port")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    children = [subprocess.Popen(command) for _ in range(workers)]
    logger.info(
        "Started %d workers: %s", workers, ", ".join(str(c.pid) for c in children)
    )
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
            time.sleep(RESTART_DELAY)
            children[index] = subprocess.Popen(command)
        time.sleep(0.2)

    logger.info("Stopping %d workers", len(children))
    for child in children:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("Worker %d did not stop in time; killing it", child.pid)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    logger.info("All workers stopped")
    return 0
