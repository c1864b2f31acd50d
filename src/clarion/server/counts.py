"""``pusher_internal:subscription_count`` events, throttled on busy channels."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.channels import ChannelKind, classify
from clarion.server.adapters import Adapter
from clarion.server.webhooks import Webhooks
from clarion.server.websocket import OutboundMessage

__all__ = ["SubscriptionCounts"]

THROTTLE_ABOVE = 100
"""Channels with more subscribers than this get at most one count per interval."""
THROTTLE_INTERVAL = 5.0
"""Seconds between two counts sent to a busy channel."""


class SubscriptionCounts:
    """Sends a channel's subscribers its count after each change, when the app
    enables it or a webhook takes subscription counts. A channel over
    ``THROTTLE_ABOVE`` subscribers gets at most one count every
    ``THROTTLE_INTERVAL`` seconds, carrying the latest value."""

    def __init__(
        self,
        adapter: Adapter,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        webhooks: Webhooks,
    ) -> None:
        self.adapter = adapter
        self.webhooks = webhooks
        self._spawn = spawn
        self._last_sent: dict[tuple[str, str], float] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    async def changed(self, app: App, channel: str) -> None:
        """Report a subscribe or unsubscribe on ``channel``."""
        if not app.subscription_count_events and not self.webhooks.wants(
            app, "subscription_count"
        ):
            return
        if classify(channel) in (ChannelKind.PRESENCE, ChannelKind.SERVER_TO_USER):
            return
        key = (app.id, channel)
        count = (await self.adapter.channel_info(app.id, channel)).subscription_count
        if not count:
            self._forget(key)
            return
        now = time.monotonic()
        if count <= THROTTLE_ABOVE:
            self._cancel_timer(key)
            await self._send(app, channel, count, now)
            return
        wait = self._last_sent.get(key, 0.0) + THROTTLE_INTERVAL - now
        if wait <= 0:
            self._cancel_timer(key)
            await self._send(app, channel, count, now)
        elif key not in self._timers:
            self._timers[key] = asyncio.get_running_loop().call_later(
                wait, lambda: self._spawn(self._send_latest(app, channel))
            )

    async def _send_latest(self, app: App, channel: str) -> None:
        self._timers.pop((app.id, channel), None)
        count = (await self.adapter.channel_info(app.id, channel)).subscription_count
        if count:
            await self._send(app, channel, count, time.monotonic())

    async def _send(self, app: App, channel: str, count: int, now: float) -> None:
        self._last_sent[(app.id, channel)] = now
        if app.subscription_count_events:
            message = OutboundMessage(messages.subscription_count(channel, count))
            await self.adapter.publish(app.id, channel, message)
        self.webhooks.subscription_count(app, channel, count)

    def _cancel_timer(self, key: tuple[str, str]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _forget(self, key: tuple[str, str]) -> None:
        self._cancel_timer(key)
        self._last_sent.pop(key, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
