"""Console sessions ended by a logout before their cookie expires.

Each revoked session id is kept until its cookie's expiry in this process's
memory. With Redis it is also kept in the sorted set
``{prefix}:console:revoked``, scored by expiry, which every node checks on each
request, so a copy of the cookie is rejected on every node of the cluster.

Every ``REFRESH_SECONDS`` each node also copies that set into its memory and
writes back the ids that Redis lacks: those of logouts during a Redis outage,
and those lost when Redis restarted without persistence. While Redis fails, a
node checks sessions against its memory, so it misses the logouts on other nodes during
the outage and in the last refresh interval before it. A node that has not
read the set once since it started rejects every session while Redis fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

from clarion.server.background import cancel_and_wait
from clarion.server.console.auth import SESSION_SECONDS, Session

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RevokedSessions"]

logger = logging.getLogger(__name__)

CLOCK_SLACK_SECONDS = 3600
"""Seconds a revoked id is kept past its expiry, so that a node whose clock
runs behind still finds it while that node takes the cookie as unexpired."""
REFRESH_SECONDS = 2.0
"""Seconds between two copies of the revoked set from Redis into memory."""


class RevokedSessions:
    """The revoked session ids of this process and, with ``redis``, of the
    cluster."""

    def __init__(self, redis: Redis | None = None, prefix: str = "clarion") -> None:
        self._redis = redis
        self._key = f"{prefix}:console:revoked"
        # NOTE: without Redis nothing outlives the process, so a restart
        # accepts a logged-out cookie again until its expiry.
        self._revoked: dict[str, int] = {}
        """Revoked session id to its cookie's expiry, in Unix seconds: those
        of this process, and those read from Redis at the last refresh."""
        self._loaded = redis is None
        """Set once the revoked set was read from Redis, so that the memory
        can stand in for Redis during an outage."""
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start copying the revoked set from Redis, when there is one."""
        if self._redis is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def revoke(self, session: Session) -> None:
        """Reject ``session`` from now until its expiry.

        The id is kept in memory first, so this process rejects it even when
        Redis fails. Raises ``RedisError`` when it cannot be stored in Redis,
        where the other nodes would find it.
        """
        self._prune(time.time())
        self._revoked[session.id] = session.expires
        if self._redis is not None:
            await self._store({session.id: session.expires})

    async def is_revoked(self, session: Session) -> bool:
        """Return True if ``session`` was revoked on this process or, with
        Redis, on any node.

        While Redis fails, only the ids in memory count. Raises ``RedisError``
        when Redis fails before this process has read the revoked set once.
        """
        if session.id in self._revoked:
            return True
        if self._redis is None:
            return False
        from redis.exceptions import RedisError

        try:
            return await self._redis.zscore(self._key, session.id) is not None
        except RedisError:
            if not self._loaded:
                raise
            return False

    async def refresh(self) -> None:
        """Copy the revoked set from Redis into memory, and write back the
        unexpired ids of memory that Redis lacks. Raises ``RedisError``."""
        assert self._redis is not None
        now = time.time()
        self._prune(now)
        stored = cast(
            "list[tuple[str, float]]",
            await self._redis.zrangebyscore(
                self._key, now - CLOCK_SLACK_SECONDS, "+inf", withscores=True
            ),
        )
        from_redis = {session_id: int(expires) for session_id, expires in stored}
        missing = {
            session_id: expires
            for session_id, expires in self._revoked.items()
            if session_id not in from_redis
        }
        if missing:
            logger.warning(
                "Wrote %d revoked console session(s) back to Redis, which lacked them",
                len(missing),
            )
            await self._store(missing)
        self._revoked.update(from_redis)
        if not self._loaded:
            logger.info(
                "Read %d revoked console session(s) from Redis", len(from_redis)
            )
        self._loaded = True

    async def _store(self, revoked: dict[str, int]) -> None:
        assert self._redis is not None
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.zadd(self._key, revoked)
        pipeline.zremrangebyscore(self._key, "-inf", time.time() - CLOCK_SLACK_SECONDS)
        # The set disappears once its newest id is no longer needed.
        pipeline.expire(self._key, SESSION_SECONDS + CLOCK_SLACK_SECONDS)
        await pipeline.execute()

    def _prune(self, now: float) -> None:
        self._revoked = {
            session_id: expires
            for session_id, expires in self._revoked.items()
            if expires + CLOCK_SLACK_SECONDS > now
        }

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        while True:
            try:
                await self.refresh()
                if self._failing:
                    logger.info("Revoked console sessions are read from Redis again")
                self._failing = False
            except RedisError as exc:
                if not self._failing:
                    logger.warning(
                        "Cannot read revoked console sessions from Redis (%s); "
                        "checking sessions against the copy in memory",
                        exc,
                    )
                self._failing = True
            await asyncio.sleep(REFRESH_SECONDS)
