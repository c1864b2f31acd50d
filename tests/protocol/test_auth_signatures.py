"""Channel authorization, user sign-in and HTTP API request signatures.

The hex digests below are fixed known-answer values, so any change to the
string-to-sign format or to the encoding of key and message fails here. The
credentials (app 3) are the sample ones that Pusher's server libraries use
in their own signing tests.
"""

from __future__ import annotations

import hashlib

import pytest

from clarion.protocol.auth import (
    build_api_string_to_sign,
    sign,
    sign_api_request,
    verify_api_request,
    verify_channel_auth,
    verify_signin_auth,
)
from clarion.protocol.errors import ApiError, ProtocolError, SubscriptionError

KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
SOCKET_ID = "1234.1234"
TIMESTAMP = 1353088179
EMPTY_BODY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"

PRESENCE_DATA_COMPACT = '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'
PRESENCE_DATA_RENAMED = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}'
# json.dumps with its default separators, as pusher-http-python sends it.
PRESENCE_DATA_SPACED = '{"user_id": 10, "user_info": {"name": "Mr. Pusher"}}'

PRIVATE_SIGNATURE = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
PRESENCE_COMPACT_SIGNATURE = (
    "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
)
PRESENCE_RENAMED_SIGNATURE = (
    "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
)
PRESENCE_SPACED_SIGNATURE = (
    "effa42ec7dd23bb390f85f36c479655cd6b348c343045e6428b4fe49d6842d6f"
)
ENCRYPTED_SIGNATURE = "e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533"

SIGNATURE_VECTORS = [
    pytest.param("1234.1234:private-foobar", PRIVATE_SIGNATURE, id="private-channel"),
    pytest.param(
        '1234.1234::user::{"id":"12345"}',
        "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
        id="user-sign-in",
    ),
    pytest.param(
        f"1234.1234:presence-foobar:{PRESENCE_DATA_COMPACT}",
        PRESENCE_COMPACT_SIGNATURE,
        id="presence-compact",
    ),
    pytest.param(
        f"1234.1234:presence-foobar:{PRESENCE_DATA_RENAMED}",
        PRESENCE_RENAMED_SIGNATURE,
        id="presence-renamed-info",
    ),
    pytest.param(
        f"1234.1234:presence-foobar:{PRESENCE_DATA_SPACED}",
        PRESENCE_SPACED_SIGNATURE,
        id="presence-spaced-json",
    ),
    pytest.param(
        "1234.1234:private-encrypted-foobar",
        ENCRYPTED_SIGNATURE,
        id="encrypted-channel",
    ),
    pytest.param(
        '1234.1234::user::{"id":"12345","user_info":{"name":"Alice"},'
        '"watchlist":["42","43"]}',
        "46d373d01396a754cae5dfdc9dd99bde2652c98dc9410ab4aa946bc87bc84bef",
        id="user-watchlist-compact",
    ),
    pytest.param(
        '1234.1234::user::{"id": "12345", "user_info": {"name": "Alice"}, '
        '"watchlist": ["42", "43"]}',
        "51064135958289fa22ddd3ed8b73ccaf864415b6a6299bfb3ad7b712b7417618",
        id="user-watchlist-spaced",
    ),
]


@pytest.mark.parametrize(("string_to_sign", "expected"), SIGNATURE_VECTORS)
def test_sign_matches_known_answer(string_to_sign: str, expected: str) -> None:
    """sign() returns the known lowercase hex HMAC-SHA256 for each string."""
    assert sign(SECRET, string_to_sign) == expected


# Channel authorization

GOOD_TOKENS = [
    pytest.param("private-foobar", PRIVATE_SIGNATURE, None, id="private"),
    pytest.param("private-encrypted-foobar", ENCRYPTED_SIGNATURE, None, id="encrypted"),
    pytest.param(
        "presence-foobar",
        PRESENCE_COMPACT_SIGNATURE,
        PRESENCE_DATA_COMPACT,
        id="presence-compact",
    ),
    pytest.param(
        "presence-foobar",
        PRESENCE_RENAMED_SIGNATURE,
        PRESENCE_DATA_RENAMED,
        id="presence-renamed-info",
    ),
    pytest.param(
        "presence-foobar",
        PRESENCE_SPACED_SIGNATURE,
        PRESENCE_DATA_SPACED,
        id="presence-spaced-json",
    ),
]


