"""The webhook outbox in Redis, shared by every node of a cluster.

Each delivery is a hash; a sorted set orders pending deliveries by their next
attempt, and another keeps the dead letters by the time they failed. ``due``
claims deliveries with a Lua script, so two nodes never take the same one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from redis import asyncio as aioredis

from clarion.protocol.webhooks import restamp_body
from clarion.server.webhooks.outbox import Delivery

__all__ = ["RedisOutbox"]

# Take up to ARGV[2] deliveries due at ARGV[1] and push their next attempt to
# ARGV[3], the end of the lease, in one step.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local result = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[3], id)
  table.insert(result, id)
  table.insert(result, redis.call('HGETALL', ARGV[4] .. id))
end
return result
"""


class RedisOutbox:
    """Pending webhook deliveries and dead letters in Redis."""

    def __init__(self, url: str, prefix: str = "clarion") -> None:
        self.url = url
        self.prefix = prefix
        self._redis = aioredis.from_url(url, decode_responses=True)
        self._claim = self._redis.register_script(_CLAIM)

    def __repr__(self) -> str:
        return f"RedisOutbox(prefix={self.prefix!r})"

    def _delivery_key(self, delivery_id: int | str) -> str:
        return f"{self.prefix}:webhook:{delivery_id}"

    @property
    def _due_key(self) -> str:
        return f"{self.prefix}:webhooks:due"

    @property
    def _dead_key(self) -> str:
        return f"{self.prefix}:webhooks:dead"

    async def add(
        self,
        app_id: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        created_at: float,
    ) -> None:
        delivery_id = await self._redis.incr(f"{self.prefix}:webhooks:next-id")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._delivery_key(delivery_id),
                mapping={
                    "app_id": app_id,
                    "url": url,
                    "body": body.decode(),
                    "headers": json.dumps(dict(headers)),
                    "created_at": repr(created_at),
                    "attempts": 0,
                    "last_error": "",
                },
            )
            pipe.zadd(self._due_key, {str(delivery_id): created_at})
            await pipe.execute()

    async def due(self, now: float, limit: int, lease: float) -> list[Delivery]:
        flat = await self._claim(
            keys=[self._due_key],
            args=[now, limit, now + lease, f"{self.prefix}:webhook:"],
        )
        deliveries = []
        for index in range(0, len(flat), 2):
            fields = flat[index + 1]
            record = dict(zip(fields[::2], fields[1::2], strict=True))
            if record:
                deliveries.append(_delivery(int(flat[index]), record))
        return deliveries

    async def delivered(self, delivery_id: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._due_key, str(delivery_id))
            pipe.delete(self._delivery_key(delivery_id))
            await pipe.execute()

    async def retry_later(
        self, delivery_id: int, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._delivery_key(delivery_id),
                mapping={"attempts": attempts, "last_error": error},
            )
            pipe.zadd(self._due_key, {str(delivery_id): next_attempt_at})
            await pipe.execute()

    async def bury(
        self, delivery_id: int, attempts: int, error: str, now: float
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._due_key, str(delivery_id))
            pipe.hset(
                self._delivery_key(delivery_id),
                mapping={"attempts": attempts, "last_error": error},
            )
            pipe.zadd(self._dead_key, {str(delivery_id): now})
            await pipe.execute()

    async def dead(self, limit: int = 100) -> list[Delivery]:
        ids = await self._redis.zrange(self._dead_key, 0, limit - 1)
        deliveries = []
        for delivery_id in map(str, ids):
            record = await self._redis.hgetall(self._delivery_key(delivery_id))
            if record:
                fields = {str(name): str(value) for name, value in record.items()}
                deliveries.append(_delivery(int(delivery_id), fields))
        return deliveries

    async def replay(self, delivery_ids: Iterable[int] | None, now: float) -> int:
        if delivery_ids is None:
            ids = [int(str(i)) for i in await self._redis.zrange(self._dead_key, 0, -1)]
        else:
            ids = list(delivery_ids)
        moved = 0
        for delivery_id in ids:
            if not await self._redis.zrem(self._dead_key, str(delivery_id)):
                continue
            key = self._delivery_key(delivery_id)
            body = await self._redis.hget(key, "body")
            if body is None:
                continue
            restamped = restamp_body(str(body).encode(), int(now * 1000)).decode()
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={"attempts": 0, "created_at": repr(now), "body": restamped},
                )
                pipe.zadd(self._due_key, {str(delivery_id): now})
                await pipe.execute()
            moved += 1
        return moved

    async def pending_count(self) -> int:
        return int(await self._redis.zcard(self._due_key))

    async def close(self) -> None:
        await self._redis.aclose()


def _delivery(delivery_id: int, record: Mapping[str, str]) -> Delivery:
    return Delivery(
        id=delivery_id,
        app_id=record["app_id"],
        url=record["url"],
        body=record["body"].encode(),
        headers=json.loads(record["headers"]),
        created_at=float(record["created_at"]),
        attempts=int(record["attempts"]),
        last_error=record.get("last_error", ""),
    )
