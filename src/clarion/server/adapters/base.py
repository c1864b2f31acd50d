"""The adapter interface: subscriptions, presence members and message delivery.

An adapter deals in apps, channels, members and messages. It has no notion of
HTTP routes or WebSocket frames beyond handing a message to a subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from clarion.protocol.presence import Member
from clarion.server.tally import Tally
from clarion.server.websocket import OutboundMessage

__all__ = [
    "Adapter",
    "ClusterListener",
    "CachedEvent",
    "CacheMiss",
    "ChannelInfo",
    "Subscribed",
    "Subscriber",
    "Unsubscribed",
]


class Subscriber(Protocol):
    """The part of a connection that an adapter delivers to."""

    socket_id: str

    def send(self, message: OutboundMessage) -> None:
        """Queue ``message`` for the peer without blocking."""

    def reject(self, code: int, message: str) -> None:
        """Report ``pusher:error`` with ``code`` to the peer, then close with it."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The outcome of adding a subscription."""

    occupied: bool
    """The channel had no subscriber before this one."""
    member_added: bool
    """This connection is its user's first in the presence channel."""
    roster: dict[str, object] | None
    """Presence channels: user id to ``user_info`` of every member, this one too."""
    cancelled_vacated: bool = False
    """The channel was vacated within the webhook delay, anywhere in the cluster,
    and this subscription cancelled the held ``channel_vacated`` webhook, so
    ``channel_occupied`` is not due either."""
    cancelled_removed: bool = False
    """The same for the member's held ``member_removed`` and ``member_added``."""


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The outcome of removing a subscription."""

    vacated: bool
    """The channel has no subscriber left."""
    removed_user_id: str | None
    """Presence channels: the user whose last connection in the channel left."""
    held: bool = False
    """The requested holds of the ``channel_vacated`` and ``member_removed``
    webhooks are recorded in the shared state, where a subscription on any node
    cancels them; the sender must claim each with ``claim_held_webhook``."""


@dataclass(frozen=True, slots=True)
class CachedEvent:
    """The last event published to a cache channel."""

    event: str
    data: str
    ttl: int
    """Whole seconds left before it expires."""


@dataclass(frozen=True, slots=True)
class CacheMiss:
    """A cache channel with no unexpired event, as a new subscriber finds it."""

    first: bool
    """No miss was recorded since the channel's last cached event, so the
    ``cache_miss`` webhook is due."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    subscription_count: int
    """Subscribed connections."""
    user_count: int | None
    """Distinct presence users; ``None`` for other channels."""


class ClusterListener(Protocol):
    """The hub's side of the adapter: events from other nodes and from dead ones."""

    async def member_left(self, app_id: str, channel: str, user_id: str) -> None:
        """Handle the last connections of ``user_id`` in ``channel`` dying with a
        node. The adapter has sent ``member_removed`` to the clients."""

    async def member_rejoined(
        self, app_id: str, channel: str, user_id: str, user_info: object
    ) -> None:
        """Announce a member that other nodes had dropped and that came back after an
        outage."""

    def channel_vacated(self, app_id: str, channel: str) -> None:
        """Handle the last subscribers of ``channel`` dying with a node."""

    def held_webhook_overdue(
        self, app_id: str, channel: str, user_id: str | None
    ) -> None:
        """Send at once a held ``channel_vacated`` (``user_id`` None) or
        ``member_removed`` webhook whose holder did not send it in time."""

    async def subscription_count_changed(self, app_id: str, channel: str) -> None:
        """Handle a dead node's subscribers leaving ``channel``, which others still
        have."""

    async def user_left(self, app_id: str, user_id: str) -> None:
        """Handle the last signed-in connection of ``user_id`` dying with a node."""

    def user_status(self, app_id: str, user_id: str, online: bool) -> None:
        """Pass on that a user came online or went offline somewhere in the cluster."""

    def terminate_user(self, app_id: str, user_id: str) -> None:
        """Close this node's connections signed in as ``user_id``."""