@pytest.mark.parametrize(("channel", "signature", "channel_data"), GOOD_TOKENS)
def test_verify_channel_auth_accepts_good_token(
    channel: str, signature: str, channel_data: str | None
) -> None:
    """A token signed over the exact string the client sent is accepted."""
    verify_channel_auth(
        key=KEY,
        secret=SECRET,
        socket_id=SOCKET_ID,
        channel=channel,
        auth=f"{KEY}:{signature}",
        channel_data=channel_data,
    )


FORMAT_MESSAGE = (
    "Auth value for subscription to private-foobar is invalid: "
    "should be of format 'key:signature'"
)
# The private-channel signature with its last hex digit changed from 4 to 5.
CHANGED_SIGNATURE = PRIVATE_SIGNATURE[:-1] + "5"

BAD_TOKENS = [
    pytest.param(
        "private-foobar",
        KEY + PRIVATE_SIGNATURE,
        None,
        FORMAT_MESSAGE,
        id="no-colon",
    ),
    pytest.param("private-foobar", "", None, FORMAT_MESSAGE, id="empty"),
    pytest.param("private-foobar", None, None, FORMAT_MESSAGE, id="missing"),
    pytest.param("private-foobar", 12345, None, FORMAT_MESSAGE, id="not-a-string"),
    pytest.param(
        "private-foobar",
        f"0123456789abcdef0123:{PRIVATE_SIGNATURE}",
        None,
        "Invalid key in subscription auth data: '0123456789abcdef0123'",
        id="wrong-key",
    ),
    pytest.param(
        "private-foobar",
        f"{KEY}:{CHANGED_SIGNATURE}",
        None,
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"1234.1234:private-foobar, but got {CHANGED_SIGNATURE}",
        id="one-hex-digit-changed",
    ),
    pytest.param(
        "private-foobar",
        f"{KEY}:{PRIVATE_SIGNATURE.upper()}",
        None,
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"1234.1234:private-foobar, but got {PRIVATE_SIGNATURE.upper()}",
        id="uppercase-hex",
    ),
    pytest.param(
        "private-foobar",
        f"{KEY}:{PRIVATE_SIGNATURE}",
        PRESENCE_DATA_COMPACT,
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"1234.1234:private-foobar:{PRESENCE_DATA_COMPACT}, "
        f"but got {PRIVATE_SIGNATURE}",
        id="channel-data-not-signed",
    ),
    # The signature of the compact form does not cover the spaced form: the
    # server must check the string as sent, never a re-serialization of it.
    pytest.param(
        "presence-foobar",
        f"{KEY}:{PRESENCE_COMPACT_SIGNATURE}",
        PRESENCE_DATA_SPACED,
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"1234.1234:presence-foobar:{PRESENCE_DATA_SPACED}, "
        f"but got {PRESENCE_COMPACT_SIGNATURE}",
        id="spaced-json-compact-signature",
    ),
]


@pytest.mark.parametrize(("channel", "auth", "channel_data", "message"), BAD_TOKENS)
def test_verify_channel_auth_rejects_bad_token(
    channel: str, auth: object, channel_data: str | None, message: str
) -> None:
    """A bad token raises AuthError 401 with the message that names the fault."""
    with pytest.raises(SubscriptionError) as caught:
        verify_channel_auth(
            key=KEY,
            secret=SECRET,
            socket_id=SOCKET_ID,
            channel=channel,
            auth=auth,
            channel_data=channel_data,
        )
    assert caught.value.error_type == "AuthError"
    assert caught.value.status == 401
    assert caught.value.message == message


def test_verify_channel_auth_rejects_other_socket() -> None:
    """A token signed for another socket_id is rejected."""
    with pytest.raises(SubscriptionError) as caught:
        verify_channel_auth(
            key=KEY,
            secret=SECRET,
            socket_id="1234.1235",
            channel="private-foobar",
            auth=f"{KEY}:{PRIVATE_SIGNATURE}",
        )
    assert caught.value.status == 401


# User sign-in

USER_DATA = '{"id":"12345"}'
USER_DATA_WATCHLIST = (
    '{"id":"12345","user_info":{"name":"Alice"},"watchlist":["42","43"]}'
)
USER_DATA_WATCHLIST_SPACED = (
    '{"id": "12345", "user_info": {"name": "Alice"}, "watchlist": ["42", "43"]}'
)
SIGNIN_SIGNATURE = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"

