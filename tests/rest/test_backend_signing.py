"""What a backend signs: auth endpoint bodies, webhooks and HTTP API requests.

The expected values are fixed known-answer values. The credentials (app 3) and the
channel, user and request examples are the sample ones from Pusher's
documentation and server libraries, so the signatures match what those
libraries produce for the same input.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from clarion.protocol.backend import (
    ApiRequestBuilder,
    BatchEvent,
    WebhookError,
    authenticate_user,
    authorize_channel,
    decode_master_key,
    derive_shared_secret,
    encrypt_event_data,
    verify_webhook,
)

APP_ID = "3"
KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
SOCKET_ID = "1234.1234"
TIMESTAMP = 1353088179

MASTER_KEY = base64.b64decode("dGhpcyBpcyAzMiBieXRlcyAxMjM0NTY3ODkwMTIzNDU=")

WEBHOOK_BODY = (
    b'{"time_ms":1327078148132,"events":'
    b'[{"name":"channel_occupied","channel":"my-channel"}]}'
)
WEBHOOK_SIGNATURE = "c19001ae3963ccb13bf618e5b16ba9848e7e74df0993aa0689168e341c6833cf"


def builder(**overrides: Any) -> ApiRequestBuilder:
    """Return a request builder for app 3 with the clock at TIMESTAMP."""
    arguments: dict[str, Any] = {
        "app_id": APP_ID,
        "key": KEY,
        "secret": SECRET,
        "clock": lambda: TIMESTAMP,
    }
    arguments.update(overrides)
    return ApiRequestBuilder(**arguments)


# Channel authorization


def test_authorize_channel_private_known_answer() -> None:
    """A private channel's auth is the key and the documented signature."""
    body = authorize_channel(
        key=KEY, secret=SECRET, socket_id=SOCKET_ID, channel="private-foobar"
    )
    assert body == {
        "auth": f"{KEY}:"
        "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    }


@pytest.mark.parametrize(
    ("name", "signature"),
    [
        pytest.param(
            "Mr. Pusher",
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
            id="documented-signature",
        ),
        pytest.param(
            "Mr. Channels",
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
            id="documented-text",
        ),
    ],
)
def test_authorize_channel_presence_known_answer(name: str, signature: str) -> None:
    """A presence channel signs the compact channel_data that it returns."""
    body = authorize_channel(
        key=KEY,
        secret=SECRET,
        socket_id=SOCKET_ID,
        channel="presence-foobar",
        user={"user_id": 10, "user_info": {"name": name}},
    )
    expected_data = f'{{"user_id":10,"user_info":{{"name":"{name}"}}}}'
    assert body["channel_data"] == expected_data
    assert body["auth"] == f"{KEY}:{signature}"


def test_authorize_channel_presence_without_user() -> None:
    """A presence channel without a user is signed without channel_data."""
    body = authorize_channel(
        key=KEY, secret=SECRET, socket_id=SOCKET_ID, channel="presence-foobar"
    )
    assert set(body) == {"auth"}


def test_authorize_channel_encrypted_known_answer() -> None:
    """An encrypted channel gets its signature and its base64 shared secret."""
    body = authorize_channel(
        key=KEY,
        secret=SECRET,
        socket_id=SOCKET_ID,
        channel="private-encrypted-foobar",
        encryption_master_key=MASTER_KEY,
    )
    assert body["auth"] == (
        f"{KEY}:e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533"
    )
    assert body["shared_secret"] == "rFGvgFWZXXk+VgfBMlBkOO8T8GSefMVHsp3BQsLm1cg="


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"socket_id": "1234"}, "Invalid socket_id", id="bad-socket-id"),
        pytest.param({"channel": "private-a b"}, "Invalid channel", id="bad-name"),
        pytest.param({"channel": "public"}, "needs no authorization", id="public"),
        pytest.param(
            {"channel": "#server-to-user-1"},
            "needs no authorization",
            id="server-to-user",
        ),
        pytest.param(
            {"user": {"user_id": "1"}}, "Only presence channels", id="user-on-private"
        ),
        pytest.param(
            {"channel": "presence-x", "user": {"user_info": {}}},
            "user_id",
            id="presence-without-user-id",
        ),
        pytest.param(
            {"channel": "presence-x", "user": {"user_id": ""}},
            "non-empty",
            id="presence-empty-user-id",
        ),
        pytest.param(
            {"channel": "presence-x", "user": {"user_id": True}},
            "user_id",
            id="presence-boolean-user-id",
        ),
        pytest.param(
            {"channel": "private-encrypted-x"}, "master key", id="encrypted-no-key"
        ),
    ],
)
def test_authorize_channel_rejects_invalid_input(
    arguments: dict[str, Any], message: str
) -> None:
    """Invalid input raises ValueError naming the problem."""
    call: dict[str, Any] = {
        "key": KEY,
        "secret": SECRET,
        "socket_id": SOCKET_ID,
        "channel": "private-foobar",
    }
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        authorize_channel(**call)


