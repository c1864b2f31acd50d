"""Prometheus metrics of one server process, and of all workers together.

The serving code counts into plain integers: ``Tally`` and the webhook
sender's counters. ``Metrics.sync`` copies them into ``prometheus_client``
metrics once a second and before each scrape, so that no Prometheus call sits
on the path of a message.

With ``--workers N`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` for its
workers. ``prometheus_client`` then keeps each worker's values in files in
that directory, and a scrape of any worker reads the files of all of them, so
every worker reports the totals of the whole server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from clarion.protocol.channels import ChannelKind

if TYPE_CHECKING:
    from clarion.server.hub import Hub

__all__ = ["CONTENT_TYPE", "MULTIPROCESS_DIRECTORY_VARIABLE", "Metrics"]

logger = logging.getLogger(__name__)

MULTIPROCESS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
RENDER_ATTEMPTS = 3
"""Reads of the metrics files one scrape makes before it fails with 500."""
SYNC_INTERVAL = 1.0
"""Seconds between two copies of the counters into Prometheus. A scrape of one
worker shows the other workers' counts as of their last copy."""
TRANSPORTS = ("websocket", "http")
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds in seconds of the publish-to-write latency buckets."""


class Metrics:
    """The metrics that ``/metrics`` exposes for a hub."""

    def __init__(self, hub: Hub) -> None:
        # prometheus_client adds a *_created series with the creation time to
        # every counter and histogram. They double the output and dashboards
        # rarely read them, so none is exported. The switch is process-wide.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.hub = hub
        self.multiprocess = MULTIPROCESS_DIRECTORY_VARIABLE in os.environ
        self.registry = CollectorRegistry()
        target: CollectorRegistry | None = self.registry
        if self.multiprocess:
            # Each worker writes its values to files in the shared directory, and
            # the collector reads the files of every worker.
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
            target = None
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._define(target)
        self._copied: dict[tuple[int, tuple[str, ...]], float] = {}
        self._webhooks_pending = 0
        self._pending_failing = False
        self._task: asyncio.Task[None] | None = None

    def _define(self, registry: CollectorRegistry | None) -> None:
        self.processes = Gauge(
            "clarion_processes",
            "Server processes serving; with --workers, the live workers.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.connections = Gauge(
            "clarion_connections",
            "Open client connections by transport.",
            ["transport"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.connections_opened = Counter(
            "clarion_connections_opened",
            "Client connections admitted, by transport.",
            ["transport"],
            registry=registry,
        )
        self.connections_closed = Counter(
            "clarion_connections_closed",
            "Client connections closed, by transport.",
            ["transport"],
            registry=registry,
        )
        self.connections_rejected = Counter(
            "clarion_connections_rejected",
            "Client connections rejected, by Pusher close code (4100: over capacity).",
            ["code"],
            registry=registry,
        )
        self.subscriptions = Gauge(
            "clarion_subscriptions",
            "Channel subscriptions of open connections, by channel type.",
            ["channel_type"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._define_traffic(registry)
        self._define_webhooks(registry)
        self._define_health(registry)

        self.processes.set(1)
        for transport in TRANSPORTS:
            self.connections.labels(transport)
            self.connections_opened.labels(transport)
            self.connections_closed.labels(transport)
        for kind in ChannelKind:
            self.subscriptions.labels(kind.value)

    def _define_traffic(self, registry: CollectorRegistry | None) -> None:
        self.messages_received = Counter(
            "clarion_received_messages",
            "Pusher messages received from clients.",
            registry=registry,
        )
        self.bytes_received = Counter(
            "clarion_received_bytes",
            "UTF-8 bytes of the Pusher messages received from clients, without "
            "WebSocket or HTTP framing.",
            registry=registry,
        )
        self.messages_sent = Counter(
            "clarion_sent_messages",
            "Pusher messages queued for clients, one per receiving connection.",
            registry=registry,
        )
        self.bytes_sent = Counter(
            "clarion_sent_bytes",
            "UTF-8 bytes of the Pusher messages queued for clients, without "
            "WebSocket or HTTP framing.",
            registry=registry,
        )
        self.api_requests = Counter(
            "clarion_http_api_requests",
            "HTTP API requests by route and response status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.limit_rejections = Counter(
            "clarion_limit_rejections",
            "Connections, subscriptions, events and HTTP API requests rejected "
            "by a per-app limit, by the limit's setting name.",
            ["limit"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "clarion_publish_to_write_seconds",
            "Seconds from the first message queued in an event-loop pass that "
            "carries a published event to the end of the writes of that pass; "
            "at most 100 passes a second are recorded.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _define_webhooks(self, registry: CollectorRegistry | None) -> None:
        self.webhooks_sent = Counter(
            "clarion_webhooks_sent",
            "Webhook requests that the receiver accepted with a 2xx status.",
            registry=registry,
        )
        self.webhooks_retried = Counter(
            "clarion_webhooks_retried",
            "Webhook requests that failed and were scheduled for another attempt.",
            registry=registry,
        )
        self.webhooks_failed = Counter(
            "clarion_webhooks_failed",
            "Webhooks given up on and moved to the dead-letter store.",
            registry=registry,
        )
        self.webhooks_pending = Gauge(
            "clarion_webhooks_pending",
            "Webhooks waiting in the outbox for their first or next attempt.",
            registry=registry,
            multiprocess_mode="livemax",
        )

    def _define_health(self, registry: CollectorRegistry | None) -> None:
        self.loop_lag = Gauge(
            "clarion_event_loop_lag_seconds",
            "Largest delay of the event loop over the last second; with "
            "--workers, the largest of any worker.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.resident_memory = Gauge(
            "clarion_resident_memory_bytes",
            "Resident memory of the server processes, summed over workers.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.redis_connected: Gauge | None = None
        if self.hub.settings.redis_url:
            self.redis_connected = Gauge(
                "clarion_redis_connected",
                "1 while the Redis adapter reaches Redis; with --workers, 1 only "
                "while every worker does.",
                registry=registry,
                multiprocess_mode="livemin",
            )

    # Lifecycle

    def start(self) -> None:
        self.sync()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sync()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL)
            await self._read_webhooks_pending()
            self.sync()

    async def _read_webhooks_pending(self) -> None:
        outbox = self.hub.webhooks.outbox
        if outbox is None:
            return
        try:
            self._webhooks_pending = await outbox.pending_count()
        except Exception as exc:
            # The outbox is SQLite or Redis, and either may fail for a while.
            if not self._pending_failing:
                logger.warning(
                    "Counting pending webhooks for the metrics failed: %s. "
                    "Retrying every %g s",
                    exc,
                    SYNC_INTERVAL,
                )
            self._pending_failing = True
            return
        if self._pending_failing:
            logger.info("Counting pending webhooks works again")
        self._pending_failing = False

    # Copying the counts

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format, counts up to date."""
        self.sync()
        for attempt in range(1, RENDER_ATTEMPTS + 1):
            try:
                return generate_latest(self.registry)
            except (ValueError, OSError, RuntimeError, struct.error) as exc:
                # With several workers, another process may be growing its
                # metrics file while this one reads it. A later read usually
                # gets the whole file.
                if attempt == RENDER_ATTEMPTS:
                    raise
                logger.warning(
                    "Reading the workers' metrics files failed (%s); reading again",
                    exc,
                )
        raise AssertionError("unreachable")

    def sync(self) -> None:
        """Copy the hub's counts and health samples into the Prometheus metrics."""
        hub = self.hub
        tally = hub.tally
        for transport in TRANSPORTS:
            opened = tally.connections_opened[transport]
            closed = tally.connections_closed[transport]
            self.connections.labels(transport).set(opened - closed)
            self._copy(self.connections_opened, opened, transport)
            self._copy(self.connections_closed, closed, transport)
        for code, count in list(tally.connections_rejected.items()):
            self._copy(self.connections_rejected, count, str(code))
        for kind in ChannelKind:
            self.subscriptions.labels(kind.value).set(tally.subscriptions[kind.value])
        for (endpoint, status), count in list(tally.api_requests.items()):
            self._copy(self.api_requests, count, endpoint, str(status))
        for limit, count in list(tally.limit_rejections.items()):
            self._copy(self.limit_rejections, count, limit)

        self._copy(self.messages_received, tally.messages_received)
        self._copy(self.bytes_received, tally.bytes_received)
        self._copy(self.messages_sent, tally.messages_sent)
        self._copy(self.bytes_sent, tally.bytes_sent)
        for latency in tally.take_latency_samples():
            self.publish_latency.observe(latency)

        sender = hub.webhooks.sender
        if sender is not None:
            self._copy(self.webhooks_sent, sender.sent)
            self._copy(self.webhooks_retried, sender.retried)
            self._copy(self.webhooks_failed, sender.failed)
        self.webhooks_pending.set(self._webhooks_pending)

        health = hub.health
        self.loop_lag.set(health.loop_lag)
        self.resident_memory.set(health.rss_bytes)
        if self.redis_connected is not None:
            self.redis_connected.set(1 if hub.adapter.healthy else 0)

    def _copy(self, counter: Counter, total: int, *labels: str) -> None:
        """Raise ``counter`` by what ``total`` grew since the last copy."""
        key = (id(counter), labels)
        delta = total - self._copied.get(key, 0)
        if delta <= 0:
            return
        child = counter.labels(*labels) if labels else counter
        child.inc(delta)
        self._copied[key] = total
