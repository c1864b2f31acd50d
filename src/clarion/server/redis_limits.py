"""Counts for the per-app limits shared by every node through Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from clarion.server.limits import LocalLimitCounter

__all__ = ["COMMAND_TIMEOUT", "CONNECTION_SYNC_INTERVAL", "RedisLimitCounter"]

logger = logging.getLogger(__name__)

CONNECTION_SYNC_INTERVAL = 0.5
"""Seconds between two exchanges of per-app connection counts with Redis."""
COMMAND_TIMEOUT = 1.0
"""Seconds the limit counter waits for Redis to connect or reply before it
counts in the process. Far above the latency of its small scripts, and short,
because an HTTP API request waits for its rate check."""

# Count ``amount`` in the current one-second window of a rate if the
# sliding-window estimate leaves room for it, with the same arithmetic as
# clarion.protocol.limits.rate_allows. The time comes from Redis, so that every
# node cuts windows at the same instants, whatever its own clock reads. The key names
# are built here, so this needs standalone Redis, as the adapter does.
_TAKE_RATE = """
local now = redis.call('TIME')
local second = tonumber(now[1])
local elapsed = tonumber(now[2]) / 1000000
local current_key = ARGV[1] .. ':' .. second
local current = tonumber(redis.call('GET', current_key) or '0')
local previous = tonumber(redis.call('GET', ARGV[1] .. ':' .. (second - 1)) or '0')
local limit = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
if previous * (1 - elapsed) + current + amount > limit then
  return 0
end
redis.call('INCRBY', current_key, amount)
redis.call('EXPIRE', current_key, 3)
return 1
"""

# Write this node's changed connection counts and read the other live nodes'
# totals for the apps asked about. ARGV: prefix, node id, liveness TTL in
# seconds, the number N of written apps, N pairs of app id and count, then the
# app ids to read. A node is live while its liveness key exists; the counts of
# a node whose key expired are deleted on the next read. Returns whether the
# liveness key was missing (the node must write all its counts again), then
# one total per app read.
_SYNC_CONNECTIONS = """
local prefix = ARGV[1]
local node = ARGV[2]
local alive = prefix .. ':limits-node:'
local was_alive = redis.call('SET', alive .. node, '1', 'EX', ARGV[3], 'GET')
local written = tonumber(ARGV[4])
for i = 0, written - 1 do
  local key = prefix .. ':' .. ARGV[5 + 2 * i] .. ':connections'
  local count = tonumber(ARGV[6 + 2 * i])
  if count > 0 then
    redis.call('HSET', key, node, count)
  else
    redis.call('HDEL', key, node)
  end
end
local result = {was_alive and 0 or 1}
for i = 5 + 2 * written, #ARGV do
  local key = prefix .. ':' .. ARGV[i] .. ':connections'
  local counts = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #counts, 2 do
    local other = counts[j]
    if other ~= node then
      if redis.call('EXISTS', alive .. other) == 1 then
        total = total + tonumber(counts[j + 1])
      else
        redis.call('HDEL', key, other)
      end
    end
  end
  table.insert(result, total)
