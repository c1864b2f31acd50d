"""Channels of the client: public, private, private-encrypted and presence.

Each class follows the pusher-js channel of the same kind: the subscription
flags (``subscribed``, ``subscription_pending``, ``subscription_cancelled``),
the events it emits (``pusher:subscription_succeeded``,
``pusher:subscription_error``, ``pusher:subscription_count``,
``pusher:member_added``, ``pusher:member_removed``) and the data they carry.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nacl.exceptions
import nacl.secret

from clarion.client.errors import AuthError, BadEventName, UnsupportedFeature
from clarion.client.events import EventEmitter, Metadata
from clarion.protocol.client_state import ServerMessage

if TYPE_CHECKING:
    from clarion.client.client import Client

__all__ = [
    "Channel",
    "ChannelEvent",
    "EncryptedChannel",
    "Member",
    "Members",
    "PresenceChannel",
    "PrivateChannel",
]

logger = logging.getLogger("clarion.client")

EVENT_QUEUE_SIZE = 1000
"""Events an async iterator holds for a slow consumer before dropping the oldest."""


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    """One event yielded by async iteration over a channel."""

    event: str
    data: Any
    user_id: str | None = None


_END = object()


class Channel(EventEmitter):
    """A public channel, and the base of the other kinds."""

    def __init__(self, name: str, client: Client) -> None:
        super().__init__()
        self.name = name
        self._client = client
        self.subscribed = False
        self.subscription_pending = False
        self.subscription_cancelled = False
        self.subscription_count: int | None = None
        self._queues: set[asyncio.Queue[Any]] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} subscribed={self.subscribed}>"

    # -- Application API --------------------------------------------------------

    def trigger(self, event: str, data: Any) -> bool:
        """Send a client event; return whether a connection took the frame.

        Raises:
            BadEventName: ``event`` does not start with ``client-``.
        """
        if not event.startswith("client-"):
            raise BadEventName(f"Event '{event}' does not start with 'client-'")
        if not self.subscribed:
            logger.warning(
                "Client event %s triggered on %s before its subscription succeeded",
                event,
                self.name,
            )
        return self._client.send_event(event, data, self.name)

    def events(
        self, *, max_queue: int = EVENT_QUEUE_SIZE
    ) -> AsyncIterator[ChannelEvent]:
        """Iterate over the channel's events, internal ``pusher:`` ones included.

        Iteration starts with the next event and ends when the channel is
        unsubscribed. When the consumer falls ``max_queue`` events behind, the
        oldest waiting event is dropped and a warning is logged.
        """
        return self._iterate(max_queue)

    def __aiter__(self) -> AsyncIterator[ChannelEvent]:
        return self._iterate(EVENT_QUEUE_SIZE)

    async def _iterate(self, max_queue: int) -> AsyncIterator[ChannelEvent]:
        queue: asyncio.Queue[Any] = asyncio.Queue(max_queue)
        self._queues.add(queue)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                yield item
        finally:
            self._queues.discard(queue)

    def emit(
        self, event_name: str, data: Any = None, metadata: Metadata | None = None
    ) -> None:
        super().emit(event_name, data, metadata)
        if not self._queues:
            return
        user_id = metadata.get("user_id") if metadata else None
        item = ChannelEvent(event_name, data, user_id)
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
                logger.warning(
                    "Dropped the oldest event of %s: its async iterator is %d "
                    "events behind",
                    self.name,
                    queue.maxsize,
                )
            queue.put_nowait(item)

    def end_iteration(self) -> None:
        """End every async iteration over this channel."""
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(_END)

    # -- Subscription, driven by the client -------------------------------------

    def subscribe(self) -> None:
        """Send ``pusher:subscribe``, after authorization for private kinds."""
        if self.subscribed:
            return
        self.subscription_pending = True
        self.subscription_cancelled = False
        socket_id = self._client.connection.socket_id or ""
        if not self.needs_authorization:
            self._send_subscribe({"auth": ""})
            return
        self._client.start_task(self._authorize_and_subscribe(socket_id))

    def unsubscribe(self) -> None:
        self.subscribed = False
        self._client.send_event("pusher:unsubscribe", {"channel": self.name})

    def cancel_subscription(self) -> None:
        self.subscription_cancelled = True

    def reinstate_subscription(self) -> None:
        self.subscription_cancelled = False

    def disconnect(self) -> None:
        """Mark the channel unsubscribed because the connection went away."""
        self.subscribed = False
        self.subscription_pending = False

    needs_authorization = False

    async def _authorize_and_subscribe(self, socket_id: str) -> None:
        try:
            auth_data = await self.authorize(socket_id)
        except AuthError as exc:
            if self._is_stale(socket_id):
                return
            self.subscription_pending = False
            logger.error("Authorization of %s failed: %s", self.name, exc)
            error: dict[str, Any] = {"type": "AuthError", "error": str(exc)}
            if exc.status is not None:
                error["status"] = exc.status
            self.emit("pusher:subscription_error", error)
            return
        if not self._is_stale(socket_id):
            self._send_subscribe(auth_data)

    def _is_stale(self, socket_id: str) -> bool:
        # The connection changed (or the subscription ended) while the
        # authorizer ran; the subscription restarts with the new socket id.
        return (
            not self.subscription_pending
            or self._client.connection.socket_id != socket_id
            or self._client.connection.state != "connected"
        )

    async def authorize(self, socket_id: str) -> dict[str, Any]:
        return {"auth": ""}

    def _send_subscribe(self, auth_data: dict[str, Any]) -> None:
        data: dict[str, Any] = {"auth": auth_data.get("auth", "")}
        if auth_data.get("channel_data") is not None:
            data["channel_data"] = auth_data["channel_data"]
        data["channel"] = self.name
        self._client.send_event("pusher:subscribe", data)

    # -- Events from the server -----------------------------------------------

    def handle_event(self, message: ServerMessage) -> None:
        event = message.event
        if event == "pusher_internal:subscription_succeeded":
            self._handle_subscription_succeeded(message.data)
        elif event == "pusher_internal:subscription_count":
            self._handle_subscription_count(message.data)
        elif event.startswith("pusher_internal:"):
            self._handle_internal_event(message)
        else:
            if event == "pusher:subscription_error":
                # pusher-js 8.6.0 leaves the subscription pending here, so a
                # later subscribe() does nothing; ending it lets one retry.
                self.subscription_pending = False
            self.emit(event, message.data, _metadata(message))

    def _handle_subscription_succeeded(self, data: Any) -> None:
        self.subscription_pending = False
        self.subscribed = True
        if self.subscription_cancelled:
            self._client.unsubscribe(self.name)
        else:
            self.emit("pusher:subscription_succeeded", data)

    def _handle_subscription_count(self, data: Any) -> None:
        if isinstance(data, dict) and data.get("subscription_count"):
            self.subscription_count = data["subscription_count"]
        self.emit("pusher:subscription_count", data)

    def _handle_internal_event(self, message: ServerMessage) -> None:
        """Handle other ``pusher_internal:`` events; public channels have none."""


def _metadata(message: ServerMessage) -> Metadata:
    metadata = Metadata()
    if message.user_id is not None:
        metadata["user_id"] = message.user_id
    return metadata


class PrivateChannel(Channel):
    """A ``private-`` channel: the channel authorizer signs each subscription."""

    needs_authorization = True

    async def authorize(self, socket_id: str) -> dict[str, Any]:
        return await self._client.authorize_channel(socket_id, self.name)


class EncryptedChannel(PrivateChannel):
    """A ``private-encrypted-`` channel, decrypted with the auth's shared secret.

    Event data arrives as ``{"nonce": ..., "ciphertext": ...}`` (NaCl secretbox,
    base64). A payload that fails to decrypt triggers one new authorization, in
    case the key changed, and is dropped if it still fails.
    """

    def __init__(self, name: str, client: Client) -> None:
        super().__init__(name, client)
        self._box: nacl.secret.SecretBox | None = None

    async def authorize(self, socket_id: str) -> dict[str, Any]:
        auth_data = await super().authorize(socket_id)
        shared_secret = auth_data.pop("shared_secret", None)
        # pusher-http-python's authenticate() returns the base64 text as bytes,
        # which a callable authorizer may pass on unchanged.
        if isinstance(shared_secret, bytes):
            shared_secret = shared_secret.decode("ascii", errors="replace")
        if not isinstance(shared_secret, str) or not shared_secret:
            raise AuthError(
                f"No shared_secret key in auth payload for encrypted channel: "
                f"{self.name}"
            )
        try:
            self._box = nacl.secret.SecretBox(base64.b64decode(shared_secret))
        except (binascii.Error, ValueError, nacl.exceptions.CryptoError) as exc:
            raise AuthError(
                f"Invalid shared_secret in auth payload for {self.name}: {exc}"
            ) from None
        return auth_data

    def trigger(self, event: str, data: Any) -> bool:
        raise UnsupportedFeature(
            "Client events are not supported on encrypted channels"
        )

    def handle_event(self, message: ServerMessage) -> None:
        if message.event.startswith(("pusher:", "pusher_internal:")):
            super().handle_event(message)
            return
        if self._box is None:
            logger.debug("Encrypted event on %s arrived before its key", self.name)
            return
        payload = _decode_payload(message.data)
        if payload is None:
            logger.error(
                "Encrypted event %s on %s is not an object with base64 nonce and "
                "ciphertext fields",
                message.event,
                self.name,
            )
            return
        plaintext = self._decrypt(*payload)
        if plaintext is not None:
            self.emit(message.event, _decode_plaintext(plaintext), _metadata(message))
            return
        logger.debug("Decryption failed on %s; fetching a new key", self.name)
        self._client.start_task(self._reauthorize_and_decrypt(message, payload))

    def _decrypt(self, nonce: bytes, ciphertext: bytes) -> bytes | None:
        assert self._box is not None
        try:
            return self._box.decrypt(ciphertext, nonce)
        except (nacl.exceptions.CryptoError, ValueError):
            return None

    async def _reauthorize_and_decrypt(
        self, message: ServerMessage, payload: tuple[bytes, bytes]
    ) -> None:
        socket_id = self._client.connection.socket_id or ""
        try:
            await self.authorize(socket_id)
        except AuthError as exc:
            logger.error(
                "Could not fetch a new key for %s (%s); dropped event %s",
                self.name,
                exc,
                message.event,
            )
            return
        plaintext = self._decrypt(*payload)
        if plaintext is None:
            logger.error(
                "Could not decrypt event %s on %s with a new key; dropped it",
                message.event,
                self.name,
            )
            return
        self.emit(message.event, _decode_plaintext(plaintext), _metadata(message))


def _decode_payload(data: Any) -> tuple[bytes, bytes] | None:
    if not isinstance(data, dict):
        return None
    try:
        nonce = base64.b64decode(data["nonce"], validate=True)
        ciphertext = base64.b64decode(data["ciphertext"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        return None
    if len(nonce) < nacl.secret.SecretBox.NONCE_SIZE:
        return None
    if len(ciphertext) < nacl.secret.SecretBox.MACBYTES:
        return None
    return nonce[: nacl.secret.SecretBox.NONCE_SIZE], ciphertext


def _decode_plaintext(plaintext: bytes) -> Any:
    """Return the decrypted data, JSON-decoded when it is JSON, as pusher-js does."""
    text = plaintext.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class Member:
    """A presence channel member: the user id and the app's ``user_info``."""

    id: str
    info: Any


