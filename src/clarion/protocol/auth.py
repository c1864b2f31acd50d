"""Signatures: channel authorization, user sign-in and signed HTTP API requests.

Every signature is the lowercase hex HMAC-SHA256 of a UTF-8 string under the app
secret. Comparisons use ``hmac.compare_digest`` so that timing reveals nothing
about the expected value.

The checks take one secret or a tuple of them: during a secret rotation an app
has two valid secrets (``App.secrets``), and a signature made with either passes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeAlias

from clarion.protocol.errors import (
    ApiError,
    ErrorCode,
    ProtocolError,
    SubscriptionError,
    shorten,
)

__all__ = [
    "API_TIMESTAMP_WINDOW",
    "Secrets",
    "build_api_string_to_sign",
    "sign",
    "sign_api_request",
    "sign_bytes",
    "verify_api_request",
    "verify_channel_auth",
    "verify_signin_auth",
]

API_TIMESTAMP_WINDOW = 600
"""Seconds an HTTP API request's ``auth_timestamp`` may differ from server time."""

EMPTY_BODY_MD5 = hashlib.md5(b"").hexdigest()
_TIMESTAMP_PATTERN = re.compile(r"-?[0-9]{1,12}")

Secrets: TypeAlias = str | tuple[str, ...]
"""One app secret, or every secret valid at the moment, current first."""


def sign(secret: str, message: str) -> str:
    """Return the hex HMAC-SHA256 of ``message`` under ``secret``."""
    return sign_bytes(secret, message.encode())