end
return result
"""


class RedisLimitCounter:
    """Counts shared by every node through Redis.

    Rates are counted in Redis, one script call per request. Connections are
    counted by each node in its own process and exchanged every
    ``CONNECTION_SYNC_INTERVAL``: each node writes its per-app counts to a
    hash per app (field: node id) and reads the other nodes' totals, which
    admission then adds to its own count without waiting on Redis. So a node
    learns of connections opened elsewhere within about two intervals, and
    during that time the nodes together can admit more than the quota. Each
    process (each worker of ``--workers``) admits at most the quota, so P
    processes never hold more than P times the quota.

    While Redis is unreachable, rates are counted in this process alone (each
    node then allows the full rate), and admission uses the last totals read.
    A stalled Redis counts as unreachable after ``COMMAND_TIMEOUT``. Once a
    command has failed, rate checks stop asking Redis until the exchange loop
    reaches it again, so an outage delays at most the requests that were
    waiting for that command.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "clarion",
        node_timeout: float = 10.0,
        node_id: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.liveness_ttl = max(1, round(node_timeout))
        self._redis = aioredis.from_url(
            url,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
        )
        self._take_rate = self._redis.register_script(_TAKE_RATE)
        self._sync = self._redis.register_script(_SYNC_CONNECTIONS)
        self._fallback = LocalLimitCounter()
        self._local_connections: Mapping[str, int] = {}
        self._written: dict[str, int] = {}
        """App id to the count that Redis has for this node."""
        self._elsewhere: dict[str, int] = {}
        self._watched: set[str] = set()
        """Apps with a connection quota, whose totals each exchange reads."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reachable = True

    def connections_elsewhere(self, app_id: str) -> int:
        if app_id not in self._watched:
            # The first admission check of an app has no total yet: read it now.
            self._watched.add(app_id)
            self._wake.set()
        return self._elsewhere.get(app_id, 0)

    async def take(self, app_id: str, rate: str, amount: int, limit: int) -> bool:
        if limit <= 0:
            return True
        if not self._reachable:
            return self._fallback.take_now(app_id, rate, amount, limit)
        try:
            allowed = await self._take_rate(
                args=[f"{self.prefix}:{app_id}:rate:{rate}", limit, amount]
            )
        except RedisError as exc:
            self._lost(exc)
            return self._fallback.take_now(app_id, rate, amount, limit)
        self._found()
        return bool(allowed)

    def start(self, local_connections: Mapping[str, int]) -> None:
        self._local_connections = local_connections
        self._task = asyncio.get_running_loop().create_task(self._exchange_loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for app_id in self._written:
                    pipe.hdel(f"{self.prefix}:{app_id}:connections", self.node_id)
                pipe.delete(f"{self.prefix}:limits-node:{self.node_id}")
                await pipe.execute()
        except RedisError as exc:
            logger.warning(
                "Could not remove the connection counts of node %s from Redis: %s",
                self.node_id,
                exc,
            )
        await self._redis.aclose()

    async def _exchange_loop(self) -> None:
        while True:
            try:
                await self.exchange()
            except RedisError as exc:
                self._lost(exc)
            except Exception:
                # A bug of ours: report it and keep exchanging.
                logger.exception("Exchanging connection counts with Redis failed")
            try:
                await asyncio.wait_for(self._wake.wait(), CONNECTION_SYNC_INTERVAL)
            except TimeoutError:
                pass
            self._wake.clear()

    async def exchange(self) -> None:
        """Write this node's changed connection counts and read the others'."""
        # Only apps with a quota are written: every node has the same apps, so
        # a node that serves such an app has had an admission check for it.
        counts = self._local_connections
        changed = {
            app_id: counts.get(app_id, 0)
            for app_id in self._watched | self._written.keys()
            if counts.get(app_id, 0) != self._written.get(app_id, 0)
        }
        watched = sorted(self._watched)
        if not changed and not watched:
            if not self._reachable:
                # Nothing to exchange, but rate checks wait for this to find
                # Redis again.
                await self._redis.ping()
                self._found()
            return
        args: list[str | int] = [
            self.prefix,
            self.node_id,
            self.liveness_ttl,
            len(changed),
        ]
        for app_id, count in changed.items():
            args += [app_id, count]
        args += watched
        result = await self._sync(args=args)
        self._found()
        for app_id, count in changed.items():
            if count:
                self._written[app_id] = count
            else:
                self._written.pop(app_id, None)
        if result[0]:
            # Redis had no liveness key for this node: it is new, or others
            # took it for dead and deleted its counts. Write them all next time.
            self._written.clear()
            self._wake.set()
        self._elsewhere = dict(zip(watched, map(int, result[1:]), strict=True))

    def _lost(self, exc: Exception) -> None:
        if self._reachable:
            logger.warning(
                "Redis unreachable for limit counts (%s): rates are counted per "
                "process and connection totals of other nodes are not updated",
                exc,
            )
        self._reachable = False

    def _found(self) -> None:
        if not self._reachable:
            logger.info("Redis reachable again for limit counts")
        self._reachable = True
