"""Signing and request building for an app's backend, with no I/O.

Three groups of helpers:

- the bodies an app's auth endpoints return: ``authorize_channel`` for private,
  presence and private-encrypted subscriptions, ``authenticate_user`` for
  ``pusher.signin()``;
- webhooks as a receiver checks them: ``verify_webhook``;
- signed HTTP API requests: ``ApiRequestBuilder`` returns one ``ApiRequest``
  per endpoint, which any HTTP/1.1 client can send as it is.

Private-encrypted channels use a 32-byte master key that only the backend
holds. Each channel's key is ``SHA256(channel name || master key)``, and event
data is sealed with NaCl ``secretbox``, which needs the PyNaCl package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from clarion.protocol.api import is_valid_socket_id
from clarion.protocol.auth import sign, sign_api_request
from clarion.protocol.channels import (
    SERVER_TO_USER_PREFIX,
    ChannelKind,
    classify,
    is_valid_channel_name,
)
from clarion.protocol.errors import PusherError
from clarion.protocol.messages import dumps
from clarion.protocol.webhooks import verify_signature

__all__ = [
    "MASTER_KEY_BYTES",
    "ApiRequest",
    "ApiRequestBuilder",
    "BatchEvent",
    "Webhook",
    "WebhookError",
    "authenticate_user",
    "authorize_channel",
    "decode_master_key",
    "derive_shared_secret",
    "encrypt_event_data",
    "verify_webhook",
]

MASTER_KEY_BYTES = 32
NONCE_BYTES = 24
"""Length of a NaCl ``secretbox`` nonce."""

# Maximum channel name length that the official server SDKs accept. A server
# may enforce a lower limit (Pusher's documented one is 164).
MAX_CHANNEL_NAME_LENGTH = 200

WEBHOOK_MAX_AGE = 300.0
"""Seconds a webhook's ``time_ms`` may differ from the receiver's clock."""

# RFC 3986 allows these in a path segment. Channel names use them, so they are
# sent and signed as they are; any other byte is percent-encoded.
_PATH_SAFE = "=@,;"


# Auth endpoint bodies


def authorize_channel(
    *,
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    user: Mapping[str, Any] | None = None,
    encryption_master_key: bytes | None = None,
) -> dict[str, str]:
    """Build the JSON body an auth endpoint returns to allow one subscription.

    ``user`` is the presence member, ``{"user_id": ..., "user_info": ...}``;
    it is sent as ``channel_data`` and signed in the exact compact form
    returned. A presence channel without ``user`` is signed without
    ``channel_data``, which servers accept only from a signed-in connection.
    A private-encrypted channel needs ``encryption_master_key`` and gets its
    ``shared_secret``.

    Raises:
        ValueError: invalid ``socket_id`` or channel name, a public channel, a
            ``user`` for a non-presence channel, a ``user`` without a valid
            ``user_id``, or a missing master key.
    """
    _check_socket_id(socket_id)
    if not is_valid_channel_name(channel, MAX_CHANNEL_NAME_LENGTH):
        raise ValueError(f"Invalid channel name: {channel!r}")
    kind = classify(channel)
    if not kind.needs_auth:
        raise ValueError(
            f"Channel {channel!r} needs no authorization: only private-, "
            "private-encrypted- and presence- channels do"
        )
    if user is not None and kind is not ChannelKind.PRESENCE:
        raise ValueError(f"Only presence channels take a user; {channel!r} is not one")

    string_to_sign = f"{socket_id}:{channel}"
    body: dict[str, str] = {}
    if user is not None:
        _check_presence_user(user)
        channel_data = dumps(dict(user))
        string_to_sign += f":{channel_data}"
        body["channel_data"] = channel_data
    body["auth"] = f"{key}:{sign(secret, string_to_sign)}"

    if kind is ChannelKind.ENCRYPTED:
        if encryption_master_key is None:
            raise ValueError(
                f"Channel {channel!r} is end-to-end encrypted: authorizing it "
                "needs the encryption master key"
            )
        shared_secret = derive_shared_secret(channel, encryption_master_key)
        body["shared_secret"] = base64.b64encode(shared_secret).decode("ascii")
    return body


def authenticate_user(
    *, key: str, secret: str, socket_id: str, user: Mapping[str, Any]
) -> dict[str, str]:
    """Build the JSON body a user authentication endpoint returns for sign-in.

    ``user`` needs a non-empty string ``id`` and may carry ``user_info`` and
    ``watchlist``. It is sent as ``user_data`` in compact JSON, the exact
    string that is signed.

    Raises:
        ValueError: invalid ``socket_id``, or ``user`` without a string ``id``.
    """
    _check_socket_id(socket_id)
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"User data needs a non-empty string 'id', got {user_id!r}")
    user_data = dumps(dict(user))
    signature = sign(secret, f"{socket_id}::user::{user_data}")
    return {"auth": f"{key}:{signature}", "user_data": user_data}


def _check_socket_id(socket_id: str) -> None:
    if not is_valid_socket_id(socket_id):
        raise ValueError(
            f"Invalid socket_id {socket_id!r}: expected two dot-separated "
            "numbers such as 1234.1234"
        )


def _check_presence_user(user: Mapping[str, Any]) -> None:
    user_id = user.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, str | int):
        raise ValueError(
            f"Presence user needs a 'user_id' string or integer, got {user_id!r}"
        )
    if user_id == "":
        raise ValueError("Presence user needs a non-empty 'user_id'")


# End-to-end encryption


def decode_master_key(encoded: str) -> bytes:
    """Decode a base64 encryption master key and check that it has 32 bytes.

    Raises:
        ValueError: not base64, or not 32 bytes long.
    """
    try:
        master_key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("Invalid encryption master key: it is not base64") from None
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(
            f"Invalid encryption master key: it decodes to {len(master_key)} bytes, "
            f"expected {MASTER_KEY_BYTES}"
        )
    return master_key


def derive_shared_secret(channel: str, master_key: bytes) -> bytes:
    """Return a private-encrypted channel's 32-byte key: SHA256(name || master)."""
    _check_master_key(master_key)
    return hashlib.sha256(channel.encode() + master_key).digest()