GOOD_SIGNINS = [
    pytest.param(USER_DATA, SIGNIN_SIGNATURE, id="id-only"),
    pytest.param(
        USER_DATA_WATCHLIST,
        "46d373d01396a754cae5dfdc9dd99bde2652c98dc9410ab4aa946bc87bc84bef",
        id="watchlist-compact",
    ),
    pytest.param(
        USER_DATA_WATCHLIST_SPACED,
        "51064135958289fa22ddd3ed8b73ccaf864415b6a6299bfb3ad7b712b7417618",
        id="watchlist-spaced",
    ),
]


@pytest.mark.parametrize(("user_data", "signature"), GOOD_SIGNINS)
def test_verify_signin_auth_accepts_good_token(user_data: str, signature: str) -> None:
    """A sign-in token over the exact user_data string is accepted."""
    verify_signin_auth(
        key=KEY,
        secret=SECRET,
        socket_id=SOCKET_ID,
        user_data=user_data,
        auth=f"{KEY}:{signature}",
    )


BAD_SIGNINS = [
    pytest.param(USER_DATA, KEY + SIGNIN_SIGNATURE, id="no-colon"),
    pytest.param(USER_DATA, None, id="missing"),
    pytest.param(USER_DATA, f"0123456789abcdef0123:{SIGNIN_SIGNATURE}", id="wrong-key"),
    pytest.param(USER_DATA, f"{KEY}:{SIGNIN_SIGNATURE[:-1]}b", id="one-digit-changed"),
    pytest.param('{"id": "12345"}', f"{KEY}:{SIGNIN_SIGNATURE}", id="respaced-data"),
]


@pytest.mark.parametrize(("user_data", "auth"), BAD_SIGNINS)
def test_verify_signin_auth_rejects_bad_token(user_data: str, auth: object) -> None:
    """A bad sign-in token raises ProtocolError 4009."""
    with pytest.raises(ProtocolError) as caught:
        verify_signin_auth(
            key=KEY, secret=SECRET, socket_id=SOCKET_ID, user_data=user_data, auth=auth
        )
    assert caught.value.code == 4009


# HTTP API request signing

WORKED_EXAMPLE_BODY = (
    b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
)


def test_build_api_string_worked_example() -> None:
    """The string to sign for the trigger example is METHOD, PATH and QUERY."""
    params = {
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
        "auth_key": KEY,
        "auth_timestamp": str(TIMESTAMP),
    }
    expected = (
        "POST\n/apps/3/events\n"
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179"
        "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
    )
    assert build_api_string_to_sign("post", "/apps/3/events", params) == expected


def test_build_api_string_lowercases_and_sorts() -> None:
    """QUERY has lowercased, sorted keys, raw values and no auth_signature."""
    params = {
        "Name": "Something else",
        "auth_signature": "ignored",
        "B": "x&y",
        "a": "1",
    }
    expected = "GET\n/apps/3/channels\na=1&b=x&y&name=Something else"
    assert build_api_string_to_sign("GET", "/apps/3/channels", params) == expected


def test_sign_api_request_worked_example() -> None:
    """Signing the trigger example gives its published body_md5 and signature."""
    signed = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="POST",
        path="/apps/3/events",
        body=WORKED_EXAMPLE_BODY,
        timestamp=TIMESTAMP,
    )
    assert signed == {
        "auth_key": KEY,
        "auth_timestamp": "1353088179",
        "auth_version": "1.0",
        "body_md5": "ec365a775a4cd0599faeb73354201b6f",
        "auth_signature": (
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        ),
    }


def test_sign_api_request_omits_empty_body_md5() -> None:
    """A request without a body gets no body_md5 parameter."""
    signed = sign_api_request(
        key=KEY, secret=SECRET, method="GET", path="/apps/3/channels", timestamp=1
    )
    assert "body_md5" not in signed


CHANNELS_QUERY = {"filter_by_prefix": "presence-", "info": "user_count"}

