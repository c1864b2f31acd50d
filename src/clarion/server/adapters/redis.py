"""The Redis adapter: channel state shared by every node of a cluster.

Shared state lives in Redis hashes, changed only by Lua scripts so that each
change is atomic: subscription counts per channel, presence members and their
connection counts, and signed-in users. Every node also records its own share
under ``{prefix}:node:{node_id}:*``, so that when a node dies another node can
subtract exactly that share (per-node ownership). Messages travel over one
Redis pub/sub channel; the node that publishes delivers to its own
subscribers directly and ignores its own copy from Redis, so each subscriber
gets a message exactly once.

While Redis is unreachable the node keeps serving its own connections from its
local state, logs the outage, and retries with back-off. When Redis answers
again the node rewrites its share from its local state.

NOTE: the scripts build key names at run time, which standalone Redis and
replicas allow but Redis Cluster does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from clarion.protocol import messages
from clarion.protocol.errors import SubscriptionError
from clarion.protocol.presence import Member
from clarion.server.adapters.base import (
    CachedEvent,
    CacheMiss,
    ChannelInfo,
    ClusterListener,
    Subscribed,
    Subscriber,
    Unsubscribed,
)
from clarion.server.adapters.local import LocalAdapter
from clarion.server.websocket import OutboundMessage

__all__ = ["RedisAdapter"]

logger = logging.getLogger(__name__)

SESSION_OWNER_TTL = 24 * 3600
"""Seconds an HTTP session's owner is remembered without being refreshed."""
CACHE_MISS_TTL = 24 * 3600
"""Seconds a cache channel's recorded miss lasts when the channel gets no cached
event, so that records of channels without publishers do not pile up."""
STARTUP_WAIT = 5.0
"""Seconds a subscribe or sign-in waits for a starting node's first heartbeat."""
HEARTBEAT_INTERVAL = 2.0
"""Seconds between two heartbeats of a node, and between two checks for dead
nodes; shorter when ``node_timeout`` is under four times this, so a live
node always beats several times within the timeout."""

_SEPARATOR = "\n"
"""Joins fields in hash keys and bus messages; no app id, channel name, user id
or JSON text that Clarion sends contains a raw newline."""

STALE_SHARE = "STALESHARE the share of this node was removed from Redis"
"""The error of a script that changes a node's share with an outdated epoch."""

# Each script that changes a node's share first checks the node's epoch, a
# token that the node writes with its share and that the removal of the share
# deletes. A command sent before a stall can run long after it timed out, from
# a connection the node gave up on. The check makes such a command a no-op once
# the node has written its share again. It also makes every change an error
# once another node has removed the share, so the node writes it again.

_SUBSCRIBE = (
    """
if redis.call('GET', KEYS[6]) ~= ARGV[7] then
  return redis.error_reply('"""
    + STALE_SHARE
    + """')
end
local user = ARGV[3]
local added = 0
if user ~= '' then
  if not redis.call('HGET', KEYS[4], user) then
    if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[5]) then
      return {-1}
    end
    redis.call('HSET', KEYS[3], user, ARGV[4])
    added = 1
  end
  redis.call('HINCRBY', KEYS[4], user, 1)
  redis.call('HINCRBY', KEYS[5], ARGV[6], 1)
end
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local roster = {}
if user ~= '' then
  roster = redis.call('HGETALL', KEYS[3])
end
local occupied = 0
if total == 1 then
  occupied = 1
  if redis.call('ZREM', KEYS[7], 'v\\n' .. ARGV[2]) == 1 then occupied = 2 end
end
if added == 1 and redis.call('ZREM', KEYS[7], 'r\\n' .. ARGV[6]) == 1 then
  added = 2
end
return {occupied, added, roster}
"""
)

_UNSUBSCRIBE = (
    """
if redis.call('GET', KEYS[6]) ~= ARGV[5] then
  return redis.error_reply('"""
    + STALE_SHARE
    + """')
end
local own = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if own <= 0 then
  return {0, 0}
end
if own == 1 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
end
local vacated = 0
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  vacated = 1
  if ARGV[6] ~= '' then
    redis.call('ZADD', KEYS[7], ARGV[6], 'v\\n' .. ARGV[2])
  end
end
local removed = 0
local user = ARGV[3]
if user ~= '' then
  if redis.call('HINCRBY', KEYS[5], ARGV[4], -1) <= 0 then
    redis.call('HDEL', KEYS[5], ARGV[4])
  end
  if redis.call('HINCRBY', KEYS[4], user, -1) <= 0 then
    redis.call('HDEL', KEYS[4], user)
    redis.call('HDEL', KEYS[3], user)
    removed = 1
    if ARGV[7] ~= '' then
      redis.call('ZADD', KEYS[7], ARGV[7], 'r\\n' .. ARGV[4])
    end
  end
end
return {vacated, removed}
"""
)

