"""Collecting webhook events from the hub: filters, per-app batches, and the
delay that keeps a page reload from sending vacated and occupied."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from clarion.protocol.apps import App
from clarion.protocol.webhooks import encode_body
from clarion.server.apps import AppRegistry
from clarion.server.config import Settings
from clarion.server.monitor import Monitor
from clarion.server.webhooks.outbox import Outbox, SQLiteOutbox
from clarion.server.webhooks.sender import WebhookSender

__all__ = ["Webhooks", "open_outbox"]


def open_outbox(settings: Settings) -> Outbox:
    """Return the outbox of these settings: in Redis when a cluster shares one,
    else in the SQLite file ``webhooks.sqlite3`` of the data directory."""
    if settings.redis_url:
        from clarion.server.webhooks.redis_outbox import RedisOutbox

        return RedisOutbox(settings.redis_url, settings.redis_prefix)
    return SQLiteOutbox(Path(settings.data_dir) / "webhooks.sqlite3")


logger = logging.getLogger(__name__)

Event = dict[str, object]


class _Delayed:
    __slots__ = ("fire", "shared", "timer")

    def __init__(
        self, timer: asyncio.TimerHandle, fire: Callable[[], None], shared: bool
    ) -> None:
        self.timer = timer
        self.fire = fire
        self.shared = shared
        """The hold is in the cluster's shared state, which decides whether the
        event is sent; see ``Webhooks.claim_held``."""


class _Batch:
    __slots__ = ("created_ms", "events")

    def __init__(self) -> None:
        self.created_ms = int(time.time() * 1000)
        self.events: list[Event] = []


class Webhooks:
    """Turns channel activity into webhook deliveries for apps that configure
    webhook URLs, and runs their sender.

    Every method the hub calls returns at once: events wait in memory for the
    batch window (or the vacated/removed delay), then go to the outbox, which a
    background sender drains. A process killed before the window ends loses
    those events; a delivery in the outbox survives.
    """

    def __init__(
        self, settings: Settings, apps: AppRegistry, outbox: Outbox | None = None
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.enabled = any(app.webhooks for app in apps.all())
        self.outbox: Outbox | None = None
        self.monitor: Monitor | None = None
        """Set by the hub; the sender reports deliveries to it."""
        self.sender: WebhookSender | None = None
        self._started = False
        if outbox is not None or self.enabled:
            self._open_outbox(outbox)
        self._batches: dict[tuple[str, int], _Batch] = {}
        """(app id, index of the webhook table) to the events waiting for it."""
        self._flush_timers: dict[str, asyncio.TimerHandle] = {}
        self._delayed: dict[tuple[str, ...], _Delayed] = {}
        """Delayed vacated and removed events: their timers and what they send."""
        self.claim_held: Callable[[str, str, str | None], Awaitable[bool]] | None = None
        """Set by the hub to the adapter's ``claim_held_webhook``, which takes a
        shared hold out of the cluster's state when its delay ends; the event is
        sent only if the hold was still there."""
        self._claims: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sender_task: asyncio.Task[None] | None = None

    # Lifecycle

    def _open_outbox(self, outbox: Outbox | None = None) -> None:
        """Open the outbox and its sender. The sender starts with ``start``, or
        at once when that has run. An app of the app store may get webhook
        URLs while the server runs, so this can happen late."""
        self.enabled = True
        self.outbox = outbox or open_outbox(self.settings)
        self.sender = WebhookSender(
            self.outbox,
            self.apps,
            request_timeout=self.settings.webhook_timeout,
            retry_window=self.settings.webhook_retry_window,
        )
        if self._started:
            self._start_sender()

    def start(self) -> None:
        self._started = True
        if self.sender is not None:
            self._start_sender()

    def _start_sender(self) -> None:
        assert self.sender is not None
        self.sender.monitor = self.monitor
        self._sender_task = asyncio.get_running_loop().create_task(self.sender.run())
        logger.info("Webhook sender started, outbox %s", self._outbox_name())

    async def stop(
        self, last_attempt_seconds: float = 0, hurry: asyncio.Event | None = None
    ) -> None:
        """Write waiting batches to the outbox and give the sender up to
        ``last_attempt_seconds`` (or until ``hurry`` is set) to try the
        deliveries that are due, then stop sending. What is left stays in the
        outbox for the next start (SQLite) or the other nodes (Redis).

        Delayed vacated and removed events are written at once rather than
        lost: their connections are gone, so the events would have been sent
        when their delay ended. A client that reconnects to another node then
        produces a new occupied or added event there. Shared holds of a
        cluster are the exception: they stay in the cluster's state, where a
        subscription on another node can still cancel them, or another node
        sends them once they are overdue.
        """
        fired = left = 0
        for delayed in list(self._delayed.values()):
            delayed.timer.cancel()
            if delayed.shared:
                left += 1
            else:
                delayed.fire()
                fired += 1
        if left:
            logger.info(
                "Left %d held vacated or removed webhook event(s) in Redis: a "
                "subscription on another node cancels them, or another node "
                "sends them once overdue",
                left,
            )
        if self._claims:
            await asyncio.wait(list(self._claims), timeout=5)
        batched = sum(len(batch.events) for batch in self._batches.values())
        for app_id in list(self._flush_timers):
            self._flush(app_id)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        if batched:
            logger.info(
                "Wrote %d waiting webhook event(s) to the outbox, %d of them "
                "delayed vacated or removed events",
                batched,
                fired,
            )
        if self.sender is not None and last_attempt_seconds > 0:
            await self._attempt_last(
                self.sender, last_attempt_seconds, hurry or asyncio.Event()
            )
        if self._sender_task is not None:
            self._sender_task.cancel()
        if self.sender is not None:
            await self.sender.stop()
        if self.outbox is not None:
            await self.outbox.close()

    async def _attempt_last(
        self, sender: WebhookSender, timeout: float, hurry: asyncio.Event
    ) -> None:
        assert self.outbox is not None
        attempt = asyncio.ensure_future(sender.attempt_due(timeout))
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait({attempt, hurried}, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        attempt.cancel()
        finished = attempt.done() and not attempt.cancelled() and attempt.result()
        try:
            pending = await self.outbox.pending_count()
        except Exception:
            logger.exception(
                "Could not count the deliveries left in the webhook outbox %s",
                self._outbox_name(),
            )
            return
        if finished and not pending:
            return
        logger.info(
            "%d webhook delivery(ies) left in the outbox %s%s; they are sent "
            "from there after the next start%s",
            pending,
            self._outbox_name(),
            "" if finished else f" when the last attempt ended (at most {timeout:g} s)",
            " or by the other nodes" if self.settings.redis_url else "",
        )

    def _outbox_name(self) -> str:
        return str(getattr(self.outbox, "path", type(self.outbox).__name__))

    # Events from the hub

    def channel_occupied(
        self, app: App, channel: str, cancelled_vacated: bool = False
    ) -> None:
        """Send ``channel_occupied``, unless it cancels a delayed
        ``channel_vacated``: one held here, or a shared hold that the adapter
        reports as ``cancelled_vacated``."""
        held_here = self._cancel_delayed(("vacated", app.id, channel))
        if held_here or (
            cancelled_vacated and self.holds(app, channel, "channel_vacated")
        ):
            return
        self._emit(app, {"name": "channel_occupied", "channel": channel})

    def channel_vacated(self, app: App, channel: str, held: bool = False) -> None:
        """Send ``channel_vacated`` after the delay; with ``held``, only if the
        shared hold is still there then."""
        self._emit_later(
            app,
            ("vacated", app.id, channel),
            {"name": "channel_vacated", "channel": channel},
            held,
        )

    def member_added(
        self, app: App, channel: str, user_id: str, cancelled_removed: bool = False
    ) -> None:
        held_here = self._cancel_delayed(("removed", app.id, channel, user_id))
        if held_here or (
            cancelled_removed and self.holds(app, channel, "member_removed")
        ):
            return
        self._emit(
            app, {"name": "member_added", "channel": channel, "user_id": user_id}
        )

    def member_removed(
        self, app: App, channel: str, user_id: str, held: bool = False
    ) -> None:
        self._emit_later(
            app,
            ("removed", app.id, channel, user_id),
            {"name": "member_removed", "channel": channel, "user_id": user_id},
            held,
        )

    def send_overdue(self, app: App, channel: str, user_id: str | None) -> None:
        """Send at once a held ``channel_vacated`` (``user_id`` None) or
        ``member_removed`` that the adapter took over from a node that did not
        send it in time."""
        if user_id is None:
            self._cancel_delayed(("vacated", app.id, channel))
            self._emit(app, {"name": "channel_vacated", "channel": channel})
        else:
            self._cancel_delayed(("removed", app.id, channel, user_id))
            self._emit(
                app,
                {"name": "member_removed", "channel": channel, "user_id": user_id},
            )

    def client_event(
        self,
        app: App,
        channel: str,
        event: str,
        data: str,
        socket_id: str,
        user_id: str | None,
    ) -> None:
        payload: Event = {
            "name": "client_event",
            "channel": channel,
            "event": event,
            "data": data,
            "socket_id": socket_id,
        }
        if user_id is not None:
            payload["user_id"] = user_id
        self._emit(app, payload)

    def cache_miss(self, app: App, channel: str) -> None:
        """Send ``cache_miss``; the adapter's ``get_cache_or_miss`` decides when
        it is due, once per channel until the channel gets a new cached event."""
        self._emit(app, {"name": "cache_miss", "channel": channel})

    def subscription_count(self, app: App, channel: str, count: int) -> None:
        self._emit(
            app,
            {
                "name": "subscription_count",
                "channel": channel,
                "subscription_count": count,
            },
        )

    def user_online(self, app: App, user_id: str) -> None:
        self._emit(app, {"name": "user_online", "user_id": user_id})

    def user_offline(self, app: App, user_id: str) -> None:
        self._emit(app, {"name": "user_offline", "user_id": user_id})

    def wants(self, app: App, event_type: str) -> bool:
        """Return whether any of the app's webhook URLs takes ``event_type``."""
        return self._wanted(app, event_type)

    def holds(self, app: App, channel: str, event_type: str) -> bool:
        """Return whether a ``channel_vacated`` or ``member_removed`` of
        ``channel`` would be delayed and sent, so that it is worth holding."""
        return not channel.startswith("#") and self._wanted(app, event_type)

    # Batching

    @staticmethod
    def _wanted(app: App, event_type: str) -> bool:
        return any(event_type in target.event_types for target in app.webhooks)

    def _emit(self, app: App, event: Event) -> None:
        channel = event.get("channel")
        if not app.webhooks or (isinstance(channel, str) and channel.startswith("#")):
            return
        matched = False
        for index, target in enumerate(app.webhooks):
            if target.wants(event):
                # Batches are per table, not per URL: two tables may name one
                # URL with other filters and headers.
                batch = self._batches.get((app.id, index))
                if batch is None:
                    batch = self._batches[(app.id, index)] = _Batch()
                batch.events.append(event)
                matched = True
        if matched and app.id not in self._flush_timers:
            self._flush_timers[app.id] = asyncio.get_running_loop().call_later(
                self.settings.webhook_batch_ms / 1000, self._flush, app.id
            )

    def _emit_later(
        self, app: App, key: tuple[str, ...], event: Event, shared: bool
    ) -> None:
        if not app.webhooks or not self._wanted(app, str(event["name"])):
            # The matching occupied or added event must still go out at once.
            return
        self._cancel_delayed(key)

        def fire() -> None:
            if self._delayed.get(key) is entry:
                del self._delayed[key]
            if shared and self.claim_held is not None:
                task = asyncio.get_running_loop().create_task(
                    self._send_if_held(app, key, event)
                )
                self._claims.add(task)
                task.add_done_callback(self._claims.discard)
            else:
                self._emit(app, event)

        timer = asyncio.get_running_loop().call_later(
            self.settings.webhook_delay_ms / 1000, fire
        )
        entry = self._delayed[key] = _Delayed(timer, fire, shared)

    async def _send_if_held(self, app: App, key: tuple[str, ...], event: Event) -> None:
        assert self.claim_held is not None
        user_id = key[3] if key[0] == "removed" else None
        if await self.claim_held(app.id, key[2], user_id):
            self._emit(app, event)

    def _cancel_delayed(self, key: tuple[str, ...]) -> bool:
        """Cancel a delayed vacated or removed event; return whether one was
        held here, in which case the new occupied or added event is not sent
        either. A shared hold returns False: the adapter's report decides."""
        delayed = self._delayed.pop(key, None)
        if delayed is None:
            return False
        delayed.timer.cancel()
        return not delayed.shared

    def _flush(self, app_id: str) -> None:
        self._flush_timers.pop(app_id, None)
        app = self.apps.find_by_id(app_id)
        if self.outbox is None and app is not None and app.webhooks:
            self._open_outbox()
        for key in [key for key in self._batches if key[0] == app_id]:
            batch = self._batches.pop(key)
            if app is None or self.outbox is None:
                continue
            if key[1] >= len(app.webhooks):
                continue
            target = app.webhooks[key[1]]
            body = encode_body(batch.created_ms, batch.events)
            task = asyncio.get_running_loop().create_task(
                self._store(
                    app_id,
                    target.url,
                    body,
                    dict(target.headers),
                    batch.created_ms / 1000,
                )
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _store(
        self,
        app_id: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        created: float,
    ) -> None:
        assert self.outbox is not None
        try:
            await self.outbox.add(app_id, url, body, headers, created)
        except Exception:
            logger.exception(
                "Could not store a webhook for app %s in the outbox %s",
                app_id,
                self._outbox_name(),
                extra={"app_id": app_id},
            )
            return
        if self.sender is not None:
            self.sender.wake()