# (method, path, parameters besides auth_*, body, QUERY, auth_signature)
REQUEST_VECTORS = [
    pytest.param(
        "GET",
        "/apps/3/channels",
        {**CHANNELS_QUERY, "body_md5": EMPTY_BODY_MD5},
        b"",
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=d41d8cd98f00b204e9800998ecf8427e"
        "&filter_by_prefix=presence-&info=user_count",
        "f3f17c61ae491cc9085db68b22076e9b772e3bcb301659d655153ee3f9782aba",
        id="get-with-empty-body-md5",
    ),
    pytest.param(
        "GET",
        "/apps/3/channels",
        CHANNELS_QUERY,
        b"",
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&filter_by_prefix=presence-&info=user_count",
        "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291",
        id="get-without-body-md5",
    ),
    pytest.param(
        "POST",
        "/apps/3/batch_events",
        {},
        b'{"batch":[{"channel":"my-channel","name":"my-event","data":"{\\"x\\":1}"}]}',
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=755107b0f0a0f3a17bbb68ae3871f8b4",
        "008cb7e3c77c1ca08cd0048c69c1fb15a446ee2d35944e7037849c8ad27a3c27",
        id="batch-events",
    ),
    pytest.param(
        "POST",
        "/apps/3/users/12345/terminate_connections",
        {},
        b"{}",
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=99914b932bd37a50b983c5e7c90ae93b",
        "01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e",
        id="terminate-connections",
    ),
    pytest.param(
        "POST",
        "/apps/3/events",
        {},
        WORKED_EXAMPLE_BODY,
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"
        "&body_md5=ec365a775a4cd0599faeb73354201b6f",
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
        id="trigger-worked-example",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "query", "signature"), REQUEST_VECTORS
)
def test_api_string_to_sign_matches_vector(
    method: str,
    path: str,
    params: dict[str, str],
    body: bytes,
    query: str,
    signature: str,
) -> None:
    """The signed request's string to sign ends with the known QUERY."""
    signed = sign_api_request(
        key=KEY,
        secret=SECRET,
        method=method,
        path=path,
        params=params,
        body=body,
        timestamp=TIMESTAMP,
    )
    assert build_api_string_to_sign(method, path, signed) == (
        f"{method}\n{path}\n{query}"
    )


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "query", "signature"), REQUEST_VECTORS
)
def test_sign_api_request_matches_vector(
    method: str,
    path: str,
    params: dict[str, str],
    body: bytes,
    query: str,
    signature: str,
) -> None:
    """sign_api_request() produces the known auth_signature."""
    signed = sign_api_request(
        key=KEY,
        secret=SECRET,
        method=method,
        path=path,
        params=params,
        body=body,
        timestamp=TIMESTAMP,
    )
    assert signed["auth_signature"] == signature


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "query", "signature"), REQUEST_VECTORS
)
def test_verify_api_request_accepts_vector(
    method: str,
    path: str,
    params: dict[str, str],
    body: bytes,
    query: str,
    signature: str,
) -> None:
    """A request carrying the known signature passes verification."""
    received = dict(params)
    received.update(
        auth_key=KEY,
        auth_timestamp=str(TIMESTAMP),
        auth_version="1.0",
        auth_signature=signature,
    )
    if body:
        received["body_md5"] = hashlib.md5(body).hexdigest()
    verify_api_request(
        key=KEY,
        secret=SECRET,
        method=method,
        paths=(path,),
        params=received,
        body=body,
        now=float(TIMESTAMP),
    )


def signed_trigger(**overrides: str) -> dict[str, str]:
    """Return the worked example's signed parameters with some replaced."""
    params = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="POST",
        path="/apps/3/events",
        body=WORKED_EXAMPLE_BODY,
        timestamp=TIMESTAMP,
    )
    params.update(overrides)
    return params


def verify_trigger(
    params: dict[str, str], body: bytes = WORKED_EXAMPLE_BODY, now: float = TIMESTAMP
) -> None:
    verify_api_request(
        key=KEY,
        secret=SECRET,
        method="POST",
        paths=("/apps/3/events",),
        params=params,
        body=body,
        now=now,
    )


@pytest.mark.parametrize(
    "skew", [600, -600, 0], ids=["600s-ahead", "600s-behind", "0s"]
)
def test_api_timestamp_within_window(skew: int) -> None:
    """A timestamp up to 600 s from server time, either way, is accepted."""
    verify_trigger(signed_trigger(), now=TIMESTAMP + skew)