class Members:
    """The roster of a presence channel: ``me``, ``count``, iteration, ``get``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._members: dict[str, Any] = {}
        self.count = 0
        self.my_id: str | None = None
        self.me: Member | None = None

    def __repr__(self) -> str:
        return f"<Members count={self.count} me={self.me!r}>"

    def get(self, user_id: str) -> Member | None:
        if user_id in self._members:
            return Member(user_id, self._members[user_id])
        return None

    def __iter__(self) -> Iterator[Member]:
        for user_id, info in list(self._members.items()):
            yield Member(user_id, info)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._members

    def each(self, callback: Any) -> None:
        """Call ``callback(member)`` for every member, as pusher-js's ``each``."""
        for member in self:
            callback(member)

    def set_my_id(self, user_id: Any) -> None:
        self.my_id = None if user_id is None else str(user_id)

    def on_subscription(self, data: Any) -> None:
        presence = data.get("presence", {}) if isinstance(data, dict) else {}
        roster = presence.get("hash", {})
        self._members = dict(roster) if isinstance(roster, dict) else {}
        count = presence.get("count")
        self.count = count if isinstance(count, int) else len(self._members)
        self.me = self.get(self.my_id) if self.my_id is not None else None

    def add_member(self, data: Any) -> Member | None:
        if not isinstance(data, dict) or data.get("user_id") is None:
            return None
        user_id = str(data["user_id"])
        if user_id not in self._members:
            self.count += 1
        self._members[user_id] = data.get("user_info")
        return self.get(user_id)

    def remove_member(self, data: Any) -> Member | None:
        if not isinstance(data, dict) or data.get("user_id") is None:
            return None
        member = self.get(str(data["user_id"]))
        if member is not None:
            del self._members[member.id]
            self.count -= 1
        return member