_ADD_USER = (
    """
if redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return redis.error_reply('"""
    + STALE_SHARE
    + """')
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then
  return 1
end
return 0
"""
)

_REMOVE_USER = (
    """
if redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return redis.error_reply('"""
    + STALE_SHARE
    + """')
end
local own = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if own <= 0 then
  return 0
end
if own == 1 then
  redis.call('HDEL', KEYS[2], ARGV[2])
else
  redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
)

# Subtract a node's whole share of the shared state and delete its epoch. Unless
# ARGV[3] is 'force', only a node whose last heartbeat is older than ARGV[2] is
# removed, and only by the one caller whose ZREM succeeds, so each dead node is
# cleaned up once. When ARGV[5] is not empty, the node starts a new share at
# once: ARGV[5] becomes its epoch and ARGV[6] its heartbeat. When ARGV[7] is not
# empty, the channels left empty and the members who left are held in KEYS[6]
# until ARGV[7], as the unsubscribe script holds them. When ARGV[8] is not
# empty, each member who left is published on the bus ARGV[8] from node
# ARGV[9]. Publishing here orders these departures before anything that the
# removed node publishes once it notices the removal.
# Returns the channels left empty, the presence members who left, the users
# left with no connection, and the channels that lost subscribers but are still
# occupied, each as flat lists of fields.
_REMOVE_NODE = """
local prefix = ARGV[4]
if ARGV[3] ~= 'force' then
  local score = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if (not score) or tonumber(score) >= tonumber(ARGV[2]) then
    return {{}, {}, {}, {}}
  end
  if redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then
    return {{}, {}, {}, {}}
  end
else
  redis.call('ZREM', KEYS[4], ARGV[1])
end
local function split(text)
  local parts = {}
  for part in string.gmatch(text, '([^\\n]+)') do
    table.insert(parts, part)
  end
  return parts
end
local vacated, removed, offline, shrunk = {}, {}, {}, {}
local subscriptions = redis.call('HGETALL', KEYS[1])
for i = 1, #subscriptions, 2 do
  local parts = split(subscriptions[i])
  local key = prefix .. ':' .. parts[1] .. ':channels'
  if redis.call('HINCRBY', key, parts[2], -tonumber(subscriptions[i + 1])) <= 0 then
    redis.call('HDEL', key, parts[2])
    if ARGV[7] ~= '' then
      redis.call('ZADD', KEYS[6], ARGV[7], 'v\\n' .. subscriptions[i])
    end
    table.insert(vacated, subscriptions[i])
  else
    table.insert(shrunk, subscriptions[i])
  end
end
local members = redis.call('HGETALL', KEYS[2])
for i = 1, #members, 2 do
  local parts = split(members[i])
  local counts = prefix .. ':' .. parts[1] .. ':member-connections:' .. parts[2]
  if redis.call('HINCRBY', counts, parts[3], -tonumber(members[i + 1])) <= 0 then
    redis.call('HDEL', counts, parts[3])
    redis.call('HDEL', prefix .. ':' .. parts[1] .. ':members:' .. parts[2], parts[3])
    if ARGV[7] ~= '' then
      redis.call('ZADD', KEYS[6], ARGV[7], 'r\\n' .. members[i])
    end
    if ARGV[8] ~= '' then
      redis.call('PUBLISH', ARGV[8], 'd\\n' .. ARGV[9] .. '\\n' .. members[i])
    end
    table.insert(removed, members[i])
  end
end
local users = redis.call('HGETALL', KEYS[3])
for i = 1, #users, 2 do
  local parts = split(users[i])
  local key = prefix .. ':' .. parts[1] .. ':users'
  if redis.call('HINCRBY', key, parts[2], -tonumber(users[i + 1])) <= 0 then
    redis.call('HDEL', key, parts[2])
    table.insert(offline, users[i])
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[5], ARGV[5])
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
end
return {vacated, removed, offline, shrunk}
"""


# Return the cached event of KEYS[1] with its remaining milliseconds, or, when
# there is none, '' and whether this call recorded the first miss in KEYS[2]
# (only when ARGV[1] is '1'), so that one node of the cluster sends cache_miss.
_GET_CACHE_OR_MISS = """
local raw = redis.call('GET', KEYS[1])
if raw then
  local remaining = redis.call('PTTL', KEYS[1])
  if remaining > 0 then
    return {raw, remaining}
  end