def _check_master_key(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise ValueError(
            f"Invalid encryption master key: {len(master_key)} bytes, "
            f"expected {MASTER_KEY_BYTES}"
        )


def encrypt_event_data(channel: str, data: str, master_key: bytes, nonce: bytes) -> str:
    """Seal ``data`` for a private-encrypted channel as its subscribers expect.

    Returns the event data to publish: compact JSON holding the base64 nonce
    and the base64 ``secretbox`` ciphertext (with its 16-byte MAC).

    Raises:
        ValueError: the nonce is not 24 bytes, or the master key not 32.
        ImportError: PyNaCl is not installed.
    """
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"Invalid nonce: {len(nonce)} bytes, expected {NONCE_BYTES}")
    try:
        from nacl.secret import SecretBox
    except ImportError as exc:
        raise ImportError(
            "Publishing to private-encrypted channels needs PyNaCl: "
            "run `pip install pynacl`"
        ) from exc
    box = SecretBox(derive_shared_secret(channel, master_key))
    sealed = box.encrypt(data.encode(), nonce)
    return dumps(
        {
            "nonce": base64.b64encode(nonce).decode("ascii"),
            "ciphertext": base64.b64encode(sealed.ciphertext).decode("ascii"),
        }
    )


# Webhooks


class WebhookError(PusherError):
    """A webhook request is not from the app: missing or wrong key, bad signature,
    malformed body or stale ``time_ms``."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """A verified webhook body."""

    time_ms: int
    """Unix milliseconds when the server created the webhook."""
    events: tuple[dict[str, Any], ...]


def verify_webhook(
    *,
    key: str,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    max_age: float = WEBHOOK_MAX_AGE,
) -> Webhook:
    """Check a webhook request's ``X-Pusher-Key`` and ``X-Pusher-Signature``.

    ``body`` must be the raw bytes received, and header names match in any
    case. When ``now`` (Unix seconds) is given, a ``time_ms`` more than
    ``max_age`` seconds away from it is rejected, which limits replays.

    Raises:
        WebhookError: naming the header or field that failed.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    received_key = lowered.get("x-pusher-key")
    if received_key is None:
        raise WebhookError("Missing X-Pusher-Key header")
    if not hmac.compare_digest(received_key.encode(), key.encode()):
        raise WebhookError(f"Invalid X-Pusher-Key header: unknown key {received_key!r}")
    signature = lowered.get("x-pusher-signature")
    if signature is None:
        raise WebhookError("Missing X-Pusher-Signature header")
    if not verify_signature(secret, body, signature):
        raise WebhookError(
            "Invalid X-Pusher-Signature header: it is not the HMAC of the body"
        )
    webhook = _decode_webhook(body)
    if now is not None and abs(now * 1000 - webhook.time_ms) > max_age * 1000:
        raise WebhookError(
            f"Stale webhook: time_ms {webhook.time_ms} is more than {max_age:g} s "
            "from the current time"
        )
    return webhook


