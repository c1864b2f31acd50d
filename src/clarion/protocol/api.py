"""Validation of HTTP API request bodies and parameters, with no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from clarion.protocol.apps import Limits
from clarion.protocol.channels import ChannelKind, classify, is_valid_channel_name
from clarion.protocol.errors import ApiError, shorten
from clarion.protocol.messages import dumps, loads

__all__ = [
    "EventRequest",
    "is_valid_socket_id",
    "parse_batch_events",
    "parse_event",
    "parse_info",
]

SOCKET_ID_PATTERN = re.compile(r"[0-9]+\.[0-9]+")
RESERVED_EVENT_PREFIXES = ("pusher:", "pusher_internal:")
TRIGGER_INFO_ATTRIBUTES = frozenset({"user_count", "subscription_count"})


def is_valid_socket_id(value: str) -> bool:
    return SOCKET_ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class EventRequest:
    """One event to publish: the same name and data on each channel."""

    name: str
    channels: tuple[str, ...]
    data: str
    socket_id: str | None = None
    """The connection that must not receive the event."""
    info: frozenset[str] = frozenset()
    """Channel attributes to report in the response."""


def parse_event(body: bytes, limits: Limits) -> EventRequest:
    """Decode and check the body of ``POST /apps/{app_id}/events``.

    Raises:
        ApiError: 400 for malformed or invalid fields, 413 for oversized data.
    """
    fields = _decode_object(body)
    if "channels" in fields:
        channels = fields["channels"]
        if not isinstance(channels, list) or not channels:
            raise ApiError(400, "'channels' must be a non-empty array of channel names")
        if len(channels) > limits.max_channels_per_event:
            raise ApiError(
                400,
                f"Too many channels: {len(channels)} given, at most "
                f"{limits.max_channels_per_event} allowed",
            )
    elif "channel" in fields:
        channels = [fields["channel"]]
    else:
        raise ApiError(400, "Missing required field: 'channels' or 'channel'")
    return _build_event(fields, channels, limits)


def parse_batch_events(body: bytes, limits: Limits) -> list[EventRequest]:
    """Decode and check the body of ``POST /apps/{app_id}/batch_events``.

    Every item is checked before any is returned, so a batch is all or nothing.

    Raises:
        ApiError: 400 for malformed or invalid items, 413 for oversized data.
    """
    batch = _decode_object(body).get("batch")
    if not isinstance(batch, list) or not batch:
        raise ApiError(400, "'batch' must be a non-empty array of events")
    if len(batch) > limits.max_batch_events:
        raise ApiError(
            400,
            f"Too many events in batch: {len(batch)} given, at most "
            f"{limits.max_batch_events} allowed",
        )
    events = []
    for index, item in enumerate(batch):
        if not isinstance(item, dict):
            raise ApiError(400, f"Batch item {index} must be a JSON object")
        if "channel" not in item:
            raise ApiError(400, f"Batch item {index}: missing required field 'channel'")
        try:
            events.append(_build_event(item, [item["channel"]], limits))
        except ApiError as exc:
            raise ApiError(exc.status, f"Batch item {index}: {exc.message}") from None
    return events


def parse_info(raw: str | None, allowed: frozenset[str]) -> frozenset[str]:
    """Split an ``info`` list such as ``user_count,subscription_count``.

    Raises:
        ApiError: 400 naming an attribute that is not in ``allowed``.
    """
    if not raw:
        return frozenset()
    attributes = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(attributes - allowed)
    if unknown:
        raise ApiError(
            400,
            f"Invalid info attribute: {', '.join(unknown)}; "
            f"allowed here: {', '.join(sorted(allowed))}",
        )
    return attributes


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        fields = loads(body.decode())
    except (ValueError, RecursionError):
        raise ApiError(400, "Request body is not valid JSON") from None
    if not isinstance(fields, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return fields


def _build_event(
    fields: dict[str, Any], channels: list[Any], limits: Limits
) -> EventRequest:
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Missing required field: 'name' must be a non-empty string")
    if len(name) > limits.max_event_name_length:
        raise ApiError(
            400, f"Event name is longer than {limits.max_event_name_length} characters"
        )
    if name.startswith(RESERVED_EVENT_PREFIXES):
        raise ApiError(
            400, f"Event name {shorten(name)!r} uses a reserved prefix (pusher:)"
        )

    if "data" not in fields:
        raise ApiError(400, "Missing required field: 'data'")
    data = fields["data"]
    if not isinstance(data, str):
        data = dumps(data)
    size = len(data.encode())
    if size > limits.max_event_bytes:
        raise ApiError(
            413,
            f"Event data is {size} bytes, "
            f"over the limit of {limits.max_event_bytes} bytes",
        )

    unique: list[str] = []
    for channel in channels:
        if not isinstance(channel, str) or not is_valid_channel_name(
            channel, limits.max_channel_name_length
        ):
            raise ApiError(400, f"Invalid channel name: {shorten(str(channel))!r}")
        if channel not in unique:
            unique.append(channel)
    if len(unique) > 1 and any(classify(c) is ChannelKind.ENCRYPTED for c in unique):
        raise ApiError(
            400, "An event to a private-encrypted channel must name only that channel"
        )

    socket_id = fields.get("socket_id")
    if socket_id is not None and (
        not isinstance(socket_id, str) or not is_valid_socket_id(socket_id)
    ):
        raise ApiError(400, f"Invalid socket_id: {shorten(str(socket_id))!r}")

    info = fields.get("info")
    if info is not None and not isinstance(info, str):
        raise ApiError(400, "'info' must be a comma-separated string")
    return EventRequest(
        name, tuple(unique), data, socket_id, parse_info(info, TRIGGER_INFO_ATTRIBUTES)
    )
