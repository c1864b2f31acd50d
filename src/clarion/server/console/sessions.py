"""Console sessions ended by a logout before their cookie expires.

Each revoked session id is kept until its cookie's expiry, in this process's
memory and, with Redis, in the sorted set ``{prefix}:console:revoked`` (id
scored by expiry) that every node reads, so a copy of the cookie is rejected
on every node of the cluster. With Redis configured, a session that cannot be
checked because Redis fails is rejected too: accepting it could let a revoked
cookie back in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from clarion.server.console.auth import SESSION_SECONDS, Session

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RevokedSessions"]

CLOCK_SLACK_SECONDS = 3600
"""Seconds a revoked id is kept past its expiry, so that a node whose clock
runs behind still finds it while that node takes the cookie as unexpired."""


class RevokedSessions:
    """The revoked session ids of this process and, with ``redis``, of the
    cluster."""

    def __init__(self, redis: Redis | None = None, prefix: str = "clarion") -> None:
        self._redis = redis
        self._key = f"{prefix}:console:revoked"
        self._local: dict[str, int] = {}
        """Revoked session id to its cookie's expiry, in Unix seconds."""

    async def revoke(self, session: Session) -> None:
        """Reject ``session`` from now until its expiry.

        The id is kept in memory first, so this process rejects it even when
        Redis fails. Raises ``RedisError`` when it cannot be stored in Redis,
        where the other nodes would find it.
        """
        now = time.time()
        self._local = {
            session_id: expires
            for session_id, expires in self._local.items()
            if expires + CLOCK_SLACK_SECONDS > now
        }
        self._local[session.id] = session.expires
        if self._redis is None:
            return
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.zadd(self._key, {session.id: session.expires})
        pipeline.zremrangebyscore(self._key, "-inf", now - CLOCK_SLACK_SECONDS)
        # The set disappears once its newest id is no longer needed.
        pipeline.expire(self._key, SESSION_SECONDS + CLOCK_SLACK_SECONDS)
        await pipeline.execute()

    async def is_revoked(self, session: Session) -> bool:
        """Whether ``session`` was revoked on this process or, with Redis, on
        any node. Raises ``RedisError`` when Redis fails."""
        if session.id in self._local:
            return True
        if self._redis is None:
            return False
        return await self._redis.zscore(self._key, session.id) is not None
