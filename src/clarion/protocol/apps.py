"""Apps and their limits, as plain values shared by the server and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field

from clarion.protocol.webhooks import WebhookTarget

__all__ = ["App", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-app limits. Sizes are UTF-8 bytes, lengths are characters."""

    max_connections: int = 0
    """Open connections allowed for the app, counted over every node of a
    cluster; 0 means unlimited (then 4004)."""
    max_api_requests_per_second: int = 0
    """Signed HTTP API requests per second for the app, every route counted;
    0 means unlimited (then HTTP 429)."""
    max_backend_events_per_second: int = 0
    """Events per second published through the HTTP API, each event counted
    once per channel it names; 0 means unlimited (then HTTP 429)."""
    client_event_rate: int = 10
    """Client events per second per connection (then ``pusher:error`` 4301)."""
    max_channel_name_length: int = 164
    max_event_name_length: int = 200
    max_event_bytes: int = 10 * 1024
    """Size of one event's ``data``: HTTP 413, or ``pusher:error`` for client events."""
    max_channels_per_event: int = 100
    max_batch_events: int = 10
    max_presence_members: int = 100
    """Distinct users in one presence channel (then ``LimitReached`` 4100)."""
    max_presence_user_id_length: int = 128
    max_presence_user_info_bytes: int = 1024
    """Size of ``user_info`` as compact JSON, in presence and in sign-in."""
    max_watchlist_size: int = 100
    """Watched user ids kept per sign-in; the rest are dropped with 4302."""
    cache_ttl: int = 1800
    """Seconds a cache channel keeps its last event."""
    authorization_timeout: int = 30
    """Seconds a connection has to sign in or subscribe to a private or presence
    channel, when the app requires authorized connections."""


@dataclass(frozen=True, slots=True)
class App:
    """One tenant of the server: its credentials, switches and limits."""

    id: str
    key: str
    secret: str = field(repr=False)
    """The current secret: the server signs webhooks with it."""
    previous_secret: str = field(default="", repr=False)
    """The secret before the last rotation, accepted in signatures until it is
    retired. It is empty when no rotation is under way."""
    enabled: bool = True
    client_events: bool = False
    subscription_count_events: bool = False
    """Send ``pusher_internal:subscription_count`` to subscribers of channels."""
    watchlist_events: bool = True
    """Send watchlist online and offline events to signed-in users."""
    authorized_connections: bool = False
    """Close connections that do not authorize within ``authorization_timeout``."""
    require_tls: bool = False
    """Refuse plain ``ws://`` connections and HTTP sessions with 4000, so that
    pusher-js reconnects with TLS."""
    limits: Limits = field(default_factory=Limits)
    webhooks: tuple[WebhookTarget, ...] = ()
    """The URLs that receive the app's webhooks; none by default."""
    allowed_origins: tuple[str, ...] = ()
    """Origin patterns (``protocol/origins.py``) of the browser pages that may
    connect; empty allows every origin. Connections from other origins get 4009."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets that signatures may use: the current one first, then the
        previous one during a rotation."""
        if self.previous_secret:
            return (self.secret, self.previous_secret)
        return (self.secret,)
