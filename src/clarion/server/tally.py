"""Plain counters that the serving code increments and the metrics read.

Serving code only adds to integers here, so that counting costs no more than
an attribute update. ``clarion.server.metrics`` copies the values into
Prometheus once a second and before each scrape.
"""

from __future__ import annotations

import time
from collections import Counter

__all__ = ["LATENCY_SAMPLE_INTERVAL", "MAX_LATENCY_SAMPLES", "Tally"]

LATENCY_SAMPLE_INTERVAL = 0.01
"""Seconds between two recorded publish-to-write latencies, so that recording
costs at most 100 samples a second however busy the event loop is."""
MAX_LATENCY_SAMPLES = 1000
"""Latencies kept until the metrics read them; later ones are dropped."""


class Tally:
    """Counts of the messages, connections, subscriptions and API requests of
    this process since it started."""

    __slots__ = (
        "_last_latency_sample",
        "api_requests",
        "bytes_received",
        "bytes_sent",
        "connections_closed",
        "connections_opened",
        "connections_rejected",
        "latency_samples",
        "limit_rejections",
        "messages_received",
        "messages_sent",
        "published",
        "subscriptions",
    )

    def __init__(self) -> None:
        self.messages_received = 0
        """Pusher messages received from clients."""
        self.bytes_received = 0
        """UTF-8 bytes of those messages, without WebSocket or HTTP framing."""
        self.messages_sent = 0
        """Pusher messages handed to client connections for sending."""
        self.bytes_sent = 0
        """UTF-8 bytes of those messages, without WebSocket or HTTP framing."""
        self.published = False
        """Whether an event was handed to a subscriber since the last flush."""
        self.latency_samples: list[float] = []
        """Publish-to-write latencies in seconds, not yet read by the metrics."""
        self._last_latency_sample = 0.0
        self.connections_opened: Counter[str] = Counter()
        """Admitted connections by transport (``websocket`` or ``http``)."""
        self.connections_closed: Counter[str] = Counter()
        """Closed connections by transport."""
        self.connections_rejected: Counter[int] = Counter()
        """Rejected connections by the close code sent to them."""
        self.subscriptions: Counter[str] = Counter()
        """Current subscriptions by channel type (``ChannelKind`` values)."""
        self.api_requests: Counter[tuple[str, int]] = Counter()
        """HTTP API requests by route template and response status."""
        self.limit_rejections: Counter[str] = Counter()
        """Requests, connections and events rejected by a per-app limit, by
        the limit's setting name."""

    def record_flush(self, queued_at: float) -> None:
        """Record the latency of a flush that wrote a published event.

        ``queued_at`` is the ``time.perf_counter()`` value at which the first
        message of the flush was queued. Only one flush per
        ``LATENCY_SAMPLE_INTERVAL`` is recorded.
        """
        self.published = False
        now = time.perf_counter()
        if now - self._last_latency_sample < LATENCY_SAMPLE_INTERVAL:
            return
        self._last_latency_sample = now
        if len(self.latency_samples) < MAX_LATENCY_SAMPLES:
            self.latency_samples.append(now - queued_at)

    def take_latency_samples(self) -> list[float]:
        """Return the recorded latencies and forget them."""
        samples = self.latency_samples
        self.latency_samples = []
        return samples
