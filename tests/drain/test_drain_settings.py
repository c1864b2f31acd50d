"""The drain settings: defaults, sources and invalid values."""

from __future__ import annotations

import pytest

from clarion.server.config import ConfigError, load_settings
from clarion.server.workers import STOP_MARGIN, stop_timeout


def test_drain_settings_defaults() -> None:
    """A 10 s drain and a 5 s last webhook attempt, unless set."""
    settings = load_settings(environ={})

    assert settings.drain_seconds == 10
    assert settings.drain_webhook_seconds == 5
    assert stop_timeout(settings) == 10 + 5 + STOP_MARGIN


def test_drain_settings_from_flag_and_environment() -> None:
    """The flag wins over the environment, which sets the webhook attempt."""
    settings = load_settings(
        flags={"drain_seconds": 30},
        environ={
            "CLARION_DRAIN_SECONDS": "20",
            "CLARION_DRAIN_WEBHOOK_SECONDS": "0",
        },
    )

    assert settings.drain_seconds == 30
    assert settings.drain_webhook_seconds == 0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CLARION_DRAIN_SECONDS", "-1", "Invalid drain_seconds = -1: must be 0"),
        ("CLARION_DRAIN_SECONDS", "ten", "Invalid CLARION_DRAIN_SECONDS='ten'"),
        (
            "CLARION_DRAIN_WEBHOOK_SECONDS",
            "-5",
            "Invalid drain_webhook_seconds = -5: must be 0",
        ),
    ],
)
def test_drain_settings_reject_invalid(variable: str, value: str, message: str) -> None:
    """Negative and non-integer values raise a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={variable: value})
