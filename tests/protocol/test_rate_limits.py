"""The sliding-window rate rule, its per-process counter and the 429 errors."""

from __future__ import annotations

import pytest

from clarion.protocol.api import EventRequest
from clarion.protocol.limits import (
    RateWindow,
    api_request_rate_error,
    backend_event_count,
    backend_event_rate_error,
    estimate_rate,
    rate_allows,
)


def test_estimate_weighs_previous_window_by_overlap() -> None:
    """A quarter into the window, three quarters of the previous count remain."""
    assert estimate_rate(previous=8, current=2, elapsed=0.25) == 8.0


@pytest.mark.parametrize(
    ("previous", "current", "elapsed", "amount", "allowed"),
    [
        (0, 4, 0.0, 1, True),
        (0, 5, 0.0, 1, False),
        (5, 0, 0.0, 1, False),
        (5, 0, 0.2, 1, True),
        (5, 0, 0.1, 1, False),
        (0, 0, 0.5, 6, False),
        (0, 0, 0.5, 5, True),
    ],
)
def test_rate_allows_under_limit_of_5(
    previous: int, current: int, elapsed: float, amount: int, allowed: bool
) -> None:
    assert rate_allows(5, previous, current, elapsed, amount) is allowed


def test_rate_allows_anything_without_limit() -> None:
    assert rate_allows(0, 10**6, 10**6, 0.0, 10**6)


def test_window_takes_up_to_limit_in_a_burst() -> None:
    """Of 20 takes at one instant, the first 5 pass."""
    window = RateWindow()
    results = [window.take(100.5, 5) for _ in range(20)]
    assert results == [True] * 5 + [False] * 15


def test_window_carries_previous_count_over_boundary() -> None:
    """Right after a boundary, the previous window's full count still counts,
    so a burst that straddles it does not get a fresh limit."""
    window = RateWindow()
    before = [window.take(100.99, 5) for _ in range(5)]
    after = [window.take(101.01, 5) for _ in range(5)]
    assert before == [True] * 5
    assert after == [False] * 5


def test_window_frees_room_as_previous_ages() -> None:
    """Each fifth of a second frees one of 5 places held by the previous window."""
    window = RateWindow()
    for _ in range(5):
        window.take(100.5, 5)
    assert window.take(101.1, 5) is False
    assert window.take(101.2, 5) is True
    assert window.take(101.25, 5) is False
    assert window.take(101.4, 5) is True


def test_window_forgets_after_idle_second() -> None:
    """After a whole window with nothing, the full limit is available again."""
    window = RateWindow()
    for _ in range(5):
        window.take(100.9, 5)
    assert [window.take(102.0, 5) for _ in range(6)] == [True] * 5 + [False]


def test_window_does_not_count_rejections() -> None:
    """A rejected amount leaves the count as it was."""
    window = RateWindow()
    assert window.take(100.0, 5, 4) is True
    assert window.take(100.0, 5, 2) is False
    assert window.take(100.0, 5, 1) is True


def test_backend_event_count_is_per_channel() -> None:
    events = [
        EventRequest("a", ("one", "two", "three"), "d"),
        EventRequest("b", ("one",), "d"),
    ]
    assert backend_event_count(events) == 4


def test_api_rate_error_is_429() -> None:
    error = api_request_rate_error(5)
    assert error.status == 429
    assert error.message == (
        "Too many HTTP API requests: the app allows 5 per second; retry after 1 s"
    )


def test_event_rate_error_tells_retry_or_split() -> None:
    """A request that fits the limit may retry; one bigger than it must split."""
    retry = backend_event_rate_error(5, 3)
    split = backend_event_rate_error(5, 6)
    assert retry.status == split.status == 429
    assert "retry after 1 s" in retry.message
    assert "publishes 6 (one per channel)" in split.message
    assert "split it" in split.message