class PresenceChannel(PrivateChannel):
    """A ``presence-`` channel with its roster in ``members``."""

    def __init__(self, name: str, client: Client) -> None:
        super().__init__(name, client)
        self.members = Members()

    async def authorize(self, socket_id: str) -> dict[str, Any]:
        auth_data = await super().authorize(socket_id)
        channel_data = auth_data.get("channel_data")
        if channel_data is not None:
            try:
                user_id = json.loads(channel_data)["user_id"]
            except (TypeError, ValueError, KeyError) as exc:
                raise AuthError(
                    f"Invalid channel_data in auth response for {self.name}: {exc!r}"
                ) from None
            self.members.set_my_id(user_id)
            return auth_data
        # Without channel_data the server takes the member from the sign-in.
        user = self._client.user
        await user.wait_signin_done()
        if user.user_data is None:
            raise AuthError(
                f"Invalid auth response for channel '{self.name}': expected a "
                "'channel_data' field, or the user should be signed in"
            )
        self.members.set_my_id(user.user_data["id"])
        return auth_data

    def _handle_internal_event(self, message: ServerMessage) -> None:
        if message.event == "pusher_internal:member_added":
            member = self.members.add_member(message.data)
            if member is not None:
                self.emit("pusher:member_added", member)
        elif message.event == "pusher_internal:member_removed":
            member = self.members.remove_member(message.data)
            if member is not None:
                self.emit("pusher:member_removed", member)

    def _handle_subscription_succeeded(self, data: Any) -> None:
        self.subscription_pending = False
        self.subscribed = True
        if self.subscription_cancelled:
            self._client.unsubscribe(self.name)
        else:
            self.members.on_subscription(data)
            self.emit("pusher:subscription_succeeded", self.members)

    def disconnect(self) -> None:
        self.members.reset()
        super().disconnect()
