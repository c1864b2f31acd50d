"""Webhooks without I/O: targets and their filters, bodies, signatures and the
retry schedule."""

from __future__ import annotations

import hmac
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clarion.protocol.auth import sign_bytes
from clarion.protocol.messages import dumps

__all__ = [
    "EVENT_TYPES",
    "PUSHER_EVENT_TYPES",
    "WebhookTarget",
    "encode_body",
    "restamp_body",
    "retry_delay",
    "sign_body",
    "verify_signature",
]

PUSHER_EVENT_TYPES = frozenset(
    {
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    }
)
"""The event types that Pusher sends."""

EVENT_TYPES = PUSHER_EVENT_TYPES | {"user_online", "user_offline"}
"""Every event type Clarion can send: Pusher's, plus a signed-in user's first
connection opening (``user_online``) and last one closing (``user_offline``)."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One URL an app's webhooks go to, and which events it wants."""

    url: str
    event_types: frozenset[str] = PUSHER_EVENT_TYPES
    channel_prefix: str = ""
    """Only events on channels whose names start with this; user events, which
    have no channel, pass any prefix."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers; they cannot replace the ``X-Pusher-*`` ones."""

    def wants(self, event: Mapping[str, object]) -> bool:
        if event["name"] not in self.event_types:
            return False
        channel = event.get("channel")
        return not isinstance(channel, str) or channel.startswith(self.channel_prefix)


def encode_body(time_ms: int, events: Sequence[Mapping[str, object]]) -> bytes:
    """Encode a webhook body; ``time_ms`` is when the webhook was created."""
    return dumps({"time_ms": time_ms, "events": list(events)}).encode()


def restamp_body(body: bytes, time_ms: int) -> bytes:
    """Return ``body`` with a new ``time_ms``, for a webhook sent again as new.

    pusher-http-python 3.3 rejects bodies whose ``time_ms`` is more than 300 s
    from its clock, so a replayed dead letter carries the replay time.
    """
    events = json.loads(body)["events"]
    return encode_body(time_ms, events)


def sign_body(secret: str, body: bytes) -> str:
    """Return ``X-Pusher-Signature``: the hex HMAC-SHA256 of exactly ``body``."""
    return sign_bytes(secret, body)


def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    """Check an ``X-Pusher-Signature`` header in constant time."""
    expected = sign_bytes(secret, body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def retry_delay(attempt: int, jitter: random.Random | None = None) -> float:
    """Return the seconds to wait after failed attempt number ``attempt`` (from 1).

    The delay doubles from 1 s up to 60 s. With ``jitter``, it is drawn from
    between half and all of that, so receivers that come back are not hit by
    every pending delivery at once.
    """
    delay = float(min(60, 2 ** min(attempt - 1, 6)))
    if jitter is not None:
        delay *= jitter.uniform(0.5, 1.0)
    return delay