def sign_bytes(secret: str, data: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``data`` under ``secret``."""
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def verify_channel_auth(
    *,
    key: str,
    secret: Secrets,
    socket_id: str,
    channel: str,
    auth: object,
    channel_data: str | None = None,
) -> None:
    """Check a subscription's ``auth`` token, ``<app key>:<hex signature>``.

    The signed string is ``<socket_id>:<channel>``, followed by ``:<channel_data>``
    when channel data was sent, using the exact string the client sent.

    Raises:
        SubscriptionError: ``AuthError`` with status 401, naming what is wrong.
    """
    string_to_sign = f"{socket_id}:{channel}"
    if channel_data is not None:
        string_to_sign += f":{channel_data}"
    problem = _check_token(key, secret, string_to_sign, auth)
    if problem is None:
        return
    if problem == "format":
        message = (
            f"Auth value for subscription to {channel} is invalid: "
            "should be of format 'key:signature'"
        )
    elif problem == "key":
        message = f"Invalid key in subscription auth data: '{shorten(_auth_key(auth))}'"
    else:
        message = _signature_message(string_to_sign, auth)
    raise SubscriptionError("AuthError", message, 401)


def verify_signin_auth(
    *, key: str, secret: Secrets, socket_id: str, user_data: str, auth: object
) -> None:
    """Check a ``pusher:signin`` token over ``<socket_id>::user::<user_data>``.

    Raises:
        ProtocolError: code 4009, naming what is wrong.
    """
    string_to_sign = f"{socket_id}::user::{user_data}"
    problem = _check_token(key, secret, string_to_sign, auth)
    if problem is None:
        return
    if problem == "format":
        message = "Sign-in auth is invalid: should be of format 'key:signature'"
    elif problem == "key":
        message = f"Invalid key in sign-in auth data: '{shorten(_auth_key(auth))}'"
    else:
        message = _signature_message(string_to_sign, auth)
    raise ProtocolError(message, code=ErrorCode.UNAUTHORIZED)


def _check_token(
    key: str, secret: Secrets, string_to_sign: str, auth: object
) -> str | None:
    """Return which part of ``auth`` is wrong (format, key or signature), or None."""
    if not isinstance(auth, str) or ":" not in auth:
        return "format"
    auth_key, signature = auth.split(":", 1)
    if not hmac.compare_digest(auth_key.encode(), key.encode()):
        return "key"
    if not _matches_any(secret, string_to_sign, signature):
        return "signature"
    return None


def _matches_any(secret: Secrets, string_to_sign: str, signature: str) -> bool:
    """Return whether ``signature`` is the signature of ``string_to_sign`` under
    any of the secrets.

    Every secret is compared, even after a match, so the time taken does not
    tell which secret matched.
    """
    secrets = (secret,) if isinstance(secret, str) else secret
    given = signature.encode()
    matched = False
    for candidate in secrets:
        expected = sign(candidate, string_to_sign).encode()
        matched |= hmac.compare_digest(expected, given)
    return matched


def _auth_key(auth: object) -> str:
    return str(auth).split(":", 1)[0]


def _signature_message(string_to_sign: str, auth: object) -> str:
    # The expected string contains nothing secret, so it helps the app's developer.
    signature = shorten(str(auth).split(":", 1)[1])
    return (
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"{string_to_sign}, but got {signature}"
    )


def build_api_string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    """Return ``METHOD\\nPATH\\nQUERY`` with every parameter but ``auth_signature``.

    QUERY contains lowercased keys in byte order, ``key=value`` joined by ``&``, and
    the values are not escaped.
    """
    pairs = sorted(
        (name.lower(), value)
        for name, value in params.items()
        if name != "auth_signature"
    )
    query = "&".join(f"{name}={value}" for name, value in pairs)
    return f"{method.upper()}\n{path}\n{query}"


def sign_api_request(
    *,
    key: str,
    secret: str,
    method: str,
    path: str,
    params: Mapping[str, str] | None = None,
    body: bytes = b"",
    timestamp: int,
) -> dict[str, str]:
    """Return ``params`` plus the ``auth_*`` and ``body_md5`` parameters to send."""
    signed = dict(params or {})
    signed.update(auth_key=key, auth_timestamp=str(timestamp), auth_version="1.0")
    if body:
        signed["body_md5"] = hashlib.md5(body).hexdigest()
    signed["auth_signature"] = sign(
        secret, build_api_string_to_sign(method, path, signed)
    )
    return signed


def verify_api_request(
    *,
    key: str,
    secret: Secrets,
    method: str,
    paths: tuple[str, ...],
    params: Mapping[str, str],
    body: bytes,
    now: float,
) -> None:
    """Check an HTTP API request's signature parameters.

    ``paths`` are the forms of the request path to try in order: the raw path as
    received, then its percent-decoded form, because HTTP stacks differ on
    whether they escape characters such as ``@`` in channel names.

    Raises:
        ApiError: status 401, naming the missing or wrong parameter.
    """
    for name in ("auth_key", "auth_timestamp", "auth_version", "auth_signature"):
        if name not in params:
            raise ApiError(401, f"Missing required parameter: {name}")
    if not hmac.compare_digest(params["auth_key"].encode(), key.encode()):
        raise ApiError(401, f"Unknown auth_key: {params['auth_key']}")
    if params["auth_version"] != "1.0":
        raise ApiError(401, "Unsupported auth_version: expected 1.0")
    _check_timestamp(params["auth_timestamp"], now)
    _check_body_md5(params.get("body_md5"), body)

    signature = params["auth_signature"]
    for path in paths:
        string_to_sign = build_api_string_to_sign(method, path, params)
        if _matches_any(secret, string_to_sign, signature):
            return
    raise ApiError(
        401, "Invalid signature: the auth_signature does not match the request"
    )


def _check_timestamp(raw: str, now: float) -> None:
    if not _TIMESTAMP_PATTERN.fullmatch(raw):
        raise ApiError(
            401, f"Invalid auth_timestamp: {raw[:32]!r} is not a Unix time in seconds"
        )
    timestamp = int(raw)
    if abs(now - timestamp) > API_TIMESTAMP_WINDOW:
        given = _iso(timestamp)
        server = _iso(int(now))
        raise ApiError(
            401,
            f"Timestamp expired: Given timestamp ({given}) not within "
            f"{API_TIMESTAMP_WINDOW}s of server time ({server})",
        )


def _iso(timestamp: int) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


def _check_body_md5(body_md5: str | None, body: bytes) -> None:
    # pusher-http-python sends body_md5 on GET requests too (the MD5 of the empty
    # body), so an empty body with that value is fine.
    if body_md5 is None:
        if body:
            raise ApiError(401, "Missing required parameter: body_md5")
        return
    expected = hashlib.md5(body).hexdigest() if body else EMPTY_BODY_MD5
    if not hmac.compare_digest(body_md5.lower().encode(), expected.encode()):
        raise ApiError(401, "Invalid body_md5: it does not match the MD5 of the body")
