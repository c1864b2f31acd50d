"""The JSON codec for Pusher protocol frames.

Each server event is encoded here and nowhere else. Protocol events carry their
``data`` as a JSON string holding JSON (the "double encoding" of the Pusher
protocol), except ``pusher:error``, ``pusher:ping``, ``pusher:pong`` and
``pusher:subscription_error``, whose ``data`` is an object, as real Pusher sends
them. Application events carry the publisher's string unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clarion.protocol.errors import ProtocolError

__all__ = [
    "PING",
    "PONG",
    "ClientMessage",
    "cache_miss",
    "channel_event",
    "connection_established",
    "dumps",
    "error",
    "loads",
    "member_added",
    "member_removed",
    "parse_client_message",
    "signin_success",
    "subscription_count",
    "subscription_error",
    "subscription_succeeded",
    "watchlist_events",
]


def dumps(value: object) -> str:
    """Encode ``value`` as compact JSON, keeping non-ASCII characters as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str) -> Any:
    """Decode JSON that can be sent on again: ``NaN``, ``Infinity`` and lone
    surrogate escapes such as ``"\\ud800"`` are rejected, because they cannot
    be encoded as JSON or as UTF-8 for other peers.

    Raises:
        ValueError: the text is not such JSON.
        RecursionError: it nests too deeply.
    """
    value = json.loads(text, parse_constant=_reject_constant)
    if _SURROGATE_ESCAPE.search(text):
        try:
            dumps(value).encode()
        except UnicodeEncodeError:
            raise ValueError("JSON contains a lone surrogate escape") from None
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


PING = '{"event":"pusher:ping","data":{}}'
PONG = '{"event":"pusher:pong","data":{}}'


def connection_established(socket_id: str, activity_timeout: int) -> str:
    data = dumps({"socket_id": socket_id, "activity_timeout": activity_timeout})
    return dumps({"event": "pusher:connection_established", "data": data})


def error(code: int | None, message: str, channel: str | None = None) -> str:
    frame: dict[str, Any] = {"event": "pusher:error"}
    if channel is not None:
        frame["channel"] = channel
    frame["data"] = {"code": code, "message": message}
    return dumps(frame)


def subscription_succeeded(
    channel: str, presence: Mapping[str, object] | None = None
) -> str:
    """Encode the subscription confirmation.

    ``presence`` maps each distinct user id of a presence channel to its
    ``user_info`` (``None`` when it has none); every id is then listed in ``ids``
    and is a key of ``hash``, the subscriber's own id included.
    """
    if presence is None:
        data = "{}"
    else:
        roster = {"ids": list(presence), "hash": dict(presence), "count": len(presence)}
        data = dumps({"presence": roster})
    return dumps(
        {
            "event": "pusher_internal:subscription_succeeded",
            "channel": channel,
            "data": data,
        }
    )


def subscription_error(channel: str, error_type: str, message: str, status: int) -> str:
    return dumps(
        {
            "event": "pusher:subscription_error",
            "channel": channel,
            "data": {"type": error_type, "error": message, "status": status},
        }
    )


def member_added(channel: str, user_id: str, user_info: object) -> str:
    data = dumps({"user_id": user_id, "user_info": user_info})
    return dumps(
        {"event": "pusher_internal:member_added", "channel": channel, "data": data}
    )


def member_removed(channel: str, user_id: str) -> str:
    data = dumps({"user_id": user_id})
    return dumps(
        {"event": "pusher_internal:member_removed", "channel": channel, "data": data}
    )


def channel_event(
    event: str, channel: str, data: str, user_id: str | None = None
) -> str:
    """Encode an application or client event for the channel's subscribers."""
    frame = {"event": event, "channel": channel, "data": data}
    if user_id is not None:
        frame["user_id"] = user_id
    return dumps(frame)


INVALID_FORMAT = "Invalid message format"

# Protocol events whose data must be a JSON object. Ping and pong data is
# ignored, and unknown pusher:* events are reported as unsupported, whatever
# their data.
_EVENTS_WITH_OBJECT_DATA = frozenset(
    {"pusher:subscribe", "pusher:unsubscribe", "pusher:signin"}
)


def signin_success(user_data: str) -> str:
    return dumps({"event": "pusher:signin_success", "data": {"user_data": user_data}})


def watchlist_events(online: list[str], offline: list[str]) -> str:
    """Encode watchlist changes, leaving out a kind whose id list is empty."""
    events = []
    if online:
        events.append({"name": "online", "user_ids": online})
    if offline:
        events.append({"name": "offline", "user_ids": offline})
    data = dumps({"events": events})
    return dumps({"event": "pusher_internal:watchlist_events", "data": data})


def cache_miss(channel: str) -> str:
    return dumps({"event": "pusher:cache_miss", "channel": channel})


def subscription_count(channel: str, count: int) -> str:
    data = dumps({"subscription_count": count})
    return dumps(
        {
            "event": "pusher_internal:subscription_count",
            "channel": channel,
            "data": data,
        }
    )


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """One decoded frame from a client."""

    event: str
    channel: str | None
    data: Any
    """The ``data`` field; a dict (``{}`` when absent) for subscribe, unsubscribe
    and sign-in."""


def parse_client_message(text: str) -> ClientMessage:
    """Decode a client frame.

    ``data`` of subscribe, unsubscribe and sign-in may arrive as an object or as
    a string that contains a JSON object; both decode to a dict. Unknown top-level
    keys are ignored.

    Raises:
        ProtocolError: code ``None``, ``Invalid message format``, when the text is
        not a JSON object with a string ``event`` (and a string ``channel``, if
        present), or such data is not an object.
    """
    try:
        message = loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(INVALID_FORMAT) from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise ProtocolError(INVALID_FORMAT)
    channel = message.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise ProtocolError(INVALID_FORMAT)
    event: str = message["event"]
    data = message.get("data")
    if event in _EVENTS_WITH_OBJECT_DATA:
        data = _decode_object_data(data)
    return ClientMessage(event, channel, data)


def _decode_object_data(data: object) -> dict[str, Any]:
    if data is None or data == "":
        return {}
    if isinstance(data, str):
        try:
            data = loads(data)
        except (ValueError, RecursionError):
            raise ProtocolError(INVALID_FORMAT) from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_FORMAT)
    return data