end
if ARGV[1] == '1' and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return {'', 1}
end
return {'', 0}
"""

# Record the heartbeat ARGV[3] of node ARGV[1] if its epoch is still ARGV[2];
# return 0 when another node removed its share, which the node must then write
# again. The score never goes back, so a late heartbeat cannot make a live node
# look dead.
_BEAT = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""


class _ShareGate:
    """Lets changes to this node's share run together, but never while the node
    rewrites its whole share, so that each change is in Redis exactly once."""

    def __init__(self) -> None:
        self._changes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        """Wait for a rewrite in progress to end, then hold off new ones."""
        await self._open.wait()
        self._changes += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._changes -= 1
            if not self._changes:
                self._idle.set()

    @contextlib.asynccontextmanager
    async def rewrite(self) -> AsyncIterator[None]:
        """Stop new changes and wait for the running ones to end."""
        self._open.clear()
        try:
            await self._idle.wait()
            yield
        finally:
            self._open.set()


class RedisAdapter:
    """Channel state shared through Redis by every node of a cluster.

    Reads (counts, channel lists, rosters, users) come from Redis and agree on
    every node. While Redis is unreachable they come from this node's own
    connections only, which the server logs as a warning.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "clarion",
        node_timeout: float = 10.0,
        node_id: str | None = None,
        webhook_delay: float = 3.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.node_timeout = node_timeout
        self.webhook_delay = webhook_delay
        """Seconds a held ``channel_vacated`` or ``member_removed`` webhook waits
        for a subscription that cancels it."""
        self.heartbeat_interval = min(HEARTBEAT_INTERVAL, node_timeout / 4)
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self.local = LocalAdapter()
        self.tally = self.local.tally
        self._redis = aioredis.from_url(url, decode_responses=True)
        self._subscribe = self._redis.register_script(_SUBSCRIBE)
        self._unsubscribe = self._redis.register_script(_UNSUBSCRIBE)
        self._add_user = self._redis.register_script(_ADD_USER)
        self._remove_user = self._redis.register_script(_REMOVE_USER)
        self._remove_node = self._redis.register_script(_REMOVE_NODE)
        self._beat = self._redis.register_script(_BEAT)
        self._get_cache_or_miss = self._redis.register_script(_GET_CACHE_OR_MISS)
        self._listener: ClusterListener | None = None
        self._healthy = False
        self._resync_needed = True
        self._epoch = ""
        """The token of this node's share in Redis; see ``STALE_SHARE``."""
        self._gate = _ShareGate()
        self._missed: dict[str, Member | None] = {}
        """Roster changes made in local state only, which other nodes' clients
        have not seen: by member field, the member who joined, or None for one
        who left."""
        self._closing = False
        self._ready = asyncio.Event()
        """Set once the first heartbeat has written this node's share."""
        self._tasks: list[asyncio.Task[None]] = []
        self._local_users: dict[tuple[str, str], dict[str, Subscriber]] = {}
        self._jitter = random.Random()

    def __repr__(self) -> str:
        return f"RedisAdapter(node_id={self.node_id!r}, prefix={self.prefix!r})"

    # Keys

    def _channels_key(self, app_id: str) -> str:
        return f"{self.prefix}:{app_id}:channels"

    def _members_key(self, app_id: str, channel: str) -> str:
        return f"{self.prefix}:{app_id}:members:{channel}"

    def _member_connections_key(self, app_id: str, channel: str) -> str:
        return f"{self.prefix}:{app_id}:member-connections:{channel}"

    def _users_key(self, app_id: str) -> str:
        return f"{self.prefix}:{app_id}:users"

    def _cache_key(self, app_id: str, channel: str) -> str:
        return f"{self.prefix}:{app_id}:cache:{channel}"

    def _cache_miss_key(self, app_id: str, channel: str) -> str:
        return f"{self.prefix}:{app_id}:cache-miss:{channel}"

    def _node_key(self, node_id: str, kind: str) -> str:
        return f"{self.prefix}:node:{node_id}:{kind}"

    @property
    def _nodes_key(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def _held_key(self) -> str:
        return f"{self.prefix}:webhooks:held"

    @property
    def _bus(self) -> str:
        return f"{self.prefix}:bus"

    # Lifecycle

    @property
    def healthy(self) -> bool:
        """False from start until a heartbeat reaches Redis, and from any failed
        Redis call until the next heartbeat succeeds."""
        return self._healthy

    def start(self, listener: ClusterListener) -> None:
        """Start the heartbeat, dead-node checks and the message listener."""
        self._listener = listener
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._maintain()),
            loop.create_task(self._listen()),
        ]
        logger.info(
            "Redis adapter started: node %s, prefix %s, node timeout %g s",
            self.node_id,
            self.prefix,
            self.node_timeout,
        )

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # A task stuck in a Redis call may not end at once; stop waiting.
            await asyncio.wait(self._tasks, timeout=2)
        try:
            await self._remove_node(
                keys=self._node_keys(self.node_id),
                args=[self.node_id, 0, "force", self.prefix, "", 0, "", "", ""],
            )
        except RedisError as exc:
            logger.warning("Could not remove node %s from Redis: %s", self.node_id, exc)
        await self.local.close()
        await self._redis.aclose()

    def _node_keys(self, node_id: str) -> list[str]:
        return [
            self._node_key(node_id, "subscriptions"),
            self._node_key(node_id, "members"),
            self._node_key(node_id, "users"),
            self._nodes_key,
            self._node_key(node_id, "epoch"),
            self._held_key,
        ]

    async def _maintain(self) -> None:
        """Beat, remove dead nodes, and rewrite this node's share after an outage."""
        failures = 0
        while not self._closing:
            try:
                if not self._resync_needed and not await self._beat(
                    keys=[self._nodes_key, self._node_key(self.node_id, "epoch")],
                    args=[self.node_id, self._epoch, time.time()],
                ):
                    # Other nodes took this one for dead during a stall and
                    # removed its share, which it must write again.
                    logger.warning(
                        "Node %s was removed by another node; writing its share again",
                        self.node_id,
                    )
                    self._resync_needed = True
                if self._resync_needed:
                    await self._resync()
                self._ready.set()
                if not self._healthy:
                    logger.info("Redis at %s is reachable", _safe_url(self.url))
                self._healthy = True
                failures = 0
                await self._remove_dead_nodes()
                await self._release_overdue_holds()
                delay = self.heartbeat_interval
            except RedisError as exc:
                failures += 1
                self._mark_unhealthy(exc)
                delay = min(30.0, self.heartbeat_interval * 2 ** min(failures - 1, 4))
                delay *= self._jitter.uniform(0.5, 1.0)
                logger.warning(
                    "Redis unreachable (attempt %d): %s; retrying in %.1f s",
                    failures,
                    exc,
                    delay,
                )
            await asyncio.sleep(delay)

    def _mark_unhealthy(self, exc: Exception) -> None:
        if self._healthy and STALE_SHARE in str(exc):
            logger.warning(
                "Node %s was removed by another node: serving local connections "
                "only until it writes its share again",
                self.node_id,
            )
        elif self._healthy:
            logger.warning(
                "Lost Redis at %s (%s): serving local connections only",
                _safe_url(self.url),
                exc,
            )
        self._healthy = False
        self._resync_needed = True

    async def _resync(self) -> None:
        """Replace this node's share in Redis with what its connections hold now.

        Announces to every node's clients the members whom the shared roster
        lacked before and has now: other nodes removed them as dead, Redis lost
        them, or they joined during an outage. Then tells the other nodes'
        clients of the members who joined or left here while Redis was
        unreachable, unless that was just announced or the roster still lists
        a member who left here. A member present both before and after is not
        announced.
        """
        async with self._gate.rewrite():
            # A change made while the gate is closed waits for the rewrite; one
            # made before, in local state only, is in the snapshot below.
            self._resync_needed = False
            missed, self._missed = self._missed, {}
            epoch = uuid.uuid4().hex
            _, before, _, _ = await self._remove_node(
                keys=self._node_keys(self.node_id),
                args=[
                    self.node_id,
                    0,
                    "force",
                    self.prefix,
                    epoch,
                    time.time(),
                    "",
                    "",
                    "",
                ],
            )
            self._epoch = epoch
            restored, returned, left = await self._rewrite_share(set(before))
        listener = self._listener
        if listener is not None:
            for app_id, channel, member in returned:
                await listener.member_rejoined(
                    app_id, channel, member.user_id, member.user_info
                )
        announced = {
            _SEPARATOR.join((app_id, channel, member.user_id))
            for app_id, channel, member in returned
        }
        for field in left:
            missed[field] = None
        for field, joined in missed.items():
            if field not in announced:
                await self._announce_missed(field, joined)
        logger.info(
            "Node %s wrote its %d subscription(s) and %d user(s) to Redis",
            self.node_id,
            restored,
            len(self._local_users),
        )

    async def _announce_missed(self, field: str, joined: Member | None) -> None:
        """Send other nodes' clients ``member_added`` for ``joined``, or
        ``member_removed`` when ``joined`` is None and the member has no
        connection left in the cluster. This node's clients saw the change
        when it happened."""
        app_id, channel, user_id = field.split(_SEPARATOR)
        if joined is not None:
            text = messages.member_added(channel, user_id, joined.user_info)
        elif await self._redis.hexists(self._members_key(app_id, channel), user_id):
            return
        else:
            text = messages.member_removed(channel, user_id)
        await self._broadcast("m", app_id, channel, "", text)

    async def _rewrite_share(
        self, before: set[str]
    ) -> tuple[int, list[tuple[str, str, Member]], set[str]]:
        """Write every local subscription and signed-in user to Redis.

        ``before`` contains the members that the removal of the old share took out
        of the shared rosters. Returns the number of subscriptions written, the
        members added to a roster that lacked them before, and the members of
        ``before`` that no local connection brought back.
        """
        restored = 0
        returned = []
        for app_id, channels in self.local.snapshot().items():
            for channel, subscribers in channels.items():
                for _subscriber, member in subscribers:
                    _, added, _ = await self._run_subscribe(
                        app_id, channel, member, 2**31
                    )
                    restored += 1
                    if not added or member is None:
                        continue
                    field = _SEPARATOR.join((app_id, channel, member.user_id))
                    if field in before:
                        before.discard(field)
                    else:
                        returned.append((app_id, channel, member))
        for (app_id, user_id), connections in self._local_users.items():
            for _ in connections:
                await self._run_add_user(app_id, user_id)
        return restored, returned, before

    async def _remove_dead_nodes(self) -> None:
        cutoff = time.time() - self.node_timeout
        dead = await self._redis.zrangebyscore(self._nodes_key, "-inf", cutoff)
        for node_id in map(str, dead):
            if node_id == self.node_id:
                continue
            vacated, removed, offline, shrunk = await self._remove_node(
                keys=self._node_keys(node_id),
                args=[
                    node_id,
                    cutoff,
                    "",
                    self.prefix,
                    "",
                    0,
                    repr(time.time() + self.webhook_delay),
                    self._bus,
                    self.node_id,
                ],
            )
            if vacated or removed or offline:
                logger.warning(
                    "Removed dead node %s: %d channel(s) vacated, %d member(s) and "
                    "%d user(s) gone",
                    node_id,
                    len(vacated),
                    len(removed),
                    len(offline),
                )
            await self._announce_departures(removed, vacated, offline)
            if self._listener is not None:
                for field in shrunk:
                    app_id, channel = field.split(_SEPARATOR)
                    await self._listener.subscription_count_changed(app_id, channel)

    async def _announce_departures(
        self, removed: list[str], vacated: list[str], offline: list[str]
    ) -> None:
        listener = self._listener
        if listener is None:
            return
        for field in removed:
            app_id, channel, user_id = field.split(_SEPARATOR)
            await listener.member_left(app_id, channel, user_id)
        for field in vacated:
            app_id, channel = field.split(_SEPARATOR)
            listener.channel_vacated(app_id, channel)
        for field in offline:
            app_id, user_id = field.split(_SEPARATOR)
            await listener.user_left(app_id, user_id)

    # Messages between nodes

    async def _listen(self) -> None:
        failures = 0
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._bus)
                failures = 0
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._receive(message["data"])
            except RedisError as exc:
                failures += 1
                self._mark_unhealthy(exc)
                delay = min(30.0, 0.5 * 2 ** min(failures - 1, 6))
                logger.warning(
                    "Redis message listener lost its connection (attempt %d): %s; "
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

    async def _receive(self, raw: str) -> None:
        kind, origin, body = raw.split(_SEPARATOR, 2)
        if origin == self.node_id and kind != "d":
            return
        try:
            if kind == "d":
                # A dead node's member left. The removal script published this,
                # so every node, the remover too, delivers it in the bus's order.
                app_id, channel, user_id = body.split(_SEPARATOR)
                text = messages.member_removed(channel, user_id)
                await self.local.publish(app_id, channel, OutboundMessage(text))
            elif kind == "m":
                app_id, channel, except_socket_id, text = body.split(_SEPARATOR, 3)
                await self.local.publish(
                    app_id, channel, OutboundMessage(text), except_socket_id or None
                )
            elif kind == "u" and self._listener is not None:
                app_id, user_id, status = body.split(_SEPARATOR)
                self._listener.user_status(app_id, user_id, status == "online")
            elif kind == "t" and self._listener is not None:
                app_id, user_id = body.split(_SEPARATOR)
                self._listener.terminate_user(app_id, user_id)
        except ValueError:
            logger.error("Ignored a malformed cluster message of kind %r", kind)

    async def _broadcast(self, kind: str, *fields: str) -> None:
        payload = _SEPARATOR.join((kind, self.node_id, *fields))
        try:
            await self._redis.publish(self._bus, payload)
        except RedisError as exc:
            self._mark_unhealthy(exc)
            logger.warning(
                "Could not send a %s message to other nodes: Redis unreachable", kind
            )

    # Subscriptions

    async def add_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        member: Member | None,
        max_members: int,
    ) -> Subscribed:
        await self._wait_until_ready()
        async with self._gate.change():
            return await self._add_subscription(
                app_id, channel, subscriber, member, max_members
            )

    async def _add_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        member: Member | None,
        max_members: int,
    ) -> Subscribed:
        if not self._healthy:
            self._resync_needed = True
            return await self._add_locally(
                app_id, channel, subscriber, member, max_members
            )
        try:
            occupied, added, roster = await self._run_subscribe(
                app_id, channel, member, max_members
            )
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return await self._add_locally(
                app_id, channel, subscriber, member, max_members
            )
        await self.local.add_subscription(app_id, channel, subscriber, member, 2**31)
        return Subscribed(
            bool(occupied),
            bool(added),
            roster,
            cancelled_vacated=occupied == 2,
            cancelled_removed=added == 2,
        )

    async def _add_locally(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        member: Member | None,
        max_members: int,
    ) -> Subscribed:
        result = await self.local.add_subscription(
            app_id, channel, subscriber, member, max_members
        )
        if result.member_added and member is not None:
            self._missed[_SEPARATOR.join((app_id, channel, member.user_id))] = member
        return result

    async def _run_subscribe(
        self, app_id: str, channel: str, member: Member | None, max_members: int
    ) -> tuple[int, int, dict[str, object] | None]:
        user_id = member.user_id if member is not None else ""
        info = json.dumps(member.user_info) if member is not None else ""
        result = await self._subscribe(
            keys=[
                self._channels_key(app_id),
                self._node_key(self.node_id, "subscriptions"),
                self._members_key(app_id, channel),
                self._member_connections_key(app_id, channel),
                self._node_key(self.node_id, "members"),
                self._node_key(self.node_id, "epoch"),
                self._held_key,
            ],
            args=[
                channel,
                f"{app_id}{_SEPARATOR}{channel}",
                user_id,
                info,
                max_members,
                f"{app_id}{_SEPARATOR}{channel}{_SEPARATOR}{user_id}",
                self._epoch,
            ],
        )
        if result[0] == -1:
            raise SubscriptionError(
                "LimitReached",
                f"Presence channel {channel} already has the maximum of "
                f"{max_members} members",
                4100,
                "max_presence_members",
            )
        roster = None
        if member is not None:
            flat = result[2]
            roster = {flat[i]: json.loads(flat[i + 1]) for i in range(0, len(flat), 2)}
        return int(result[0]), int(result[1]), roster

    async def remove_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        *,
        hold_vacated: bool = False,
        hold_removed: bool = False,
    ) -> Unsubscribed:
        due = repr(time.time() + self.webhook_delay)
        async with self._gate.change():
            return await self._remove_subscription(
                app_id,
                channel,
                subscriber,
                due if hold_vacated else "",
                due if hold_removed else "",
            )

    async def _remove_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        vacated_due: str,
        removed_due: str,
    ) -> Unsubscribed:
        local, member_id = self.local.leave(app_id, channel, subscriber)
        if not self._healthy:
            self._resync_needed = True
            return self._left_locally(app_id, channel, local)
        user_id = member_id or ""
        try:
            vacated, removed = await self._unsubscribe(
                keys=[
                    self._channels_key(app_id),
                    self._node_key(self.node_id, "subscriptions"),
                    self._members_key(app_id, channel),
                    self._member_connections_key(app_id, channel),
                    self._node_key(self.node_id, "members"),
                    self._node_key(self.node_id, "epoch"),
                    self._held_key,
                ],
                args=[
                    channel,
                    f"{app_id}{_SEPARATOR}{channel}",
                    user_id,
                    f"{app_id}{_SEPARATOR}{channel}{_SEPARATOR}{user_id}",
                    self._epoch,
                    vacated_due,
                    removed_due,
                ],
            )
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return self._left_locally(app_id, channel, local)
        return Unsubscribed(bool(vacated), user_id if removed else None, held=True)

    def _left_locally(
        self, app_id: str, channel: str, result: Unsubscribed
    ) -> Unsubscribed:
        if result.removed_user_id is not None:
            field = _SEPARATOR.join((app_id, channel, result.removed_user_id))
            self._missed[field] = None
        return result

    async def claim_held_webhook(
        self, app_id: str, channel: str, user_id: str | None
    ) -> bool:
        field = _held_field(app_id, channel, user_id)
        try:
            return bool(await self._redis.zrem(self._held_key, field))
        except RedisError as exc:
            # Sending twice is better than never: the hold cannot be checked.
            self._mark_unhealthy(exc)
            logger.warning(
                "Could not check a held webhook for app %s: Redis unreachable",
                app_id,
                extra={"app_id": app_id},
            )
            return True

    async def _release_overdue_holds(self) -> None:
        """Send the held webhooks that their holder, now dead or stalled, did not
        send within ``node_timeout`` after they were due."""
        cutoff = time.time() - self.node_timeout
        fields = await self._redis.zrangebyscore(
            self._held_key, "-inf", cutoff, start=0, num=100
        )
        for field in map(str, fields):
            if not await self._redis.zrem(self._held_key, field):
                continue
            kind, _, rest = field.partition(_SEPARATOR)
            parts = rest.split(_SEPARATOR)
            if self._listener is None or len(parts) != (2 if kind == "v" else 3):
                continue
            logger.info("Sending an overdue held webhook of app %s", parts[0])
            user_id = parts[2] if kind == "r" else None
            self._listener.held_webhook_overdue(parts[0], parts[1], user_id)

    async def publish(
        self,
        app_id: str,
        channel: str,
        message: OutboundMessage,
        except_socket_id: str | None = None,
    ) -> None:
        await self.local.publish(app_id, channel, message, except_socket_id)
        await self._broadcast(
            "m", app_id, channel, except_socket_id or "", message.text
        )

    # Reads

    async def channel_info(self, app_id: str, channel: str) -> ChannelInfo:
        try:
            count = await self._redis.hget(self._channels_key(app_id), channel)
            user_count = None
            if channel.startswith(("presence-", "presence-cache-")):
                user_count = await self._redis.hlen(self._members_key(app_id, channel))
        except RedisError as exc:
            self._mark_unhealthy(exc)
            logger.warning("Channel info from local state only: Redis unreachable")
            return await self.local.channel_info(app_id, channel)
        return ChannelInfo(int(count or 0), user_count)

    async def channels(
        self, app_id: str, prefix: str = ""
    ) -> Mapping[str, ChannelInfo]:
        try:
            counts = await self._redis.hgetall(self._channels_key(app_id))
            result = {}
            for name, count in ((str(n), c) for n, c in counts.items()):
                if not name.startswith(prefix) or int(count) <= 0:
                    continue
                user_count = None
                if name.startswith("presence-"):
                    user_count = await self._redis.hlen(self._members_key(app_id, name))
                result[name] = ChannelInfo(int(count), user_count)
            return result
        except RedisError as exc:
            self._mark_unhealthy(exc)
            logger.warning("Channel list from local state only: Redis unreachable")
            return await self.local.channels(app_id, prefix)

    async def members(self, app_id: str, channel: str) -> Mapping[str, object]:
        try:
            raw = await self._redis.hgetall(self._members_key(app_id, channel))
        except RedisError as exc:
            self._mark_unhealthy(exc)
            logger.warning("Presence members from local state only: Redis unreachable")
            return await self.local.members(app_id, channel)
        return {str(user_id): json.loads(info) for user_id, info in raw.items()}

    # Cache channels

    async def set_cache(
        self, app_id: str, channel: str, event: str, data: str, ttl: int
    ) -> None:
        await self.local.set_cache(app_id, channel, event, data, ttl)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    self._cache_key(app_id, channel), json.dumps([event, data]), ex=ttl
                )
                pipe.delete(self._cache_miss_key(app_id, channel))
                await pipe.execute()
        except RedisError as exc:
            self._mark_unhealthy(exc)

    async def get_cache(self, app_id: str, channel: str) -> CachedEvent | None:
        key = self._cache_key(app_id, channel)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                raw, remaining = await pipe.execute()
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return await self.local.get_cache(app_id, channel)
        if raw is None or remaining <= 0:
            return None
        event, data = json.loads(raw)
        return CachedEvent(event, data, math.ceil(remaining / 1000))

    async def get_cache_or_miss(
        self, app_id: str, channel: str, record_miss: bool
    ) -> CachedEvent | CacheMiss:
        try:
            raw, number = await self._get_cache_or_miss(
                keys=[
                    self._cache_key(app_id, channel),
                    self._cache_miss_key(app_id, channel),
                ],
                args=["1" if record_miss else "0", CACHE_MISS_TTL],
            )
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return await self.local.get_cache_or_miss(app_id, channel, record_miss)
        if not raw:
            return CacheMiss(first=bool(number))
        event, data = json.loads(raw)
        return CachedEvent(event, data, math.ceil(int(number) / 1000))

    # Signed-in users

    async def _wait_until_ready(self) -> None:
        # Right after start-up, wait briefly for the first heartbeat rather than
        # serve from local state alone, which would show partial rosters.
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), STARTUP_WAIT)
            except TimeoutError:
                pass

    async def add_user(self, app_id: str, user_id: str, subscriber: Subscriber) -> bool:
        await self._wait_until_ready()
        async with self._gate.change():
            return await self._add_signed_in(app_id, user_id, subscriber)

    async def _add_signed_in(
        self, app_id: str, user_id: str, subscriber: Subscriber
    ) -> bool:
        connections = self._local_users.setdefault((app_id, user_id), {})
        first_here = not connections
        connections[subscriber.socket_id] = subscriber
        if not self._healthy:
            self._resync_needed = True
            return first_here
        try:
            return await self._run_add_user(app_id, user_id)
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return first_here

    async def _run_add_user(self, app_id: str, user_id: str) -> bool:
        first = await self._add_user(
            keys=[
                self._users_key(app_id),
                self._node_key(self.node_id, "users"),
                self._node_key(self.node_id, "epoch"),
            ],
            args=[user_id, f"{app_id}{_SEPARATOR}{user_id}", self._epoch],
        )
        return bool(first)

    async def remove_user(
        self, app_id: str, user_id: str, subscriber: Subscriber
    ) -> bool:
        async with self._gate.change():
            return await self._remove_signed_in(app_id, user_id, subscriber)

    async def _remove_signed_in(
        self, app_id: str, user_id: str, subscriber: Subscriber
    ) -> bool:
        connections = self._local_users.get((app_id, user_id), {})
        if connections.pop(subscriber.socket_id, None) is None:
            return False
        last_here = not connections
        if last_here:
            del self._local_users[(app_id, user_id)]
        if not self._healthy:
            self._resync_needed = True
            return last_here
        try:
            last = await self._remove_user(
                keys=[
                    self._users_key(app_id),
                    self._node_key(self.node_id, "users"),
                    self._node_key(self.node_id, "epoch"),
                ],
                args=[user_id, f"{app_id}{_SEPARATOR}{user_id}", self._epoch],
            )
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return last_here
        return bool(last)

    async def online_users(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        ids = list(user_ids)
        if not ids:
            return set()
        try:
            counts = await self._redis.hmget(self._users_key(app_id), ids)
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return {
                user_id for user_id in ids if (app_id, user_id) in self._local_users
            }
        return {
            user_id
            for user_id, count in zip(ids, counts, strict=True)
            if count and int(count) > 0
        }

    async def broadcast_user_status(
        self, app_id: str, user_id: str, online: bool
    ) -> None:
        if self._listener is not None:
            self._listener.user_status(app_id, user_id, online)
        await self._broadcast("u", app_id, user_id, "online" if online else "offline")

    async def terminate_user(self, app_id: str, user_id: str) -> None:
        if self._listener is not None:
            self._listener.terminate_user(app_id, user_id)
        await self._broadcast("t", app_id, user_id)

    # HTTP sessions

    async def set_session_owner(self, session: str, address: str | None) -> None:
        key = f"{self.prefix}:http-session:{session}"
        try:
            if address is None:
                await self._redis.delete(key)
            else:
                # The expiry only clears entries of processes that died.
                await self._redis.set(key, address, ex=SESSION_OWNER_TTL)
        except RedisError as exc:
            self._mark_unhealthy(exc)

    async def session_owner(self, session: str) -> str | None:
        try:
            owner = await self._redis.get(f"{self.prefix}:http-session:{session}")
        except RedisError as exc:
            self._mark_unhealthy(exc)
            return None
        return None if owner is None else str(owner)


def _held_field(app_id: str, channel: str, user_id: str | None) -> str:
    """Return the member of the held set for a ``channel_vacated`` (``user_id``
    None) or ``member_removed`` webhook, as the scripts write it."""
    if user_id is None:
        return _SEPARATOR.join(("v", app_id, channel))
    return _SEPARATOR.join(("r", app_id, channel, user_id))


def _safe_url(url: str) -> str:
    """Return ``url`` without its password, for logs."""
    scheme, separator, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{separator}{rest}"
