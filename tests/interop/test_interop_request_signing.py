"""HTTP API requests with bad credentials or stale timestamps, signed by the
real SDKs, are rejected with 401 and publish nothing."""

from __future__ import annotations

import json
import time

import pusher.http
import pytest
from pusher.errors import PusherBadAuth, PusherBadStatus

pytestmark = pytest.mark.interop

# The server accepts auth_timestamp only within 600 s of its clock.
SKEW_SECONDS = 700


class SkewedClock:
    """Stand-in for the `time` module that pusher.http signs requests with."""

    def __init__(self, skew_seconds: float) -> None:
        self.skew_seconds = skew_seconds

    def time(self) -> float:
        return time.time() + self.skew_seconds


def error_body(error: Exception) -> dict:
    """Return the JSON error body that the SDK put in the exception message."""
    return json.loads(str(error))


@pytest.fixture
def listener(connect_client):
    """A pusher-js client on `news`, to prove rejected triggers publish nothing."""
    client = connect_client()
    client.subscribe("news")
    return client


@pytest.mark.parametrize("credential", ["secret", "key"])
def test_python_wrong_credential_is_401(
    make_python_sdk, listener, send_marker, credential
):
    """A trigger signed with a wrong secret or key raises PusherBadAuth."""
    sdk = make_python_sdk(**{credential: f"wrong-{credential}"})

    with pytest.raises(PusherBadAuth) as raised:
        sdk.trigger("news", "forged", {"x": 1})
    send_marker("news", listener)

    assert error_body(raised.value)["code"] == 401
    assert listener.events("news", "forged") == [], listener.describe()


def test_python_wrong_secret_get_is_401(make_python_sdk):
    """A GET signed with a wrong secret raises PusherBadAuth."""
    sdk = make_python_sdk(secret="wrong-secret")

    with pytest.raises(PusherBadAuth) as raised:
        sdk.channels_info()

    assert error_body(raised.value)["code"] == 401


@pytest.mark.parametrize("skew_seconds", [-SKEW_SECONDS, SKEW_SECONDS])
def test_python_skewed_timestamp_is_401(
    python_sdk, listener, send_marker, monkeypatch, skew_seconds
):
    """A trigger stamped 700 s in the past or future raises PusherBadAuth."""
    monkeypatch.setattr(pusher.http, "time", SkewedClock(skew_seconds))

    with pytest.raises(PusherBadAuth) as raised:
        python_sdk.trigger("news", "stale", {"x": 1})
    monkeypatch.undo()
    send_marker("news", listener)

    body = error_body(raised.value)
    assert body["code"] == 401
    assert body["error"].startswith("Timestamp expired"), body
    assert listener.events("news", "stale") == [], listener.describe()


def test_python_unknown_app_id_is_404(make_python_sdk):
    """A request for an app id that does not exist gets 404."""
    sdk = make_python_sdk(app_id="999")

    with pytest.raises(PusherBadStatus) as raised:
        sdk.trigger("news", "lost", {"x": 1})

    assert str(raised.value).startswith("404:"), raised.value


def test_node_wrong_secret_is_401(node_sdk, listener, send_marker):
    """A Node SDK trigger with a wrong secret fails with status 401."""
    outcome = node_sdk(
        method="trigger",
        channels=["news"],
        event="forged",
        data={"x": 1},
        secret="wrong-secret",
    )
    send_marker("news", listener)

    assert outcome["ok"] is False
    assert outcome["error"]["name"] == "PusherRequestError"
    assert outcome["error"]["status"] == 401
    assert outcome["error"]["body"]["code"] == 401
    assert listener.events("news", "forged") == [], listener.describe()


@pytest.mark.parametrize("skew_seconds", [-SKEW_SECONDS, SKEW_SECONDS])
def test_node_skewed_timestamp_is_401(node_sdk, listener, send_marker, skew_seconds):
    """A Node SDK trigger stamped 700 s off the server's clock fails with 401."""
    outcome = node_sdk(
        method="trigger",
        channels=["news"],
        event="stale",
        data={"x": 1},
        clock_skew_seconds=skew_seconds,
    )
    send_marker("news", listener)

    assert outcome["ok"] is False
    assert outcome["error"]["status"] == 401
    assert outcome["error"]["body"]["error"].startswith("Timestamp expired"), outcome
    assert listener.events("news", "stale") == [], listener.describe()


def test_node_wrong_secret_get_is_401(node_sdk):
    """A Node SDK GET with a wrong secret fails with status 401."""
    outcome = node_sdk(method="get", path="/channels", secret="wrong-secret")

    assert outcome["ok"] is False
    assert outcome["error"]["status"] == 401
