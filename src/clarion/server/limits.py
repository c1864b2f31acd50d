"""Counting for the per-app limits in one process, and the rejection log.

``protocol/limits.py`` and ``protocol/handshake.py`` decide whether a limit is
reached and which error it gives; this module keeps the counts they decide on,
and logs the rejections without letting a flood fill the log. Counts shared
over a cluster are in ``redis_limits.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from clarion.protocol.limits import RateWindow
from clarion.server.tally import Tally

__all__ = [
    "LimitCounter",
    "LocalLimitCounter",
    "Rejections",
]

logger = logging.getLogger(__name__)

REJECTION_LOG_INTERVAL = 10.0
"""Seconds during which further rejections by the same limit of the same app
are counted instead of logged one by one."""


class LimitCounter(Protocol):
    """Counts behind the per-app limits."""

    def connections_elsewhere(self, app_id: str) -> int:
        """Return the app's open connections on other nodes, as last read; 0
        without a cluster. Synchronous, because admission is."""

    async def take(self, app_id: str, rate: str, amount: int, limit: int) -> bool:
        """Count ``amount`` against the app's ``rate`` if it fits under
        ``limit`` per second, and return whether it did."""

    def start(self, local_connections: Mapping[str, int]) -> None:
        """Start background work; ``local_connections`` is this process's live
        map of app id to open connections."""

    async def close(self) -> None: ...


class LocalLimitCounter:
    """Counts for one process: every rate in a ``RateWindow``."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], RateWindow] = {}

    def connections_elsewhere(self, app_id: str) -> int:
        return 0

    async def take(self, app_id: str, rate: str, amount: int, limit: int) -> bool:
        return self.take_now(app_id, rate, amount, limit)

    def take_now(self, app_id: str, rate: str, amount: int, limit: int) -> bool:
        """Do what ``take`` does, without awaiting."""
        if limit <= 0:
            return True
        window = self._windows.get((app_id, rate))
        if window is None:
            window = self._windows[(app_id, rate)] = RateWindow()
        return window.take(time.monotonic(), limit, amount)

    def start(self, local_connections: Mapping[str, int]) -> None:
        pass

    async def close(self) -> None:
        pass


class Rejections:
    """Logs and counts requests rejected by a per-app limit.

    The first rejection by one limit of one app is logged with its details.
    Further ones within ``REJECTION_LOG_INTERVAL`` are only counted, and the
    count is logged with the next rejection after the interval.
    """

    def __init__(
        self, tally: Tally, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tally = tally
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        """(app id, limit) to when its interval started and rejections since."""

    def record(
        self, app_id: str, limit: str, message: str, socket_id: str | None = None
    ) -> None:
        """Count a rejection by ``limit`` and log it unless one was logged lately."""
        self.tally.limit_rejections[limit] += 1
        now = self._clock()
        started, suppressed = self._windows.get((app_id, limit), (None, 0))
        if started is not None and now - started < REJECTION_LOG_INTERVAL:
            self._windows[(app_id, limit)] = (started, suppressed + 1)
            return
        self._windows[(app_id, limit)] = (now, 0)
        where = f"app {app_id}"
        if socket_id is not None:
            where += f", socket {socket_id}"
        if suppressed:
            logger.warning(
                "[%s] Rejected by %s: %s (and %d more rejection(s) by it since "
                "the last such line)",
                where,
                limit,
                message,
                suppressed,
                extra={"app_id": app_id, "socket_id": socket_id},
            )
        else:
            logger.warning(
                "[%s] Rejected by %s: %s",
                where,
                limit,
                message,
                extra={"app_id": app_id, "socket_id": socket_id},
            )