class Adapter(Protocol):
    """Channel state for every app that this process serves."""

    tally: Tally
    """Where ``publish`` counts the messages it hands to this process's
    subscribers; the hub counts into the same one."""

    @property
    def healthy(self) -> bool:
        """Whether the shared state is reachable; always true for in-process state."""

    async def add_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        member: Member | None,
        max_members: int,
    ) -> Subscribed:
        """Add ``subscriber`` to ``channel``; adding the same pair again is a no-op.

        Raises:
            SubscriptionError: ``LimitReached`` (4100) when a presence channel
            already has ``max_members`` distinct users and ``member`` is new.
        """

    async def remove_subscription(
        self,
        app_id: str,
        channel: str,
        subscriber: Subscriber,
        *,
        hold_vacated: bool = False,
        hold_removed: bool = False,
    ) -> Unsubscribed:
        """Remove ``subscriber`` from ``channel``.

        ``hold_vacated`` and ``hold_removed`` ask a shared adapter to hold the
        matching webhook for the webhook delay, so that a subscription within
        the delay on any node can cancel it (see ``Unsubscribed.held``). The
        in-process adapter ignores them: the webhook sender holds the events.
        """

    async def claim_held_webhook(
        self, app_id: str, channel: str, user_id: str | None
    ) -> bool:
        """Take a held ``channel_vacated`` (``user_id`` None) or ``member_removed``
        webhook out of the shared state; return whether it was still held, in
        which case the caller sends it."""

    async def publish(
        self,
        app_id: str,
        channel: str,
        message: OutboundMessage,
        except_socket_id: str | None = None,
    ) -> None:
        """Hand ``message`` to each subscriber but ``except_socket_id``."""

    async def channel_info(self, app_id: str, channel: str) -> ChannelInfo: ...

    async def channels(
        self, app_id: str, prefix: str = ""
    ) -> Mapping[str, ChannelInfo]:
        """Return the occupied channels whose names start with ``prefix``."""

    async def members(self, app_id: str, channel: str) -> Mapping[str, object]:
        """Return user id to ``user_info`` for a presence channel's members."""

    # Cache channels

    async def set_cache(
        self, app_id: str, channel: str, event: str, data: str, ttl: int
    ) -> None:
        """Keep ``event`` as the channel's last event for ``ttl`` seconds."""

    async def get_cache(self, app_id: str, channel: str) -> CachedEvent | None:
        """Return the channel's unexpired last event, if any."""

    async def get_cache_or_miss(
        self, app_id: str, channel: str, record_miss: bool
    ) -> CachedEvent | CacheMiss:
        """Return the channel's unexpired last event for a new subscriber, or a
        miss. With ``record_miss``, the first miss since the channel's last
        cached event is recorded and returned with ``first`` set; ``set_cache``
        clears the record."""

    # Signed-in users

    async def add_user(self, app_id: str, user_id: str, subscriber: Subscriber) -> bool:
        """Record a connection signed in as ``user_id``; return whether it is the
        user's first."""

    async def remove_user(
        self, app_id: str, user_id: str, subscriber: Subscriber
    ) -> bool:
        """Forget a signed-in connection; return whether it was the user's last."""

    async def online_users(self, app_id: str, user_ids: Iterable[str]) -> set[str]:
        """Return which of ``user_ids`` have a signed-in connection."""

    async def broadcast_user_status(
        self, app_id: str, user_id: str, online: bool
    ) -> None:
        """Tell every node, this one included, that a user came online or left."""

    async def terminate_user(self, app_id: str, user_id: str) -> None:
        """Have every node, this one included, close the user's connections."""

    # HTTP sessions, which live in the process that created them

    async def set_session_owner(self, session: str, address: str | None) -> None:
        """Record which process serves an HTTP session (``None`` removes the record)."""

    async def session_owner(self, session: str) -> str | None:
        """Return the address of the process that serves an HTTP session."""

    # Lifecycle

    def start(self, listener: ClusterListener) -> None:
        """Start background work; ``listener`` receives events from the cluster."""

    async def close(self) -> None: ...