def _decode_webhook(body: bytes) -> Webhook:
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookError("Invalid webhook body: it is not JSON") from None
    if not isinstance(fields, dict):
        raise WebhookError("Invalid webhook body: it is not a JSON object")
    time_ms = fields.get("time_ms")
    if isinstance(time_ms, bool) or not isinstance(time_ms, int):
        raise WebhookError(f"Invalid webhook body: time_ms is {time_ms!r}")
    events = fields.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise WebhookError("Invalid webhook body: events is not a list of objects")
    return Webhook(time_ms, tuple(events))


# HTTP API requests


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One signed HTTP API request, ready to send."""

    method: str
    path: str
    """Percent-encoded path, exactly as signed."""
    params: dict[str, str]
    """Query parameters, ``auth_signature`` included."""
    body: bytes = b""

    @property
    def target(self) -> str:
        """The request target of the HTTP request line: path and query."""
        return f"{self.path}?{urlencode(self.params, quote_via=quote)}"


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """One event of a batch trigger."""

    channel: str
    name: str
    data: Any
    """A string is sent as it is; any other value as compact JSON."""
    socket_id: str | None = None
    """The connection that must not receive the event."""
    info: tuple[str, ...] = ()
    """Channel attributes to return, such as ``subscription_count``."""


class ApiRequestBuilder:
    """Builds the signed request of each HTTP API endpoint for one app.

    ``clock`` returns Unix seconds for ``auth_timestamp``; ``random_bytes``
    returns nonces for encrypted events. Both are parameters so that tests
    get fixed output.
    """

    def __init__(
        self,
        *,
        app_id: str,
        key: str,
        secret: str,
        encryption_master_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if encryption_master_key is not None:
            _check_master_key(encryption_master_key)
        self.app_id = app_id
        self.key = key
        self._secret = secret
        self._master_key = encryption_master_key
        self._clock = clock
        self._random_bytes = random_bytes

    def __repr__(self) -> str:
        return f"ApiRequestBuilder(app_id={self.app_id!r}, key={self.key!r})"

    # Events

    def trigger(
        self,
        channels: str | Sequence[str],
        name: str,
        data: Any,
        *,
        socket_id: str | None = None,
        info: Iterable[str] = (),
    ) -> ApiRequest:
        """Build ``POST /apps/{app_id}/events`` for one or more channels.

        Raises:
            ValueError: no channel, or a private-encrypted channel among
                several, or one without a configured master key.
        """
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names:
            raise ValueError("Triggering needs at least one channel")
        encrypted = [name for name in names if classify(name) is ChannelKind.ENCRYPTED]
        if encrypted and len(names) > 1:
            raise ValueError(
                f"Cannot trigger on several channels including the encrypted "
                f"{encrypted[0]!r}: each encrypted channel has its own key"
            )
        fields: dict[str, Any] = {
            "name": name,
            "channels": names,
            "data": self._event_data(names[0], data),
        }
        _add_optional_fields(fields, socket_id, info)
        return self._post("events", fields)

    def trigger_batch(self, events: Sequence[BatchEvent]) -> ApiRequest:
        """Build ``POST /apps/{app_id}/batch_events``.

        Raises:
            ValueError: no event, or an encrypted channel with no master key.
        """
        if not events:
            raise ValueError("A batch needs at least one event")
        items = []
        for event in events:
            item: dict[str, Any] = {
                "channel": event.channel,
                "name": event.name,
                "data": self._event_data(event.channel, event.data),
            }
            _add_optional_fields(item, event.socket_id, event.info)
            items.append(item)
        return self._post("batch_events", {"batch": items})

    def send_to_user(self, user_id: str, name: str, data: Any) -> ApiRequest:
        """Build the trigger that sends an event to every connection of a user."""
        return self.trigger(f"{SERVER_TO_USER_PREFIX}{user_id}", name, data)

    # Channels and users

    def channels(
        self, *, prefix: str | None = None, info: Iterable[str] = ()
    ) -> ApiRequest:
        """Build ``GET /apps/{app_id}/channels``, listing occupied channels."""
        params = {}
        if prefix is not None:
            params["filter_by_prefix"] = prefix
        attributes = ",".join(info)
        if attributes:
            params["info"] = attributes
        return self._get("channels", params)

    def channel(self, channel: str, *, info: Iterable[str] = ()) -> ApiRequest:
        """Build ``GET /apps/{app_id}/channels/{channel}``."""
        attributes = ",".join(info)
        params = {"info": attributes} if attributes else {}
        return self._get(f"channels/{_quote_segment(channel)}", params)

    def users(self, channel: str) -> ApiRequest:
        """Build ``GET /apps/{app_id}/channels/{channel}/users`` (presence only)."""
        return self._get(f"channels/{_quote_segment(channel)}/users", {})

    def terminate_user_connections(self, user_id: str) -> ApiRequest:
        """Build ``POST /apps/{app_id}/users/{user_id}/terminate_connections``."""
        if not user_id:
            raise ValueError("Terminating connections needs a non-empty user id")
        return self._post(f"users/{_quote_segment(user_id)}/terminate_connections", {})

    # Signing

    def _event_data(self, channel: str, data: Any) -> str:
        text = data if isinstance(data, str) else dumps(data)
        if classify(channel) is not ChannelKind.ENCRYPTED:
            return text
        if self._master_key is None:
            raise ValueError(
                f"Channel {channel!r} is end-to-end encrypted: triggering on it "
                "needs the encryption master key"
            )
        nonce = self._random_bytes(NONCE_BYTES)
        return encrypt_event_data(channel, text, self._master_key, nonce)

    def _post(self, resource: str, fields: dict[str, Any]) -> ApiRequest:
        return self._signed("POST", resource, {}, dumps(fields).encode())

    def _get(self, resource: str, params: dict[str, str]) -> ApiRequest:
        return self._signed("GET", resource, params, b"")

    def _signed(
        self, method: str, resource: str, params: dict[str, str], body: bytes
    ) -> ApiRequest:
        path = f"/apps/{_quote_segment(self.app_id)}/{resource}"
        signed = sign_api_request(
            key=self.key,
            secret=self._secret,
            method=method,
            path=path,
            params=params,
            body=body,
            timestamp=int(self._clock()),
        )
        return ApiRequest(method, path, signed, body)


def _add_optional_fields(
    fields: dict[str, Any], socket_id: str | None, info: Iterable[str]
) -> None:
    if socket_id is not None:
        _check_socket_id(socket_id)
        fields["socket_id"] = socket_id
    attributes = ",".join(info)
    if attributes:
        fields["info"] = attributes


def _quote_segment(value: str) -> str:
    return quote(value, safe=_PATH_SAFE)
