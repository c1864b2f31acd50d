"""The log of rejections by a per-app limit: one line per app, limit and
interval, with the count of the lines left out."""

from __future__ import annotations

import logging

import pytest

from clarion.server.limits import REJECTION_LOG_INTERVAL, Rejections
from clarion.server.tally import Tally


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rejection_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Rejected by" in r.getMessage()]


def test_flood_logs_one_line_and_counts_all(caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally()
    rejections = Rejections(tally, FakeClock())
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            rejections.record("7", "client_event_rate", "too fast", "1.2")
    assert rejection_lines(caplog) == [
        "[app 7, socket 1.2] Rejected by client_event_rate: too fast"
    ]
    assert tally.limit_rejections["client_event_rate"] == 1000


def test_next_interval_reports_left_out_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    rejections = Rejections(Tally(), clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            rejections.record("7", "max_connections", "over quota")
        clock.now += REJECTION_LOG_INTERVAL
        rejections.record("7", "max_connections", "over quota")
    assert rejection_lines(caplog) == [
        "[app 7] Rejected by max_connections: over quota",
        "[app 7] Rejected by max_connections: over quota (and 3 more "
        "rejection(s) by it since the last such line)",
    ]


def test_apps_and_limits_are_logged_apart(caplog: pytest.LogCaptureFixture) -> None:
    rejections = Rejections(Tally(), FakeClock())
    with caplog.at_level(logging.WARNING):
        rejections.record("7", "max_connections", "over quota")
        rejections.record("8", "max_connections", "over quota")
        rejections.record("7", "max_api_requests_per_second", "too many")
    assert len(rejection_lines(caplog)) == 3


def test_log_record_carries_ids(caplog: pytest.LogCaptureFixture) -> None:
    rejections = Rejections(Tally(), FakeClock())
    with caplog.at_level(logging.WARNING):
        rejections.record("7", "client_event_rate", "too fast", "1.2")
    record = caplog.records[-1]
    assert record.__dict__["app_id"] == "7"
    assert record.__dict__["socket_id"] == "1.2"
