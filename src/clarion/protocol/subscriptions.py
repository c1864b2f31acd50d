"""Decisions on subscribe requests and client events, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarion.protocol.apps import App
from clarion.protocol.auth import verify_channel_auth
from clarion.protocol.channels import ChannelKind, classify, is_valid_channel_name
from clarion.protocol.errors import (
    ErrorCode,
    ProtocolError,
    SubscriptionError,
    shorten,
)
from clarion.protocol.messages import ClientMessage, dumps
from clarion.protocol.presence import Member, parse_channel_data
from clarion.protocol.users import User

__all__ = [
    "ClientEventRate",
    "SubscribeRequest",
    "check_client_event",
    "check_subscribe",
]


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A subscribe request that passed every check."""

    channel: str
    kind: ChannelKind
    member: Member | None = None
    """The presence member, for presence channels only."""


def check_subscribe(
    app: App, socket_id: str, data: dict[str, Any], user: User | None = None
) -> SubscribeRequest:
    """Check a ``pusher:subscribe`` request's channel name, auth and channel data.

    ``user`` is the connection's signed-in user: it alone may subscribe to its
    ``#server-to-user-`` channel, and it may join presence channels without
    ``channel_data``.

    Raises:
        ProtocolError: the request names no channel (the socket stays open and
            nothing else happens).
        SubscriptionError: the subscription is refused (invalid name 4009, auth
            401, channel data 400, limits 4301).
    """
    channel = data.get("channel")
    if not isinstance(channel, str):
        raise ProtocolError("Invalid subscribe request: 'channel' must be a string")
    max_length = app.limits.max_channel_name_length
    if not is_valid_channel_name(channel, max_length):
        raise SubscriptionError(
            "InvalidChannelName",
            f"Invalid channel name {shorten(channel)!r}: use at most {max_length} of "
            "the characters A-Z a-z 0-9 _ - = @ , . ;",
            4009,
        )

    kind = classify(channel)
    if kind is ChannelKind.SERVER_TO_USER:
        user_id = channel.removeprefix("#server-to-user-")
        if user is None or user.id != user_id:
            raise SubscriptionError(
                "AuthError",
                f"Subscription to {channel} needs a connection signed in as {user_id}",
                401,
            )
        return SubscribeRequest(channel, kind)
    if not kind.needs_auth:
        return SubscribeRequest(channel, kind)

    channel_data = data.get("channel_data")
    signed_in_member = (
        kind is ChannelKind.PRESENCE and channel_data is None and user is not None
    )
    if kind is ChannelKind.PRESENCE and channel_data is None and user is None:
        raise SubscriptionError(
            "AuthError", "channel_data is required to join a presence channel", 401
        )
    # The token is checked before the channel data is parsed, so a forged request
    # learns nothing about the data checks.
    verify_channel_auth(
        key=app.key,
        secret=app.secrets,
        socket_id=socket_id,
        channel=channel,
        auth=data.get("auth"),
        channel_data=channel_data if isinstance(channel_data, str) else None,
    )
    member: Member | None = None
    if signed_in_member:
        # A signed-in connection may join as its user without channel_data, with
        # the same id limit as a member that sends channel_data.
        assert user is not None
        if len(user.id) > app.limits.max_presence_user_id_length:
            raise SubscriptionError(
                "LimitReached",
                f"user_id is longer than {app.limits.max_presence_user_id_length} "
                "characters",
                4301,
                "max_presence_user_id_length",
            )
        member = Member(user.id, user.user_info)
    elif kind is ChannelKind.PRESENCE:
        member = parse_channel_data(channel_data, app.limits)
    return SubscribeRequest(channel, kind, member)


def check_client_event(
    app: App, message: ClientMessage, subscribed: bool
) -> tuple[str, str]:
    """Check a ``client-*`` event before it is forwarded.

    ``subscribed`` is whether the sender has a subscription to the event's
    channel. Returns the channel and the ``data`` to forward as a string: a
    string is kept as it is, any other JSON value is sent compact-encoded.

    Raises:
        ProtocolError: code ``None`` with the reason; the event is dropped.
    """
    channel = message.channel
    if not app.client_events:
        raise ProtocolError(
            "Client events are not enabled for this app", channel=channel
        )
    if channel is None:
        raise ProtocolError("Client event rejected: 'channel' is missing")
    kind = classify(channel)
    if kind is ChannelKind.ENCRYPTED:
        raise ProtocolError(
            "Client events are not supported on private-encrypted channels",
            channel=channel,
        )
    if not kind.allows_client_events:
        raise ProtocolError(
            "Client events are only supported on private and presence channels",
            channel=channel,
        )
    if not subscribed:
        raise ProtocolError(
            "Cannot broadcast client event "
            f"(connection not subscribed to channel {channel})",
            channel=channel,
        )
    if len(message.event) > app.limits.max_event_name_length:
        raise ProtocolError(
            "Client event rejected: event name is longer than "
            f"{app.limits.max_event_name_length} characters",
            channel=channel,
        )
    data = message.data if isinstance(message.data, str) else dumps(message.data)
    size = len(data.encode())
    if size > app.limits.max_event_bytes:
        raise ProtocolError(
            f"Client event rejected: data is {size} bytes, over the limit of "
            f"{app.limits.max_event_bytes} bytes",
            channel=channel,
        )
    return channel, data


class ClientEventRate:
    """A token bucket for one connection's client events: ``limit`` tokens,
    refilled at ``limit`` per second, so no second contains more than about
    ``limit`` events, however the events fall across second boundaries."""

    __slots__ = ("_tokens", "_updated")

    def __init__(self) -> None:
        self._tokens = -1.0
        """Tokens left; negative until the first event fills the bucket."""
        self._updated = 0.0

    def check(self, now: float, limit: int, channel: str | None = None) -> None:
        """Take one token at monotonic time ``now`` (seconds).

        Raises:
            ProtocolError: code 4301 when no token is left; the event is
            dropped and the socket stays open.
        """
        if self._tokens < 0:
            self._tokens = float(limit)
        else:
            self._tokens = min(limit, self._tokens + (now - self._updated) * limit)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
        else:
            raise ProtocolError(
                "Client event rejected due to rate limit",
                code=ErrorCode.CLIENT_EVENT_RATE_LIMIT,
                channel=channel,
            )