# User authentication


@pytest.mark.parametrize(
    ("user", "user_data", "signature"),
    [
        pytest.param(
            {"id": "12345"},
            '{"id":"12345"}',
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
            id="id-only",
        ),
        pytest.param(
            {"id": "12345", "user_info": {"name": "Alice"}, "watchlist": ["42", "43"]},
            '{"id":"12345","user_info":{"name":"Alice"},"watchlist":["42","43"]}',
            "46d373d01396a754cae5dfdc9dd99bde2652c98dc9410ab4aa946bc87bc84bef",
            id="info-and-watchlist",
        ),
    ],
)
def test_authenticate_user_known_answer(
    user: dict[str, Any], user_data: str, signature: str
) -> None:
    """Sign-in returns the compact user_data and its signature."""
    body = authenticate_user(key=KEY, secret=SECRET, socket_id=SOCKET_ID, user=user)
    assert body == {"auth": f"{KEY}:{signature}", "user_data": user_data}


@pytest.mark.parametrize("user_id", [None, "", 12345])
def test_authenticate_user_needs_string_id(user_id: object) -> None:
    """User data without a non-empty string id raises ValueError."""
    with pytest.raises(ValueError, match="'id'"):
        authenticate_user(
            key=KEY, secret=SECRET, socket_id=SOCKET_ID, user={"id": user_id}
        )


# End-to-end encryption


def test_derive_shared_secret_known_answer() -> None:
    """The channel key is SHA256 of the channel name and the master key."""
    secret = derive_shared_secret(
        "pvUPIk0YG6MnxCEMIUUVFrbDmQwbhICXUcy", b"OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"
    )
    assert secret.hex() == (
        "709ef3090a24bfa98382cb5d025ca3622c82d31fa27f10b005c0dca27bae6516"
    )


@pytest.mark.parametrize(
    ("channel", "master_key", "nonce", "plaintext", "expected"),
    [
        pytest.param(
            "pvUPIk0YG6MnxCEMIUUVFrbDmQwbhICXUcy",
            b"OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
            b"XAJI0Y6DPBHSAHXTHV3A3ZMF",
            "kkkT5OOkOkO5kT5TOO5TkOT5TTk5O55T",
            {
                "nonce": "WEFKSTBZNkRQQkhTQUhYVEhWM0EzWk1G",
                "ciphertext": "tsYJa2JgGDOpVIYFe4aNVWAvZlpB7z7CjN9mpIdbATE0Yc4izN8a"
                "M8D6VigBxnIQ",
            },
            id="python-sdk-vector",
        ),
        pytest.param(
            "private-encrypted-foobar",
            MASTER_KEY,
            bytes(range(24)),
            '{"message":"hello"}',
            {
                "nonce": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
                "ciphertext": "NafUkOLPo68cS4goUSIh2cusQqs3zf9ArA3Pll8pqBGSqyw=",
            },
            id="json-payload",
        ),
    ],
)
def test_encrypt_event_data_known_answer(
    channel: str,
    master_key: bytes,
    nonce: bytes,
    plaintext: str,
    expected: dict[str, str],
) -> None:
    """Sealed data is the base64 nonce and secretbox output, as compact JSON."""
    sealed = encrypt_event_data(channel, plaintext, master_key, nonce)
    assert json.loads(sealed) == expected
    assert " " not in sealed


