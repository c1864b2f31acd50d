"""User sign-in, user events and the watchlist: ``client.user``.

As in pusher-js, ``signin()`` is remembered: the client signs in on every
``connected``, and after ``pusher:signin_success`` it subscribes to the user's
``#server-to-user-{id}`` channel, whose events reach ``client.user.bind()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from clarion.client.channels import Channel
from clarion.client.errors import AuthError
from clarion.client.events import EventEmitter
from clarion.protocol.client_state import ServerMessage, StateChange

if TYPE_CHECKING:
    from clarion.client.client import Client

__all__ = ["User", "Watchlist"]

logger = logging.getLogger("clarion.client")


class Watchlist(EventEmitter):
    """Emits ``online`` and ``offline`` with ``{"name": ..., "user_ids": [...]}``."""

    def handle_event(self, message: ServerMessage) -> None:
        data = message.data if isinstance(message.data, dict) else {}
        events = data.get("events")
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and isinstance(event.get("name"), str):
                self.emit(event["name"], event)


class User(EventEmitter):
    """The signed-in user: ``signin()``, ``user_data`` and user events.

    Emits ``pusher:signin_error`` (``{"type": "AuthError", "error": ...}``) when
    the user authenticator fails, and every event sent to the user through the
    HTTP API.
    """

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client
        self.signin_requested = False
        self.user_data: dict[str, Any] | None = None
        self.server_to_user_channel: Channel | None = None
        self.watchlist = Watchlist()
        self._signin_done: asyncio.Event | None = None
        connection = client.connection
        connection.bind_internal("state_change", self._on_state_change)
        connection.bind_internal("message", self._on_message)

    def signin(self) -> None:
        """Sign in now if connected, and again after every reconnect."""
        if self.signin_requested:
            return
        self.signin_requested = True
        self._signin()

    async def wait_signin_done(self, timeout: float | None = None) -> None:
        """Wait until the current sign-in succeeded or failed.

        Returns at once when no sign-in was requested. ``timeout`` defaults to
        the client's auth timeout; when it passes, this returns anyway.
        """
        done = self._signin_done
        if done is None:
            return
        wait = timeout if timeout is not None else self._client.auth_timeout
        try:
            await asyncio.wait_for(done.wait(), wait)
        except TimeoutError:
            logger.warning("Sign-in did not finish within %s s", wait)

    # -- Internals ---------------------------------------------------------

    def _on_state_change(self, change: StateChange) -> None:
        if change.previous != "connected" and change.current == "connected":
            self._signin()
        if change.previous == "connected" and change.current != "connected":
            self._cleanup()
            self._new_signin_done_if_needed()

    def _on_message(self, message: ServerMessage) -> None:
        if message.event == "pusher:signin_success":
            self._on_signin_success(message.data)
        elif message.event == "pusher_internal:watchlist_events":
            self.watchlist.handle_event(message)
        channel = self.server_to_user_channel
        if channel is not None and message.channel == channel.name:
            channel.handle_event(message)

    def _signin(self) -> None:
        if not self.signin_requested:
            return
        self._new_signin_done_if_needed()
        connection = self._client.connection
        if connection.state != "connected" or connection.socket_id is None:
            return
        self._client.start_task(self._authenticate(connection.socket_id))

    async def _authenticate(self, socket_id: str) -> None:
        try:
            auth_data = await self._client.authenticate_user(socket_id)
        except AuthError as exc:
            if self._client.connection.socket_id != socket_id:
                return
            logger.warning("Sign-in failed: %s", exc)
            error: dict[str, Any] = {"type": "AuthError", "error": str(exc)}
            if exc.status is not None:
                error["status"] = exc.status
            self.emit("pusher:signin_error", error)
            self._cleanup()
            return
        if self._client.connection.socket_id != socket_id:
            return
        self._client.send_event(
            "pusher:signin",
            {"auth": auth_data["auth"], "user_data": auth_data.get("user_data")},
        )

    def _on_signin_success(self, data: Any) -> None:
        raw = data.get("user_data") if isinstance(data, dict) else None
        try:
            user_data = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            user_data = None
        if not isinstance(user_data, dict):
            logger.error("Failed parsing user data after sign-in: %r", raw)
            self._cleanup()
            return
        user_id = user_data.get("id")
        if not isinstance(user_id, str) or not user_id:
            logger.error("user_data has no id: %r", raw)
            self._cleanup()
            return
        self.user_data = user_data
        self._resolve_signin_done()
        self._subscribe_server_to_user_channel(user_id)

    def _subscribe_server_to_user_channel(self, user_id: str) -> None:
        channel = Channel(f"#server-to-user-{user_id}", self._client)
        channel.bind_global(self._forward_user_event)
        self.server_to_user_channel = channel
        if channel.subscription_pending and channel.subscription_cancelled:
            channel.reinstate_subscription()
        elif (
            not channel.subscription_pending
            and self._client.connection.state == "connected"
        ):
            channel.subscribe()

    def _forward_user_event(self, event_name: str, data: Any) -> None:
        if not event_name.startswith(("pusher:", "pusher_internal:")):
            self.emit(event_name, data)

    def _cleanup(self) -> None:
        self.user_data = None
        channel = self.server_to_user_channel
        if channel is not None:
            channel.unbind_all()
            channel.disconnect()
            channel.end_iteration()
            self.server_to_user_channel = None
        if self.signin_requested:
            self._resolve_signin_done()

    def _new_signin_done_if_needed(self) -> None:
        if not self.signin_requested:
            return
        if self._signin_done is not None and not self._signin_done.is_set():
            return
        self._signin_done = asyncio.Event()

    def _resolve_signin_done(self) -> None:
        if self._signin_done is not None:
            self._signin_done.set()
