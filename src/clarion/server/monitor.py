"""A live record of what happens on the server, for the debug console.

The hub, the HTTP API and the webhook sender report events here from the same
code paths that serve clients. Each app keeps a bounded ring of recent events,
and each watcher gets a bounded queue that drops its oldest events when it
falls behind, so a slow watcher never slows the server.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Monitor", "MonitorEvent"]

RECENT_EVENTS = 500
"""Events kept per app for a watcher that starts watching."""
WATCHER_QUEUE = 1000
"""Events queued per watcher before its oldest ones are dropped."""


@dataclass(frozen=True, slots=True)
class MonitorEvent:
    """One thing that happened: a connection, subscription, event, webhook or error."""

    app_id: str
    kind: str
    """``connection_opened``, ``connection_closed``, ``subscribed``,
    ``unsubscribed``, ``api_event``, ``client_event``, ``webhook_sent``,
    ``webhook_failed`` or ``error``."""
    detail: dict[str, Any]
    time: float = field(default_factory=time.time)
    node: str = ""
    """The cluster node that recorded the event; empty for this process."""


class _Watcher:
    __slots__ = ("dropped", "queue", "wake")

    def __init__(self) -> None:
        self.queue: deque[MonitorEvent] = deque(maxlen=WATCHER_QUEUE)
        self.wake = asyncio.Event()
        self.dropped = 0


class Monitor:
    """Recent events per app and the watchers that follow them live."""

    def __init__(self) -> None:
        self.enabled = False
        """Events are recorded only while this is set (by the console)."""
        self.totals: dict[str, Counter[str]] = {}
        """Events recorded by this process per app and kind, since enabled."""
        self.forward: Callable[[MonitorEvent], None] | None = None
        """Called with each event recorded here, to pass it to other nodes."""
        self._recent: dict[str, deque[MonitorEvent]] = {}
        self._watchers: dict[str, set[_Watcher]] = {}

    def record(self, app_id: str, kind: str, **detail: Any) -> None:
        """Record an event; costs nothing while the console is disabled."""
        if not self.enabled:
            return
        event = MonitorEvent(app_id, kind, detail)
        totals = self.totals.get(app_id)
        if totals is None:
            totals = self.totals[app_id] = Counter()
        totals[kind] += 1
        if self.forward is not None:
            self.forward(event)
        self.deliver(event)

    def deliver(self, event: MonitorEvent) -> None:
        """Keep ``event`` and pass it to the app's watchers; events of other
        cluster nodes come in here, without being counted or forwarded."""
        app_id = event.app_id
        recent = self._recent.get(app_id)
        if recent is None:
            recent = self._recent[app_id] = deque(maxlen=RECENT_EVENTS)
        recent.append(event)
        for watcher in self._watchers.get(app_id, ()):
            if len(watcher.queue) == watcher.queue.maxlen:
                watcher.dropped += 1
            watcher.queue.append(event)
            watcher.wake.set()

    def recent(self, app_id: str) -> list[MonitorEvent]:
        return list(self._recent.get(app_id, ()))

    def watch(self, app_id: str) -> _Watcher:
        watcher = _Watcher()
        self._watchers.setdefault(app_id, set()).add(watcher)
        return watcher

    def unwatch(self, app_id: str, watcher: _Watcher) -> None:
        watchers = self._watchers.get(app_id)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[app_id]

    async def next_events(
        self, watcher: _Watcher, timeout: float
    ) -> list[MonitorEvent]:
        """Wait up to ``timeout`` seconds for events; return those queued."""
        if not watcher.queue:
            watcher.wake.clear()
            try:
                await asyncio.wait_for(watcher.wake.wait(), timeout)
            except TimeoutError:
                return []
        events = list(watcher.queue)
        watcher.queue.clear()
        return events