def test_encrypt_event_data_rejects_short_nonce() -> None:
    """A nonce that is not 24 bytes raises ValueError."""
    with pytest.raises(ValueError, match="nonce"):
        encrypt_event_data("private-encrypted-x", "{}", MASTER_KEY, b"short")


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        pytest.param("not base64!", "not base64", id="not-base64"),
        pytest.param(base64.b64encode(b"x" * 31).decode(), "31 bytes", id="short"),
    ],
)
def test_decode_master_key_rejects_invalid(encoded: str, message: str) -> None:
    """A master key that is not base64 of 32 bytes raises ValueError."""
    with pytest.raises(ValueError, match=message):
        decode_master_key(encoded)


# Webhooks


def test_verify_webhook_known_answer() -> None:
    """A correctly signed body is decoded, with header names in any case."""
    webhook = verify_webhook(
        key=KEY,
        secret=SECRET,
        body=WEBHOOK_BODY,
        headers={"x-pusher-key": KEY, "X-PUSHER-SIGNATURE": WEBHOOK_SIGNATURE},
    )
    assert webhook.time_ms == 1327078148132
    assert webhook.events == ({"name": "channel_occupied", "channel": "my-channel"},)


def test_verify_webhook_accepts_recent_time() -> None:
    """A webhook created within the allowed age of now passes the time check."""
    webhook = verify_webhook(
        key=KEY,
        secret=SECRET,
        body=WEBHOOK_BODY,
        headers={"X-Pusher-Key": KEY, "X-Pusher-Signature": WEBHOOK_SIGNATURE},
        now=1327078148.132 + 299,
    )
    assert webhook.time_ms == 1327078148132


@pytest.mark.parametrize(
    ("headers", "body", "now", "message"),
    [
        pytest.param(
            {"X-Pusher-Signature": WEBHOOK_SIGNATURE},
            WEBHOOK_BODY,
            None,
            "Missing X-Pusher-Key",
            id="no-key",
        ),
        pytest.param(
            {"X-Pusher-Key": "other", "X-Pusher-Signature": WEBHOOK_SIGNATURE},
            WEBHOOK_BODY,
            None,
            "unknown key",
            id="other-key",
        ),
        pytest.param(
            {"X-Pusher-Key": KEY},
            WEBHOOK_BODY,
            None,
            "Missing X-Pusher-Signature",
            id="no-signature",
        ),
        pytest.param(
            {"X-Pusher-Key": KEY, "X-Pusher-Signature": WEBHOOK_SIGNATURE},
            WEBHOOK_BODY + b" ",
            None,
            "not the HMAC",
            id="changed-body",
        ),
        pytest.param(
            {"X-Pusher-Key": KEY, "X-Pusher-Signature": WEBHOOK_SIGNATURE},
            WEBHOOK_BODY,
            1327078148.132 + 301,
            "Stale webhook",
            id="stale",
        ),
    ],
)
def test_verify_webhook_rejects_bad_request(
    headers: dict[str, str], body: bytes, now: float | None, message: str
) -> None:
    """A webhook with a missing or wrong header, or too old, raises WebhookError."""
    with pytest.raises(WebhookError, match=message):
        verify_webhook(key=KEY, secret=SECRET, body=body, headers=headers, now=now)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"events":[]}', b'{"time_ms":1,"events":[1]}'],
)
def test_verify_webhook_rejects_malformed_body(body: bytes) -> None:
    """A signed body that is not a webhook object raises WebhookError."""
    from clarion.protocol.webhooks import sign_body

    headers = {"X-Pusher-Key": KEY, "X-Pusher-Signature": sign_body(SECRET, body)}
    with pytest.raises(WebhookError, match="Invalid webhook body"):
        verify_webhook(key=KEY, secret=SECRET, body=body, headers=headers)


# HTTP API requests


