"""Presence members: parsing and checking the ``channel_data`` of a subscription."""

from __future__ import annotations

from dataclasses import dataclass

from clarion.protocol.apps import Limits
from clarion.protocol.errors import SubscriptionError
from clarion.protocol.messages import dumps, loads

__all__ = ["Member", "parse_channel_data"]


@dataclass(frozen=True, slots=True)
class Member:
    """A presence user as one connection presents it."""

    user_id: str
    """The canonical id: integers from ``channel_data`` become their decimal string."""
    user_info: object


def parse_channel_data(channel_data: object, limits: Limits) -> Member:
    """Decode presence ``channel_data`` into a member.

    ``user_id`` must be a non-empty string or an integer; ``user_info`` is any JSON
    value and is optional.

    Raises:
        SubscriptionError: ``AuthError`` (401) when it is missing,
        ``InvalidChannelData`` (400) for a malformed value,
        ``LimitReached`` (4301) for an id or ``user_info`` over the app's limits.
    """
    if channel_data is None:
        # Only a signed-in connection may omit it; check_subscribe handles that case.
        raise SubscriptionError(
            "AuthError", "channel_data is required to join a presence channel", 401
        )
    if not isinstance(channel_data, str):
        raise SubscriptionError(
            "InvalidChannelData", "channel_data must be a string holding JSON", 400
        )
    try:
        decoded = loads(channel_data)
    except (ValueError, RecursionError):
        raise SubscriptionError(
            "InvalidChannelData", "channel_data must be a JSON object", 400
        ) from None
    if not isinstance(decoded, dict):
        raise SubscriptionError(
            "InvalidChannelData", "channel_data must be a JSON object", 400
        )

    raw_id = decoded.get("user_id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise SubscriptionError(
            "InvalidChannelData",
            "channel_data must contain a user_id that is a string or an integer",
            400,
        )
    user_id = str(raw_id)
    if not user_id:
        raise SubscriptionError("InvalidChannelData", "user_id must not be empty", 400)
    if len(user_id) > limits.max_presence_user_id_length:
        raise SubscriptionError(
            "LimitReached",
            f"user_id is longer than {limits.max_presence_user_id_length} characters",
            4301,
            "max_presence_user_id_length",
        )

    user_info = decoded.get("user_info")
    info_size = len(dumps(user_info).encode())
    if info_size > limits.max_presence_user_info_bytes:
        raise SubscriptionError(
            "LimitReached",
            f"user_info is {info_size} bytes, over the limit of "
            f"{limits.max_presence_user_info_bytes} bytes",
            4301,
            "max_presence_user_info_bytes",
        )
    return Member(user_id, user_info)
