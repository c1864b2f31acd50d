"""The console's parts without a server: sign-in tokens and the live log's bounds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clarion.server.console.auth import ConsoleAuth, Session, parse_cookies
from clarion.server.console.cluster import Counts, _parse_sample
from clarion.server.console.sessions import CLOCK_SLACK_SECONDS, RevokedSessions
from clarion.server.console.stream import (
    MAX_BUFFERED_BYTES,
    MAX_DATA_CHARACTERS,
    EventStreams,
    event_record,
)
from clarion.server.monitor import Monitor, MonitorEvent

TOKEN = "unit-test-console-token"


def test_auth_token_checked_exactly() -> None:
    """Only the exact admin token passes, not a prefix or a longer string."""
    auth = ConsoleAuth(TOKEN)

    assert auth.check_token(TOKEN)
    assert not auth.check_token(TOKEN[:-1])
    assert not auth.check_token(TOKEN + "x")
    assert not auth.check_token("")


def test_auth_session_expires() -> None:
    """A session cookie is valid until its expiry time and not after."""
    auth = ConsoleAuth(TOKEN)
    cookie = auth.new_session(now=1000.0)
    expires = int(cookie.split(".")[0])

    session = auth.check_session(cookie, now=expires - 1)

    assert session is not None
    assert session.expires == expires
    assert auth.check_session(cookie, now=expires) is None


def test_auth_sessions_get_distinct_ids() -> None:
    """Two logins at the same second get different session ids."""
    auth = ConsoleAuth(TOKEN)
    first = auth.check_session(auth.new_session(now=1000.0), now=1000.0)
    second = auth.check_session(auth.new_session(now=1000.0), now=1000.0)

    assert first is not None
    assert second is not None
    assert first.id != second.id


def test_auth_session_id_bound_to_signature() -> None:
    """A cookie whose session id was swapped for another is rejected."""
    auth = ConsoleAuth(TOKEN)
    expires, _, signature = auth.new_session(now=1000.0).split(".")
    other_id = auth.new_session(now=1000.0).split(".")[1]

    assert auth.check_session(f"{expires}.{other_id}.{signature}", now=1000.0) is None
    assert auth.check_session(f"{expires}.{signature}", now=1000.0) is None


async def test_revoked_session_rejected_until_expiry() -> None:
    """A revoked session id is reported revoked; another one is not."""
    auth = ConsoleAuth(TOKEN)
    revoked = RevokedSessions()
    first = auth.check_session(auth.new_session())
    second = auth.check_session(auth.new_session())
    assert first is not None
    assert second is not None

    await revoked.revoke(first)

    assert await revoked.is_revoked(first)
    assert not await revoked.is_revoked(second)


async def test_revoked_sessions_forget_expired_ids() -> None:
    """Ids whose cookies expired beyond the clock slack are dropped at the
    next revocation, so the in-memory set stays bounded by live cookies."""
    revoked = RevokedSessions()
    long_expired = Session("old", int(time.time()) - CLOCK_SLACK_SECONDS - 1)
    current = Session("current", int(time.time()) + 60)
    await revoked.revoke(long_expired)

    await revoked.revoke(current)

    assert not await revoked.is_revoked(long_expired)
    assert await revoked.is_revoked(current)


def test_auth_session_bound_to_token() -> None:
    """A session signed under another admin token is rejected."""
    session = ConsoleAuth("another-console-token").new_session()

    assert ConsoleAuth(TOKEN).check_session(session) is None


def test_auth_csrf_bound_to_session() -> None:
    """The CSRF token of one session is rejected for another."""
    auth = ConsoleAuth(TOKEN)
    first = auth.new_session(now=1000.0)
    second = auth.new_session(now=2000.0)

    assert auth.check_csrf(first, auth.csrf_token(first))
    assert not auth.check_csrf(second, auth.csrf_token(first))
    assert not auth.check_csrf(first, "")


def test_cookies_parsed_from_header() -> None:
    """Cookie headers split into names and values; the first repeat wins."""
    cookies = parse_cookies('a=1; b="two"; a=3; broken; c=')

    assert cookies == {"a": "1", "b": "two", "c": ""}


def test_event_record_cuts_long_data() -> None:
    """Event data longer than the limit is cut before it reaches the browser."""
    event = MonitorEvent("1", "api_event", {"data": "x" * (MAX_DATA_CHARACTERS + 50)})

    record = event_record(event, "node-a")

    assert len(record["detail"]["data"]) == MAX_DATA_CHARACTERS + 1
    assert record["node"] == "node-a"


class _SlowTransport:
    """A transport whose peer reads nothing, so its buffer stays full."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return MAX_BUFFERED_BYTES + 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Protocol:
    def __init__(self) -> None:
        self.transport: Any = _SlowTransport()


async def _always_valid() -> bool:
    return True


async def test_stream_drops_events_for_full_buffer() -> None:
    """Events for a browser whose buffer is full are dropped, not queued."""
    monitor = Monitor()
    monitor.enabled = True
    streams = EventStreams(monitor, "node-a")
    protocol = _Protocol()
    task = asyncio.create_task(
        streams.serve(protocol, "1", "session-a", _always_valid)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0)
    written_before = len(protocol.transport.written)

    for number in range(100):
        monitor.record("1", "api_event", channel="c", event=f"e{number}")
        await asyncio.sleep(0)
    protocol.transport.closed = True
    monitor.record("1", "api_event", channel="c", event="last")
    await asyncio.wait_for(task, timeout=5)

    events_written = [
        chunk for chunk in protocol.transport.written if b"event: events" in chunk
    ]
    assert written_before == 2
    assert events_written == []
    assert streams.count == 0


def test_cluster_sample_keeps_known_apps() -> None:
    """A node's sample gives counts for the configured apps it contains."""
    raw = '{"1": [3, 1, 7], "other": [9, 9, 9]}'

    assert _parse_sample(raw, ["1", "2"]) == {"1": Counts(3, 1, 7)}


@pytest.mark.parametrize(
    "raw", ['{"1": [3, 1]}', '{"1": ["x", 1, 2]}', '{"1": 5}', "not json"]
)
def test_cluster_sample_malformed_rejected(raw: str) -> None:
    """A sample with the wrong shape raises, so the sum leaves it out."""
    with pytest.raises((ValueError, TypeError)):
        _parse_sample(raw, ["1"])
