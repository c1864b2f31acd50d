"""The health of this server process: memory, event-loop lag and draining,
and the admission and readiness checks built on them."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from clarion.protocol.errors import ConnectionRejected, ErrorCode
from clarion.server.config import Settings

__all__ = ["DRAINING_PROBLEM", "NodeHealth", "read_rss_bytes"]

logger = logging.getLogger(__name__)

LAG_INTERVAL = 0.25
"""Seconds between two event-loop lag measurements."""
SAMPLE_INTERVAL = 1.0
"""Seconds between two memory samples. The reported lag is the maximum over
this interval."""
REJECTION_LOG_INTERVAL = 60.0
"""Seconds between two warnings about connections rejected with 4100."""
OVER_CAPACITY_MESSAGE = "Over capacity"
DRAINING_PROBLEM = "draining: the server is stopping"
"""The readiness problem while draining; it starts with ``draining`` so load
balancers and scripts can match it."""

_STATM = "/proc/self/statm"


def read_rss_bytes() -> int | None:
    """Return this process's resident set size in bytes, or ``None`` where
    ``/proc/self/statm`` cannot be read (systems other than Linux)."""
    try:
        with open(_STATM, encoding="ascii") as file:
            fields = file.read().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


class NodeHealth:
    """Samples memory once a second and event-loop lag four times a second,
    and decides whether this process takes new connections and is ready.

    A "node" is one server process: each worker of ``--workers`` is one.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_connections = settings.max_node_connections
        self.memory_limit_bytes = settings.memory_limit_mb * 1024 * 1024
        self.draining = False
        """Set while the server stops: new connections get 4100, /ready fails."""
        self.rss_bytes = 0
        """Resident set size at the last sample; 0 where it cannot be read."""
        self.loop_lag = 0.0
        """Largest event-loop lag in seconds over the last sample interval."""
        self.over_memory = False
        self._task: asyncio.Task[None] | None = None
        self._rejected = 0
        self._rejection_logged_at: float | None = None

    # Lifecycle

    def start(self) -> None:
        """Take the first memory sample now, then sample in the background."""
        if self.memory_limit_bytes and read_rss_bytes() is None:
            logger.warning(
                "memory_limit_mb is set but %s cannot be read on this system, "
                "so the memory limit is not enforced",
                _STATM,
            )
        self.sample_memory()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        window_lag = 0.0
        window_started = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_INTERVAL)
            now = loop.time()
            window_lag = max(window_lag, now - before - LAG_INTERVAL)
            if now - window_started >= SAMPLE_INTERVAL:
                self.loop_lag = window_lag
                window_lag = 0.0
                window_started = now
                self.sample_memory()

    def sample_memory(self) -> None:
        rss = read_rss_bytes()
        if rss is None:
            return
        self.rss_bytes = rss
        over = bool(self.memory_limit_bytes) and rss > self.memory_limit_bytes
        if over != self.over_memory:
            if over:
                logger.warning(
                    "Memory use %d MiB is over memory_limit_mb %d: new connections "
                    "get 4100 and /ready fails until it drops",
                    rss // 2**20,
                    self.memory_limit_bytes // 2**20,
                )
            else:
                logger.info(
                    "Memory use %d MiB is under memory_limit_mb %d again",
                    rss // 2**20,
                    self.memory_limit_bytes // 2**20,
                )
        self.over_memory = over

    # Checks

    def check_capacity(self, open_connections: int) -> None:
        """Check that this process takes one more connection.

        Raises:
            ConnectionRejected: 4100 (back off, then reconnect) while draining,
            over the memory limit, or at ``max_node_connections``.
        """
        reason = self._capacity_problem(open_connections)
        if reason is None:
            return
        self._rejected += 1
        now = time.monotonic()
        last = self._rejection_logged_at
        if last is None or now - last >= REJECTION_LOG_INTERVAL:
            logger.warning(
                "Rejected %d new connection(s) with 4100 since the last warning: %s",
                self._rejected,
                reason,
            )
            self._rejected = 0
            self._rejection_logged_at = now
        raise ConnectionRejected(ErrorCode.OVER_CAPACITY, OVER_CAPACITY_MESSAGE)

    def _capacity_problem(self, open_connections: int) -> str | None:
        if self.draining:
            return DRAINING_PROBLEM
        if self.over_memory:
            return self._memory_problem()
        if self.max_connections and open_connections >= self.max_connections:
            return (
                f"{open_connections} connections open, max_node_connections is "
                f"{self.max_connections}"
            )
        return None

    def readiness_problems(self, redis_reachable: bool | None) -> list[str]:
        """Return why this process should not get traffic; empty when ready.

        ``redis_reachable`` is ``None`` when no Redis is configured.
        """
        problems = []
        if redis_reachable is False:
            problems.append("Redis is unreachable")
        if self.draining:
            problems.append(DRAINING_PROBLEM)
        if self.over_memory:
            problems.append(self._memory_problem())
        return problems

    def _memory_problem(self) -> str:
        return (
            f"memory use {self.rss_bytes // 2**20} MiB is over memory_limit_mb "
            f"{self.memory_limit_bytes // 2**20}"
        )
