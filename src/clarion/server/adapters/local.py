"""The in-process adapter: channel state in dictionaries of one process."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

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
from clarion.server.tally import Tally
from clarion.server.websocket import OutboundMessage, frame_payload_size

__all__ = ["LocalAdapter"]


class _PresenceUser:
    __slots__ = ("socket_ids", "user_info")

    def __init__(self, user_info: object) -> None:
        # The first connection's user_info is kept until the user leaves entirely.
        self.user_info = user_info
        self.socket_ids: set[str] = set()


class _Channel:
    __slots__ = ("members", "subscribers")

    def __init__(self, presence: bool) -> None:
        self.subscribers: dict[str, Subscriber] = {}
        self.members: dict[str, _PresenceUser] | None = {} if presence else None


class LocalAdapter:
    """Channel state for one process, with no sharing."""

    def __init__(self) -> None:
        self.tally = Tally()
        self._listener: ClusterListener | None = None
        self._apps: dict[str, dict[str, _Channel]] = {}
        self._cache: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._next_cache_purge = 1024
        """(app id, channel) to (event, data, expiry as Unix time)."""
        self._cache_misses: set[tuple[str, str]] = set()
        """Cache channels whose miss was recorded since their last cached event."""
        self._users: dict[str, dict[str, dict[str, Subscriber]]] = {}
        """App id to user id to the user's signed-in connections by socket_id."""

    async def add_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        member: Member | None,
        max_members: int,
    ) -> Subscribed:
        channels = self._apps.setdefault(app_id, {})
        state = channels.get(channel)
        if state is None:
            state = _Channel(presence=member is not None)
        socket_id = subscriber.socket_id
        already = socket_id in state.subscribers

        member_added = False
        if member is not None and state.members is not None and not already:
            user = state.members.get(member.user_id)
            if user is None:
                if len(state.members) >= max_members:
                    raise SubscriptionError(
                        "LimitReached",
                        f"Presence channel {channel} already has the maximum of "
                        f"{max_members} members",
                        4100,
                        "max_presence_members",
                    )
                user = state.members[member.user_id] = _PresenceUser(member.user_info)
                member_added = True
            user.socket_ids.add(socket_id)

        occupied = not state.subscribers
        channels[channel] = state
        state.subscribers[socket_id] = subscriber
        roster = None
        if state.members is not None:
            roster = {
                user_id: user.user_info for user_id, user in state.members.items()
            }
        return Subscribed(occupied, member_added, roster)

    async def remove_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        *,
        hold_vacated: bool = False,
        hold_removed: bool = False,
    ) -> Unsubscribed:
        return self.leave(app_id, channel, subscriber)[0]

    async def claim_held_webhook(
        self, app_id: str, channel: str, user_id: str | None
    ) -> bool:
        # Nothing is held here, but a caller that asks may send.
        return True

    def leave(
        self, app_id: str, channel: str, subscriber: Subscriber
    ) -> tuple[Unsubscribed, str | None]:
        """Remove a subscription; also return the presence user id it had."""
        channels = self._apps.get(app_id)
        state = channels.get(channel) if channels else None
        socket_id = subscriber.socket_id
        if state is None or state.subscribers.pop(socket_id, None) is None:
            return Unsubscribed(vacated=False, removed_user_id=None), None

        member_id = None
        removed_user_id = None
        if state.members is not None:
            for user_id, user in state.members.items():
                if socket_id in user.socket_ids:
                    member_id = user_id
                    user.socket_ids.discard(socket_id)
                    if not user.socket_ids:
                        removed_user_id = user_id
                    break
            if removed_user_id is not None:
                del state.members[removed_user_id]

        vacated = not state.subscribers
        if vacated and channels is not None:
            del channels[channel]
            if not channels:
                del self._apps[app_id]
        return Unsubscribed(vacated, removed_user_id), member_id

    def snapshot(
        self,
    ) -> dict[str, dict[str, list[tuple[Subscriber, Member | None]]]]:
        """Return every local subscription: app id to channel to each subscriber
        with the presence member it joined as."""
        result: dict[str, dict[str, list[tuple[Subscriber, Member | None]]]] = {}
        for app_id, channels in self._apps.items():
            for channel, state in channels.items():
                member_of: dict[str, Member] = {}
                for user_id, user in (state.members or {}).items():
                    for socket_id in user.socket_ids:
                        member_of[socket_id] = Member(user_id, user.user_info)
                result.setdefault(app_id, {})[channel] = [
                    (subscriber, member_of.get(socket_id))
                    for socket_id, subscriber in state.subscribers.items()
                ]
        return result

    async def publish(
        self,
        app_id: str,
        channel: str,
        message: OutboundMessage,
        except_socket_id: str | None = None,
    ) -> None:
        channels = self._apps.get(app_id)
        state = channels.get(channel) if channels else None
        if state is None:
            return
        subscribers = state.subscribers
        for socket_id, subscriber in subscribers.items():
            if socket_id != except_socket_id:
                subscriber.send(message)
        # Counted once per publish rather than once per subscriber.
        receivers = len(subscribers) - (except_socket_id in subscribers)
        if receivers:
            tally = self.tally
            tally.messages_sent += receivers
            tally.bytes_sent += receivers * frame_payload_size(message.frame)
            tally.published = True

    async def channel_info(self, app_id: str, channel: str) -> ChannelInfo:
        channels = self._apps.get(app_id)
        state = channels.get(channel) if channels else None
        if state is None:
            return ChannelInfo(subscription_count=0, user_count=None)
        return _info(state)

    async def channels(
        self, app_id: str, prefix: str = ""
    ) -> Mapping[str, ChannelInfo]:
        channels = self._apps.get(app_id, {})
        return {
            name: _info(state)
            for name, state in channels.items()
            if name.startswith(prefix)
        }

    async def members(self, app_id: str, channel: str) -> Mapping[str, object]:
        channels = self._apps.get(app_id)
        state = channels.get(channel) if channels else None
        if state is None or state.members is None:
            return {}
        return {user_id: user.user_info for user_id, user in state.members.items()}

    async def set_cache(
        self, app_id: str, channel: str, event: str, data: str, ttl: int
    ) -> None:
        now = time.time()
        if len(self._cache) >= self._next_cache_purge:
            self._purge_cache(now)
        self._cache[(app_id, channel)] = (event, data, now + ttl)
        self._cache_misses.discard((app_id, channel))

    async def get_cache(self, app_id: str, channel: str) -> CachedEvent | None:
        entry = self._cache.get((app_id, channel))
        if entry is None:
            return None
        event, data, expires_at = entry
        remaining = expires_at - time.time()
        if remaining <= 0:
            del self._cache[(app_id, channel)]
            return None
        return CachedEvent(event, data, math.ceil(remaining))

    async def get_cache_or_miss(
        self, app_id: str, channel: str, record_miss: bool
    ) -> CachedEvent | CacheMiss:
        cached = await self.get_cache(app_id, channel)
        if cached is not None:
            return cached
        key = (app_id, channel)
        first = record_miss and key not in self._cache_misses
        if first:
            self._cache_misses.add(key)
        return CacheMiss(first)

    def _purge_cache(self, now: float) -> None:
        # Expired entries are otherwise dropped only when read; purging each time
        # the cache doubles keeps entries of channels that no one reads from piling up.
        self._cache = {
            key: entry for key, entry in self._cache.items() if entry[2] > now
        }
        self._next_cache_purge = max(1024, 2 * len(self._cache))

    async def add_user(self, app_id: str, user_id: str, subscriber: Subscriber) -> bool:
        connections = self._users.setdefault(app_id, {}).setdefault(user_id, {})
        first = not connections
        connections[subscriber.socket_id] = subscriber
        return first

    async def remove_user(
        self, app_id: str, user_id: str, subscriber: Subscriber
    ) -> bool:
        users = self._users.get(app_id, {})
        connections = users.get(user_id)
        if connections is None or connections.pop(subscriber.socket_id, None) is None:
            return False
        if connections:
            return False
        del users[user_id]
        if not users:
            del self._users[app_id]
        return True

    async def online_users(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        users = self._users.get(app_id, {})
        return {user_id for user_id in user_ids if user_id in users}

    async def broadcast_user_status(
        self, app_id: str, user_id: str, online: bool
    ) -> None:
        if self._listener is not None:
            self._listener.user_status(app_id, user_id, online)

    async def terminate_user(self, app_id: str, user_id: str) -> None:
        if self._listener is not None:
            self._listener.terminate_user(app_id, user_id)

    async def set_session_owner(self, session: str, address: str | None) -> None:
        # One process serves every session.
        pass

    async def session_owner(self, session: str) -> str | None:
        return None

    @property
    def healthy(self) -> bool:
        return True

    def start(self, listener: ClusterListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._apps.clear()
        self._cache.clear()
        self._cache_misses.clear()
        self._users.clear()


def _info(state: _Channel) -> ChannelInfo:
    user_count = None if state.members is None else len(state.members)
    return ChannelInfo(len(state.subscribers), user_count)
