"""Per-app samples of open connections and activity, one a second, for the chart.

Without Redis the samples count this process. With Redis, ``ClusterSamples``
adds up the samples of every node, and a sample falls back to this process's
counts while Redis fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from clarion.server.background import cancel_and_wait
from clarion.server.console.cluster import ClusterSamples, Counts
from clarion.server.hub import Hub

__all__ = ["SAMPLE_SECONDS", "Sample", "Sampler"]

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0
"""Seconds between two samples."""
KEPT_SAMPLES = 600
"""Samples kept per app: ten minutes at one a second."""

_EVENT_KINDS = ("api_event", "client_event")


@dataclass(frozen=True, slots=True)
class Sample:
    time: float
    """Unix time of the sample, in seconds."""
    connections: int
    """Connections of the app open on the counted nodes."""
    opened: int
    """Connections opened since the previous sample."""
    events: int
    """HTTP API and client events since the previous sample."""
    nodes: int
    """Server processes counted: 1 without Redis or while Redis fails."""


class Sampler:
    """A bounded ring of samples per app, taken from the hub and its monitor,
    and summed over the cluster by ``cluster`` when one is given."""

    def __init__(self, hub: Hub, cluster: ClusterSamples | None = None) -> None:
        self.hub = hub
        self.cluster = cluster
        self.cluster_error: str | None = None
        """The Redis error that made the latest sample count only this process;
        ``None`` when it counts the cluster or Redis is not configured."""
        self._samples: dict[str, deque[Sample]] = {}
        self._previous: dict[str, tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self.cluster is not None:
            from redis.exceptions import RedisError

            try:
                await self.cluster.remove()
            except RedisError as exc:
                logger.warning("Could not delete the console sample in Redis: %s", exc)

    def samples(self, app_id: str) -> list[Sample]:
        return list(self._samples.get(app_id, ()))

    def connections(self, app_id: str) -> int:
        """Return the app's open connections: on every node as of the latest
        sample with Redis, else on this process now."""
        ring = self._samples.get(app_id)
        if self.cluster is None or not ring:
            return self.hub.connection_count(app_id)
        return ring[-1].connections

    async def take(self, now: float) -> None:
        """Append one sample for every configured app."""
        local = self._local_counts()
        totals, nodes = local, 1
        if self.cluster is not None:
            totals, nodes = await self._cluster_counts(local)
        for app_id, counts in totals.items():
            ring = self._samples.get(app_id)
            if ring is None:
                ring = self._samples[app_id] = deque(maxlen=KEPT_SAMPLES)
            ring.append(Sample(now, *counts, nodes=nodes))

    def _local_counts(self) -> dict[str, Counts]:
        counts = {}
        for app in self.hub.apps.all():
            totals = self.hub.monitor.totals.get(app.id)
            opened = totals["connection_opened"] if totals else 0
            events = sum(totals[kind] for kind in _EVENT_KINDS) if totals else 0
            previous_opened, previous_events = self._previous.get(app.id, (0, 0))
            self._previous[app.id] = (opened, events)
            counts[app.id] = Counts(
                connections=self.hub.connection_count(app.id),
                opened=opened - previous_opened,
                events=events - previous_events,
            )
        return counts

    async def _cluster_counts(
        self, local: dict[str, Counts]
    ) -> tuple[dict[str, Counts], int]:
        from redis.exceptions import RedisError

        assert self.cluster is not None
        try:
            # A sample that waits longer than its interval is stale anyway.
            totals, nodes = await asyncio.wait_for(
                self.cluster.exchange(local), SAMPLE_SECONDS
            )
        except (RedisError, TimeoutError) as exc:
            error = str(exc) or "timed out"
            if self.cluster_error is None:
                logger.warning(
                    "Console samples count this process only: Redis failed: %s",
                    error,
                )
            self.cluster_error = error
            return local, 1
        if self.cluster_error is not None:
            logger.info("Console samples count the whole cluster again")
            self.cluster_error = None
        return totals, nodes

    async def _run(self) -> None:
        while True:
            await self.take(time.time())
            await asyncio.sleep(SAMPLE_SECONDS)
