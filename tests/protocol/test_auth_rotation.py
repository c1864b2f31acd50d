"""Two valid secrets during a rotation: every signature check accepts a
signature made with either, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

from clarion.protocol.apps import App
from clarion.protocol.auth import (
    sign,
    sign_api_request,
    verify_api_request,
    verify_channel_auth,
    verify_signin_auth,
)
from clarion.protocol.errors import ApiError, ProtocolError, SubscriptionError

KEY = "rotating-key"
CURRENT = "current-secret-value"
PREVIOUS = "previous-secret-value"
OTHER = "unrelated-secret-value"
ROTATING = App(id="9", key=KEY, secret=CURRENT, previous_secret=PREVIOUS)
SOCKET_ID = "123.456"
NOW = 1_700_000_000


def channel_token(secret: str, channel: str, channel_data: str | None = None) -> str:
    text = f"{SOCKET_ID}:{channel}"
    if channel_data is not None:
        text += f":{channel_data}"
    return f"{KEY}:{sign(secret, text)}"


def test_app_secrets_during_rotation() -> None:
    """App.secrets lists the current secret, then the previous one."""
    assert ROTATING.secrets == (CURRENT, PREVIOUS)


def test_app_secrets_without_rotation() -> None:
    """Without a previous secret only the current one is valid."""
    assert dataclasses.replace(ROTATING, previous_secret="").secrets == (CURRENT,)


def test_app_repr_hides_both_secrets() -> None:
    """repr(App) shows neither the current nor the previous secret."""
    text = repr(ROTATING)
    assert CURRENT not in text
    assert PREVIOUS not in text


@pytest.mark.parametrize("secret", [CURRENT, PREVIOUS])
@pytest.mark.parametrize(
    ("channel", "channel_data"),
    [
        ("private-orders", None),
        ("private-encrypted-orders", None),
        ("presence-room", '{"user_id":"ada"}'),
    ],
)
def test_channel_auth_accepts_either_secret(
    secret: str, channel: str, channel_data: str | None
) -> None:
    """Private, encrypted and presence auth pass with either secret."""
    verify_channel_auth(
        key=KEY,
        secret=ROTATING.secrets,
        socket_id=SOCKET_ID,
        channel=channel,
        auth=channel_token(secret, channel, channel_data),
        channel_data=channel_data,
    )


def test_channel_auth_rejects_third_secret() -> None:
    """A signature made with neither secret is an AuthError with status 401."""
    with pytest.raises(SubscriptionError) as caught:
        verify_channel_auth(
            key=KEY,
            secret=ROTATING.secrets,
            socket_id=SOCKET_ID,
            channel="private-orders",
            auth=channel_token(OTHER, "private-orders"),
        )
    assert caught.value.status == 401
    assert "Invalid signature" in caught.value.message


def test_channel_auth_rejects_retired_secret() -> None:
    """Once the previous secret is retired its signatures fail."""
    retired = dataclasses.replace(ROTATING, previous_secret="")
    with pytest.raises(SubscriptionError):
        verify_channel_auth(
            key=KEY,
            secret=retired.secrets,
            socket_id=SOCKET_ID,
            channel="private-orders",
            auth=channel_token(PREVIOUS, "private-orders"),
        )


@pytest.mark.parametrize("secret", [CURRENT, PREVIOUS])
def test_signin_accepts_either_secret(secret: str) -> None:
    """pusher:signin passes with either secret."""
    user_data = '{"id":"ada"}'
    signature = sign(secret, f"{SOCKET_ID}::user::{user_data}")
    verify_signin_auth(
        key=KEY,
        secret=ROTATING.secrets,
        socket_id=SOCKET_ID,
        user_data=user_data,
        auth=f"{KEY}:{signature}",
    )


def test_signin_rejects_third_secret() -> None:
    """A sign-in signed with neither secret is 4009."""
    user_data = '{"id":"ada"}'
    signature = sign(OTHER, f"{SOCKET_ID}::user::{user_data}")
    with pytest.raises(ProtocolError) as caught:
        verify_signin_auth(
            key=KEY,
            secret=ROTATING.secrets,
            socket_id=SOCKET_ID,
            user_data=user_data,
            auth=f"{KEY}:{signature}",
        )
    assert caught.value.code == 4009


def api_params(secret: str, body: bytes) -> dict[str, str]:
    return sign_api_request(
        key=KEY,
        secret=secret,
        method="POST",
        path="/apps/9/events",
        body=body,
        timestamp=NOW,
    )


@pytest.mark.parametrize("secret", [CURRENT, PREVIOUS])
def test_api_request_accepts_either_secret(secret: str) -> None:
    """A signed HTTP API request passes with either secret."""
    body = b'{"name":"e","channels":["c"],"data":"{}"}'
    verify_api_request(
        key=KEY,
        secret=ROTATING.secrets,
        method="POST",
        paths=("/apps/9/events",),
        params=api_params(secret, body),
        body=body,
        now=NOW,
    )


def test_api_request_rejects_third_secret() -> None:
    """An HTTP API request signed with neither secret gets 401."""
    body = b"{}"
    with pytest.raises(ApiError) as caught:
        verify_api_request(
            key=KEY,
            secret=ROTATING.secrets,
            method="POST",
            paths=("/apps/9/events",),
            params=api_params(OTHER, body),
            body=body,
            now=NOW,
        )
    assert caught.value.status == 401


def test_single_secret_string_still_accepted() -> None:
    """A plain string is one secret, not a sequence of one-letter secrets."""
    verify_channel_auth(
        key=KEY,
        secret=CURRENT,
        socket_id=SOCKET_ID,
        channel="private-orders",
        auth=channel_token(CURRENT, "private-orders"),
    )
    with pytest.raises(SubscriptionError):
        verify_channel_auth(
            key=KEY,
            secret=CURRENT,
            socket_id=SOCKET_ID,
            channel="private-orders",
            auth=channel_token(PREVIOUS, "private-orders"),
        )
