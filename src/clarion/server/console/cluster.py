"""Connection samples of every node that shares one Redis, for the chart.

Once a sample interval, each node with the console on writes its own counts
per app to ``{prefix}:console:samples:{node}``, a key that expires after
``node_timeout`` seconds, and reads the keys of every other node in the same
script call. A node that stops deletes its key, and a node that dies drops
out when its key expires, so its connections leave the totals within
``node_timeout`` seconds, as they leave the channel counts.

NOTE: the script builds key names at run time, which standalone Redis and
replicas allow but Redis Cluster does not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ClusterSamples", "Counts"]

logger = logging.getLogger(__name__)


class Counts(NamedTuple):
    """One node's counts for one app over one sample interval."""

    connections: int
    """Connections open at the time of the sample."""
    opened: int
    """Connections opened during the interval."""
    events: int
    """HTTP API and client events during the interval."""


# KEYS[1]: the set of node ids that wrote samples. ARGV: the key prefix of the
# sample strings, this node's id, its sample (JSON) and the expiry in seconds.
# Returns the samples of every node whose key has not expired, this node's
# included, and removes from the set the ids of nodes whose key has expired.
# The set itself expires with the samples once no node writes any more.
_EXCHANGE = """
redis.call('SET', ARGV[1] .. ARGV[2], ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local samples = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local sample = redis.call('GET', ARGV[1] .. node)
  if sample then
    table.insert(samples, sample)
  else
    redis.call('SREM', KEYS[1], node)
  end
end
return samples
"""


class ClusterSamples:
    """Writes this node's counts to Redis and sums those of every live node."""

    def __init__(
        self, redis: Redis, prefix: str, node: str, expiry_seconds: int
    ) -> None:
        self.node = node
        self.expiry_seconds = expiry_seconds
        self._redis = redis
        self._nodes_key = f"{prefix}:console:sample-nodes"
        self._key_prefix = f"{prefix}:console:samples:"
        self._exchange = redis.register_script(_EXCHANGE)

    async def exchange(
        self, local: Mapping[str, Counts]
    ) -> tuple[dict[str, Counts], int]:
        """Write ``local`` (app id to counts) as this node's sample and return
        the sums per app over every live node, with the number of nodes.

        Raises ``RedisError`` when Redis fails. A malformed sample of another
        node is left out of the sums and logged.
        """
        sample = json.dumps({app_id: list(counts) for app_id, counts in local.items()})
        raw_samples = await self._exchange(
            keys=[self._nodes_key],
            args=[self._key_prefix, self.node, sample, self.expiry_seconds],
        )
        totals = {app_id: Counts(0, 0, 0) for app_id in local}
        nodes = 0
        for raw in raw_samples:
            try:
                counted = _parse_sample(raw, totals.keys())
            except (ValueError, TypeError, KeyError):
                logger.error("Ignored a malformed console sample in Redis")
                continue
            nodes += 1
            for app_id, counts in counted.items():
                summed = zip(totals[app_id], counts, strict=True)
                totals[app_id] = Counts(*(total + value for total, value in summed))
        return totals, nodes

    async def remove(self) -> None:
        """Delete this node's sample, so that the totals drop its connections
        at once. Raises ``RedisError`` when Redis fails."""
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.delete(self._key_prefix + self.node)
        pipeline.srem(self._nodes_key, self.node)
        await pipeline.execute()


def _parse_sample(raw: str, app_ids: Iterable[str]) -> dict[str, Counts]:
    """Decode one node's sample, keeping the apps in ``app_ids``."""
    apps = json.loads(raw)
    counted = {}
    for app_id in app_ids:
        if app_id not in apps:
            continue
        values = [int(value) for value in apps[app_id]]
        if len(values) != len(Counts._fields):
            raise ValueError(f"expected {len(Counts._fields)} counts per app")
        counted[app_id] = Counts(*values)
    return counted
