"""Closing the open connections of a stopping server in paced batches, so that
a rolling deploy turns into a trickle of reconnects on the other nodes rather
than all of them at once."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable

from clarion.protocol.errors import ErrorCode
from clarion.server.connection import Connection

__all__ = ["BATCH_INTERVAL", "SHUTDOWN_MESSAGE", "close_connections", "drain"]

logger = logging.getLogger(__name__)

BATCH_INTERVAL = 0.1
"""Seconds between two batches of closes."""
PROGRESS_INTERVAL = 1.0
"""Seconds between two progress lines in the log."""
SHUTDOWN_MESSAGE = "Server is shutting down"


def close_connections(connections: Iterable[Connection]) -> int:
    """Send ``pusher:error`` 4200 (reconnect now) to each open connection and
    close it. Return how many were still open."""
    closed = 0
    for connection in connections:
        if connection.socket_id not in connection.hub.connections:
            continue
        connection.reject(ErrorCode.RECONNECT, SHUTDOWN_MESSAGE)
        # The hub removes the connection now rather than when its socket is
        # gone, so its channels and presence members are left at once.
        connection.hub.remove_connection(connection)
        closed += 1
    return closed


async def drain(
    connections: list[Connection],
    window: float,
    hurry: asyncio.Event,
    jitter: random.Random | None = None,
) -> int:
    """Close ``connections`` with 4200 spread over ``window`` seconds, and
    return how many were still open when their turn came.

    Connection ``i`` of ``n`` (in random order) closes at a random time in
    ``[i, i + 1) * window / n``, checked every ``BATCH_INTERVAL``: closes are
    evenly spread, yet no two nodes drain in lockstep. Once ``hurry`` is set,
    the remaining connections close at once.
    """
    jitter = jitter or random.Random()
    connections = list(connections)
    jitter.shuffle(connections)
    total = len(connections)
    loop = asyncio.get_running_loop()
    started = loop.time()
    logger.info("Draining: closing %d connection(s) with 4200 over %g s", total, window)
    if total == 0:
        return 0
    slot = window / total
    deadlines = [(index + jitter.random()) * slot for index in range(total)]
    next_index = 0
    closed = 0
    next_progress = PROGRESS_INTERVAL
    hurry_task = loop.create_task(hurry.wait())
    try:
        while next_index < total:
            elapsed = loop.time() - started
            if hurry.is_set():
                logger.info(
                    "Draining: second stop signal, closing the remaining %d "
                    "connection(s) at once",
                    total - next_index,
                )
                elapsed = window
            end = next_index
            while end < total and deadlines[end] <= elapsed:
                end += 1
            closed += close_connections(connections[next_index:end])
            next_index = end
            if elapsed >= next_progress and next_index < total:
                logger.info(
                    "Draining: closed %d of %d connection(s) in %.1f s",
                    next_index,
                    total,
                    elapsed,
                )
                next_progress = elapsed + PROGRESS_INTERVAL
            if next_index < total:
                await asyncio.wait({hurry_task}, timeout=BATCH_INTERVAL)
    finally:
        hurry_task.cancel()
    logger.info(
        "Drained %d connection(s) in %.1f s (%d had closed by themselves)",
        closed,
        loop.time() - started,
        total - closed,
    )
    return closed
