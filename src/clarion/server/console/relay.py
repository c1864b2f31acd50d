"""The live log across a cluster: monitor events passed between nodes by Redis.

Each node publishes the events its monitor records on one Redis channel and
delivers the events of other nodes to its own monitor, so a console on any
node shows the whole cluster. Events are published only while some node has
a live log open: a node with open streams refreshes a Redis key with a short
expiry, and every node checks that key every ``CHECK_SECONDS``. Outgoing
events wait in a bounded queue that drops its oldest when Redis is slow.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clarion.server.monitor import Monitor, MonitorEvent

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ConsoleRelay"]

logger = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
"""Seconds between two checks of whether any node has a live log open."""
VIEWERS_TTL_SECONDS = 10
"""Seconds the viewers key lives after the last refresh by a node with streams."""
MAX_QUEUED_EVENTS = 1000
"""Events waiting to be published before the oldest are dropped."""
MAX_PUBLISH_BATCH = 200
"""Events sent to Redis in one pipeline."""


class ConsoleRelay:
    """Passes monitor events between the nodes that share one Redis."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        node: str,
        monitor: Monitor,
        is_served: Callable[[str], bool],
        local_streams: Callable[[], int],
    ) -> None:
        self.node = node
        self.monitor = monitor
        self._is_served = is_served
        self._local_streams = local_streams
        self._redis = redis
        self._channel = f"{prefix}:console:events"
        self._viewers_key = f"{prefix}:console:viewers"
        self._active = False
        self._queue: deque[MonitorEvent] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._wake = asyncio.Event()
        self._dropped = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._jitter = random.Random()

    def start(self) -> None:
        self.monitor.forward = self._forward
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._check_viewers()),
            loop.create_task(self._publish()),
            loop.create_task(self._listen()),
        ]

    async def stop(self) -> None:
        self.monitor.forward = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def _forward(self, event: MonitorEvent) -> None:
        if not self._active:
            return
        if len(self._queue) == self._queue.maxlen:
            self._dropped += 1
        self._queue.append(event)
        self._wake.set()

    async def _check_viewers(self) -> None:
        from redis.exceptions import RedisError

        while True:
            try:
                if self._local_streams():
                    await self._redis.set(
                        self._viewers_key, self.node, ex=VIEWERS_TTL_SECONDS
                    )
                self._active = bool(await self._redis.exists(self._viewers_key))
            except RedisError as exc:
                self._active = False
                logger.warning("Console relay cannot reach Redis: %s", exc)
            await asyncio.sleep(CHECK_SECONDS)

    async def _publish(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [
                    self._queue.popleft()
                    for _ in range(min(MAX_PUBLISH_BATCH, len(self._queue)))
                ]
                pipeline = self._redis.pipeline(transaction=False)
                for event in batch:
                    pipeline.publish(self._channel, self._encode(event))
                try:
                    await pipeline.execute()
                except RedisError as exc:
                    self._dropped += len(batch)
                    logger.warning(
                        "Console relay dropped %d event(s): Redis publish failed: %s",
                        len(batch),
                        exc,
                    )
            if self._dropped:
                logger.warning(
                    "Console relay dropped %d event(s) because Redis was slow",
                    self._dropped,
                )
                self._dropped = 0

    def _encode(self, event: MonitorEvent) -> str:
        return json.dumps(
            {
                "node": self.node,
                "app_id": event.app_id,
                "kind": event.kind,
                "time": event.time,
                "detail": event.detail,
            },
            default=str,
        )

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        failures = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                failures = 0
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._receive(message["data"])
            except RedisError as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures - 1, 6))
                logger.warning(
                    "Console relay lost its Redis subscription (attempt %d): %s; "
                    "resubscribing in %.1f s",
                    failures,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay * self._jitter.uniform(0.5, 1.0))
            finally:
                try:
                    await pubsub.aclose()
                except RedisError:
                    pass

    def _receive(self, raw: str) -> None:
        try:
            fields: dict[str, Any] = json.loads(raw)
            node = str(fields["node"])
            if node == self.node or not self._is_served(fields["app_id"]):
                return
            event = MonitorEvent(
                app_id=str(fields["app_id"]),
                kind=str(fields["kind"]),
                detail=dict(fields["detail"]),
                time=float(fields["time"]),
                node=node,
            )
        except (ValueError, KeyError, TypeError):
            logger.error("Ignored a malformed console event from Redis")
            return
        self.monitor.deliver(event)
