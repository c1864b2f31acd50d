"""Per-app rate limits of the HTTP API: the counting rule and the errors, with
no I/O.

Both rates (``max_api_requests_per_second`` and
``max_backend_events_per_second``) use a sliding-window counter. Time is cut
into fixed one-second windows, and the count of the last second is estimated
as the whole count of the current window plus the share of the previous
window that still overlaps the last second. A token bucket would be as
precise in one process, but the two counts per window fit Redis as
``INCRBY`` on a key per second, so one process and a cluster count the same
way. The estimate treats the previous window's requests as spread evenly
over it. When they were not, the accepted count over a one-second span can
pass the limit, but stays under twice it, and a burst right after a window
boundary gets only what the previous window's share leaves.

Only accepted requests and events are counted: a client that keeps sending
over the limit still gets up to the limit through each second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from clarion.protocol.api import EventRequest
from clarion.protocol.errors import ApiError

__all__ = [
    "RETRY_AFTER_SECONDS",
    "RateWindow",
    "api_request_rate_error",
    "backend_event_count",
    "backend_event_rate_error",
    "estimate_rate",
    "rate_allows",
]

RETRY_AFTER_SECONDS = 1
"""The ``Retry-After`` value of a 429 response: one window."""


def estimate_rate(previous: int, current: int, elapsed: float) -> float:
    """Return the estimated count of the last second.

    ``previous`` and ``current`` are the counts of the previous and current
    one-second windows, and ``elapsed`` is the part of the current window
    that has passed, from 0 to 1.
    """
    return previous * (1.0 - elapsed) + current


def rate_allows(
    limit: int, previous: int, current: int, elapsed: float, amount: int
) -> bool:
    """Return whether ``amount`` more fit under ``limit`` per second; a
    ``limit`` of 0 or less is no limit."""
    if limit <= 0:
        return True
    return estimate_rate(previous, current, elapsed) + amount <= limit


class RateWindow:
    """The sliding-window counter of one app and one rate, in one process."""

    __slots__ = ("_current", "_previous", "_window")

    def __init__(self) -> None:
        self._window = 0
        """Start of the current window, in whole seconds."""
        self._previous = 0
        self._current = 0

    def take(self, now: float, limit: int, amount: int = 1) -> bool:
        """Count ``amount`` at time ``now`` (seconds) if it fits under ``limit``
        and return whether it did; a rejected amount is not counted."""
        window = math.floor(now)
        if window != self._window:
            self._previous = self._current if window == self._window + 1 else 0
            self._current = 0
            self._window = window
        if not rate_allows(limit, self._previous, self._current, now - window, amount):
            return False
        self._current += amount
        return True


def backend_event_count(events: Sequence[EventRequest]) -> int:
    """Return what a trigger or batch counts against
    ``max_backend_events_per_second``: each event once per channel it names,
    which is the number of channel messages that it publishes."""
    return sum(len(event.channels) for event in events)


def api_request_rate_error(limit: int) -> ApiError:
    """Return the 429 error for a request over ``max_api_requests_per_second``."""
    return ApiError(
        429,
        f"Too many HTTP API requests: the app allows {limit} per second; "
        f"retry after {RETRY_AFTER_SECONDS} s",
    )


def backend_event_rate_error(limit: int, count: int) -> ApiError:
    """Return the 429 error for a trigger or batch whose ``count`` events (one
    per channel) do not fit under ``max_backend_events_per_second`` now."""
    if count > limit:
        return ApiError(
            429,
            f"Too many events: the request publishes {count} (one per channel), "
            f"over the app's limit of {limit} per second; split it",
        )
    return ApiError(
        429,
        f"Too many events: the app allows {limit} per second (one per channel); "
        f"retry after {RETRY_AFTER_SECONDS} s",
    )