def test_trigger_request_documented_example() -> None:
    """The trigger request reproduces the signed example of the HTTP API docs."""
    request = builder().trigger("project-3", "foo", '{"some":"data"}')
    assert request.method == "POST"
    assert request.path == "/apps/3/events"
    assert request.body == (
        b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    )
    assert request.params == {
        "auth_key": KEY,
        "auth_timestamp": str(TIMESTAMP),
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
        "auth_signature": (
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        ),
    }


def test_channels_request_known_answer() -> None:
    """GET /channels sends no body_md5 and signs its query parameters."""
    request = builder().channels(prefix="presence-", info=["user_count"])
    assert request.path == "/apps/3/channels"
    assert "body_md5" not in request.params
    assert request.params["auth_signature"] == (
        "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"
    )


def test_batch_request_known_answer() -> None:
    """A batch of one event has the expected body and signature."""
    request = builder().trigger_batch([BatchEvent("my-channel", "my-event", {"x": 1})])
    assert request.path == "/apps/3/batch_events"
    assert request.body == (
        b'{"batch":[{"channel":"my-channel","name":"my-event","data":"{\\"x\\":1}"}]}'
    )
    assert request.params["auth_signature"] == (
        "008cb7e3c77c1ca08cd0048c69c1fb15a446ee2d35944e7037849c8ad27a3c27"
    )


def test_terminate_request_known_answer() -> None:
    """terminate_connections posts {} under /apps/{app_id}, correctly signed."""
    request = builder().terminate_user_connections("12345")
    assert request.path == "/apps/3/users/12345/terminate_connections"
    assert request.body == b"{}"
    assert request.params["auth_signature"] == (
        "01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e"
    )


def test_trigger_request_optional_fields() -> None:
    """socket_id and info go into the body; non-string data is compact JSON."""
    request = builder().trigger(
        ["a", "b"],
        "e",
        {"text": "héllo"},
        socket_id="1.2",
        info=["subscription_count"],
    )
    assert json.loads(request.body) == {
        "name": "e",
        "channels": ["a", "b"],
        "data": '{"text":"héllo"}',
        "socket_id": "1.2",
        "info": "subscription_count",
    }


def test_trigger_request_encrypts_channel() -> None:
    """Data for an encrypted channel is sealed with a fresh nonce."""
    requests = builder(
        encryption_master_key=MASTER_KEY, random_bytes=lambda size: bytes(range(size))
    )
    request = requests.trigger("private-encrypted-foobar", "e", '{"message":"hello"}')
    data = json.loads(json.loads(request.body)["data"])
    assert data == {
        "nonce": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
        "ciphertext": "NafUkOLPo68cS4goUSIh2cusQqs3zf9ArA3Pll8pqBGSqyw=",
    }


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        pytest.param([], "at least one channel", id="no-channel"),
        pytest.param(
            ["private-encrypted-a", "b"], "several channels", id="encrypted-among-many"
        ),
        pytest.param(["private-encrypted-a"], "master key", id="encrypted-no-key"),
    ],
)
def test_trigger_request_rejects_invalid(channels: list[str], message: str) -> None:
    """Triggers that cannot be built raise ValueError before anything is sent."""
    with pytest.raises(ValueError, match=message):
        builder().trigger(channels, "e", "{}")


def test_channel_request_escapes_path() -> None:
    """A user id is percent-encoded in the path, and the path is signed as sent."""
    request = builder().terminate_user_connections("a/b c#d")
    assert request.path == "/apps/3/users/a%2Fb%20c%23d/terminate_connections"


def test_channel_request_keeps_channel_characters() -> None:
    """Characters allowed in channel names stay as they are in the path."""
    request = builder().channel("presence-a=b@c,d;e", info=["user_count"])
    assert request.path == "/apps/3/channels/presence-a=b@c,d;e"
    assert request.params["info"] == "user_count"


def test_request_target_escapes_query() -> None:
    """The request target percent-encodes query values."""
    request = builder().channels(prefix="presence-a b")
    assert "filter_by_prefix=presence-a%20b" in request.target


def test_request_builder_repr_hides_secret() -> None:
    """The builder's repr names the app but not its secret."""
    assert SECRET not in repr(builder())