@pytest.mark.parametrize("skew", [601, -601], ids=["601s-ahead", "601s-behind"])
def test_api_timestamp_stale_rejected(skew: int) -> None:
    """A timestamp 601 s from server time, either way, is rejected with 401."""
    with pytest.raises(ApiError) as caught:
        verify_trigger(signed_trigger(), now=TIMESTAMP + skew)
    assert caught.value.status == 401
    assert caught.value.message.startswith("Timestamp expired")


@pytest.mark.parametrize(
    "name", ["auth_key", "auth_timestamp", "auth_version", "auth_signature"]
)
def test_verify_api_request_rejects_missing_parameter(name: str) -> None:
    """Each missing auth parameter is rejected with 401 naming it."""
    params = signed_trigger()
    del params[name]
    with pytest.raises(ApiError) as caught:
        verify_trigger(params)
    assert caught.value.status == 401
    assert name in caught.value.message


BAD_REQUESTS = [
    pytest.param({"auth_key": "0123456789abcdef0123"}, id="wrong-key"),
    pytest.param({"auth_version": "2.0"}, id="wrong-version"),
    pytest.param({"auth_timestamp": "yesterday"}, id="timestamp-not-integer"),
    pytest.param({"body_md5": EMPTY_BODY_MD5}, id="wrong-body-md5"),
    pytest.param({"auth_signature": "0" * 64}, id="wrong-signature"),
    pytest.param({"extra": "added-after-signing"}, id="unsigned-parameter"),
]


@pytest.mark.parametrize("overrides", BAD_REQUESTS)
def test_verify_api_request_rejects_bad_parameter(overrides: dict[str, str]) -> None:
    """A wrong key, version, timestamp, body_md5 or signature is rejected with 401."""
    with pytest.raises(ApiError) as caught:
        verify_trigger(signed_trigger(**overrides))
    assert caught.value.status == 401


def test_verify_api_request_rejects_changed_body() -> None:
    """A body that differs from the signed one fails the body_md5 check."""
    with pytest.raises(ApiError) as caught:
        verify_trigger(signed_trigger(), body=WORKED_EXAMPLE_BODY + b" ")
    assert caught.value.status == 401


def test_verify_api_request_rejects_body_without_md5() -> None:
    """A non-empty body without body_md5 is rejected with 401."""
    params = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="POST",
        path="/apps/3/events",
        timestamp=TIMESTAMP,
    )
    with pytest.raises(ApiError) as caught:
        verify_trigger(params, body=WORKED_EXAMPLE_BODY)
    assert caught.value.status == 401
    assert "body_md5" in caught.value.message


def test_verify_api_request_rejects_wrong_empty_md5() -> None:
    """A body_md5 sent with an empty body must be the MD5 of the empty body."""
    params = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="GET",
        path="/apps/3/channels",
        params={"body_md5": "ec365a775a4cd0599faeb73354201b6f"},
        timestamp=TIMESTAMP,
    )
    with pytest.raises(ApiError) as caught:
        verify_api_request(
            key=KEY,
            secret=SECRET,
            method="GET",
            paths=("/apps/3/channels",),
            params=params,
            body=b"",
            now=TIMESTAMP,
        )
    assert caught.value.status == 401


# A channel name with "@" that the client signed unescaped but whose request
# path arrived percent-encoded.
DECODED_PATH = "/apps/3/channels/presence-a@b"
RAW_PATH = "/apps/3/channels/presence-a%40b"


def test_verify_api_request_tries_decoded_path() -> None:
    """A signature over the percent-decoded path matches via the second path form."""
    params = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="GET",
        path=DECODED_PATH,
        timestamp=TIMESTAMP,
    )
    verify_api_request(
        key=KEY,
        secret=SECRET,
        method="GET",
        paths=(RAW_PATH, DECODED_PATH),
        params=params,
        body=b"",
        now=TIMESTAMP,
    )


def test_verify_api_request_needs_matching_path() -> None:
    """Without the decoded form in paths, the same request is rejected with 401."""
    params = sign_api_request(
        key=KEY,
        secret=SECRET,
        method="GET",
        path=DECODED_PATH,
        timestamp=TIMESTAMP,
    )
    with pytest.raises(ApiError) as caught:
        verify_api_request(
            key=KEY,
            secret=SECRET,
            method="GET",
            paths=(RAW_PATH,),
            params=params,
            body=b"",
            now=TIMESTAMP,
        )
    assert caught.value.status == 401
