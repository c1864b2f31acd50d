"""Subscriptions and sign-ins whose auth tokens the server must reject."""

from __future__ import annotations

import pytest
from interop_harness import AuthEndpoint

pytestmark = pytest.mark.interop


@pytest.fixture
def forged_auth(make_python_sdk):
    """Auth endpoints that sign with a wrong secret, as a forger would."""
    endpoint = AuthEndpoint(make_python_sdk(secret="wrong-secret"))
    yield endpoint
    endpoint.close()


@pytest.mark.parametrize(
    "channel", ["private-news", "presence-news", "private-encrypted-news"]
)
def test_forged_subscription_is_rejected(
    connect_client, forged_auth, python_sdk, channel
):
    """A wrongly signed subscription fails with AuthError 401 and joins nothing."""
    client = connect_client("alice", auth=forged_auth)

    client.send("subscribe", channel=channel, bind=[])
    error = client.wait_event(channel, "pusher:subscription_error")
    info = python_sdk.channel_info(channel, ["subscription_count"])

    assert error["data"]["type"] == "AuthError", error
    assert error["data"]["status"] == 401, error
    assert client.events(channel, "pusher:subscription_succeeded") == []
    assert info == {"occupied": False, "subscription_count": 0}
    assert client.states()[-1] == "connected", client.describe()


def test_forged_signin_is_rejected(connect_client, forged_auth):
    """A wrongly signed sign-in gets pusher:error 4009 and the socket stays open."""
    client = connect_client("alice", auth=forged_auth)

    client.send("signin")
    error = client.wait_for(
        "pusher:error after the forged sign-in",
        lambda r: r["type"] == "message" and r["event"] == "pusher:error",
    )
    # Succeeds only if the server kept the connection open after the error.
    client.subscribe("news")

    assert error["data"]["code"] == 4009, error
    assert client.states()[-1] == "connected", client.describe()
    assert not any(
        r["type"] == "message" and r["event"] == "pusher:signin_success"
        for r in client.records
    ), client.describe()
