"""Sending webhook deliveries from the outbox, with retries and a dead letter."""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from clarion.protocol.webhooks import retry_delay, sign_body
from clarion.server.apps import AppRegistry
from clarion.server.monitor import Monitor
from clarion.server.webhooks.outbox import Delivery, Outbox

__all__ = ["WebhookSender", "post"]

logger = logging.getLogger(__name__)

DEFER_SECONDS = 1.0
"""Seconds a delivery waits when its URL already has its share in flight."""
MAX_RESPONSE_BYTES = 64 * 1024
"""Bytes of a receiver's response that are read; the rest is ignored."""


class WebhookSender:
    """Takes due deliveries from the outbox and sends at most ``concurrency`` at
    a time, and at most ``per_url_concurrency`` to one URL, so a slow receiver
    occupies a few slots and never the event loop or the other URLs."""

    def __init__(
        self,
        outbox: Outbox,
        apps: AppRegistry,
        *,
        request_timeout: float,
        retry_window: float,
        concurrency: int = 16,
        per_url_concurrency: int = 4,
    ) -> None:
        self.outbox = outbox
        self.apps = apps
        self.request_timeout = request_timeout
        self.retry_window = retry_window
        self.concurrency = concurrency
        self.per_url_concurrency = per_url_concurrency
        self._per_url: dict[str, int] = {}
        self._claimed: dict[int, Delivery] = {}
        """Deliveries in flight, by id."""
        """Requests in flight per URL."""
        self._wake = asyncio.Event()
        self._polls = 0
        """Reads of the outbox started so far."""
        self._idle_poll = 0
        """The last read after which nothing was due and nothing in flight."""
        self._idle = asyncio.Event()
        self._deferred_until = 0.0
        """When the deliveries that ``_defer`` put back are due again."""
        self._in_flight: set[asyncio.Task[None]] = set()
        self._jitter = random.Random()
        self.monitor: Monitor | None = None
        self.sent = 0
        """Requests that a receiver accepted with a 2xx status."""
        self.retried = 0
        """Failed requests scheduled for another attempt."""
        self.failed = 0
        """Deliveries moved to the dead-letter store."""

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send deliveries until cancelled; poll the outbox at least every second,
        so deliveries replayed from the command line are picked up too."""
        lease = self.request_timeout + 5
        while True:
            free = self.concurrency - len(self._in_flight)
            deliveries = []
            self._polls += 1
            poll = self._polls
            read = True
            if free > 0:
                try:
                    deliveries = await self.outbox.due(time.time(), free, lease)
                except Exception:
                    read = False
                    logger.exception(
                        "Reading the webhook outbox failed; retrying in 1 s"
                    )
            started = 0
            for delivery in deliveries:
                if self._per_url.get(delivery.url, 0) >= self.per_url_concurrency:
                    await self._defer(delivery)
                    self._deferred_until = time.time() + DEFER_SECONDS
                    continue
                self._start(delivery)
                started += 1
            idle = read and not started and not self._in_flight
            if idle and time.time() >= self._deferred_until:
                self._idle_poll = poll
                self._idle.set()
            if not started:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass

    async def attempt_due(self, timeout: float) -> bool:
        """Wait until every delivery due now has had an attempt, for at most
        ``timeout`` seconds; return whether they all had one.

        The sender must be running. Deliveries that fail are scheduled for a
        later retry as usual, so they stay in the outbox.
        """
        since = self._polls
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._idle_poll <= since:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._idle.clear()
            self.wake()
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _start(self, delivery: Delivery) -> None:
        url = delivery.url
        self._per_url[url] = self._per_url.get(url, 0) + 1
        self._claimed[delivery.id] = delivery
        task = asyncio.get_running_loop().create_task(self._attempt(delivery))
        self._in_flight.add(task)

        def finished(task: asyncio.Task[None]) -> None:
            self._claimed.pop(delivery.id, None)
            remaining = self._per_url.get(url, 1) - 1
            if remaining:
                self._per_url[url] = remaining
            else:
                self._per_url.pop(url, None)
            self._finished(task)

        task.add_done_callback(finished)

    async def _defer(self, delivery: Delivery) -> None:
        # The URL already has its share of requests in flight: a slow receiver
        # must not take every slot from the others. Put the delivery back
        # without counting an attempt.
        try:
            await self.outbox.retry_later(
                delivery.id,
                delivery.attempts,
                time.time() + DEFER_SECONDS,
                delivery.last_error,
            )
        except Exception:
            logger.exception(
                "Could not put webhook %d back in the outbox",
                delivery.id,
                extra={"app_id": delivery.app_id},
            )

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def stop(self) -> None:
        """Cancel deliveries in flight and release them, so that the next start
        sends them at once rather than after their lease."""
        in_flight = dict(self._claimed)
        for task in list(self._in_flight):
            task.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=5)
        now = time.time()
        for delivery in in_flight.values():
            try:
                await self.outbox.retry_later(
                    delivery.id, delivery.attempts, now, delivery.last_error
                )
            except Exception:
                logger.exception(
                    "Could not release webhook %d; it is retried after its lease",
                    delivery.id,
                    extra={"app_id": delivery.app_id},
                )

    async def _attempt(self, delivery: Delivery) -> None:
        attempt = delivery.attempts + 1
        host = urlsplit(delivery.url).hostname or "?"
        app = self.apps.find_by_id(delivery.app_id)
        if app is None:
            error = f"app {delivery.app_id} is no longer configured"
            logger.warning(
                "Webhook %d to %s dropped: %s",
                delivery.id,
                host,
                error,
                extra={"app_id": delivery.app_id},
            )
            self.failed += 1
            await self.outbox.bury(delivery.id, delivery.attempts, error, time.time())
            return

        headers = {
            **delivery.headers,
            "Content-Type": "application/json",
            "X-Pusher-Key": app.key,
            "X-Pusher-Signature": sign_body(app.secret, delivery.body),
        }
        try:
            status = await asyncio.wait_for(
                post(delivery.url, headers, delivery.body), self.request_timeout
            )
            error = "" if 200 <= status < 300 else f"HTTP status {status}"
        except TimeoutError:
            error = f"no answer within {self.request_timeout:g} s"
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}: {exc}"

        if self.monitor is not None:
            self.monitor.record(
                app.id,
                "webhook_failed" if error else "webhook_sent",
                url_host=host,
                attempt=attempt,
                error=error,
            )
        if not error:
            self.sent += 1
            await self.outbox.delivered(delivery.id)
            logger.debug(
                "Webhook %d for app %s delivered to %s",
                delivery.id,
                app.id,
                host,
                extra={"app_id": app.id},
            )
            return

        now = time.time()
        deadline = delivery.created_at + self.retry_window
        if now >= deadline:
            logger.warning(
                "Webhook %d for app %s to %s failed on attempt %d (%s); giving up "
                "after %.0f s, moved to the dead-letter store",
                delivery.id,
                app.id,
                host,
                attempt,
                error,
                now - delivery.created_at,
                extra={"app_id": app.id},
            )
            self.failed += 1
            await self.outbox.bury(delivery.id, attempt, error, now)
            return
        # The last attempt falls at the end of the window, not a back-off step
        # before it.
        next_attempt = min(now + retry_delay(attempt, self._jitter), deadline)
        logger.warning(
            "Webhook %d for app %s to %s failed on attempt %d (%s); retrying in %.1f s",
            delivery.id,
            app.id,
            host,
            attempt,
            error,
            next_attempt - now,
            extra={"app_id": app.id},
        )
        self.retried += 1
        await self.outbox.retry_later(delivery.id, attempt, next_attempt, error)
        self.wake()


async def post(url: str, headers: Mapping[str, str], body: bytes) -> int:
    """POST ``body`` to ``url`` over HTTP/1.1 and return the response status.

    Raises:
        ValueError: the URL is not http or https, or the response is not HTTP.
        OSError: the connection failed.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid webhook URL {url!r}: expected http:// or https://")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    context = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
    try:
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        host = parts.netloc.rpartition("@")[2]
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(b" ", 2)
        if (
            len(fields) < 2
            or not fields[0].startswith(b"HTTP/")
            or not fields[1].isdigit()
        ):
            raise ValueError(f"invalid HTTP status line {status_line[:80]!r}")
        # Read a bounded part of the response so the receiver can finish writing.
        await reader.read(MAX_RESPONSE_BYTES)
        return int(fields[1])
    finally:
        writer.close()
