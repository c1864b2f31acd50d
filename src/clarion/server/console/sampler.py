"""Per-app samples of open connections and activity, one a second, for the chart."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from clarion.server.hub import Hub

__all__ = ["SAMPLE_SECONDS", "Sample", "Sampler"]

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
    """Connections of the app open on this process."""
    opened: int
    """Connections opened since the previous sample."""
    events: int
    """HTTP API and client events since the previous sample."""


class Sampler:
    """A bounded ring of samples per app, taken from the hub and its monitor."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._samples: dict[str, deque[Sample]] = {}
        self._previous: dict[str, tuple[int, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def samples(self, app_id: str) -> list[Sample]:
        return list(self._samples.get(app_id, ()))

    def take(self, now: float) -> None:
        """Append one sample for every configured app."""
        for app in self.hub.apps.all():
            totals = self.hub.monitor.totals.get(app.id)
            opened = totals["connection_opened"] if totals else 0
            events = sum(totals[kind] for kind in _EVENT_KINDS) if totals else 0
            previous_opened, previous_events = self._previous.get(app.id, (0, 0))
            self._previous[app.id] = (opened, events)
            ring = self._samples.get(app.id)
            if ring is None:
                ring = self._samples[app.id] = deque(maxlen=KEPT_SAMPLES)
            ring.append(
                Sample(
                    time=now,
                    connections=self.hub.connection_count(app.id),
                    opened=opened - previous_opened,
                    events=events - previous_events,
                )
            )

    async def _run(self) -> None:
        while True:
            self.take(time.time())
            await asyncio.sleep(SAMPLE_SECONDS)
