"""The asyncio client: :class:`Client`."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

from clarion.client.auth import (
    AUTH_TIMEOUT,
    Authorizer,
    ChannelAuthorizationRequest,
    UserAuthenticationRequest,
    resolve_authorizer,
    run_authorizer,
)
from clarion.client.channels import (
    Channel,
    EncryptedChannel,
    PresenceChannel,
    PrivateChannel,
)
from clarion.client.connection import Connection
from clarion.client.errors import AuthError, BadChannelName
from clarion.client.events import Callback, EventEmitter
from clarion.client.user import User
from clarion.protocol.client_state import ServerMessage, Timing

__all__ = ["DEFAULT_PORT", "Client"]

logger = logging.getLogger("clarion.client")

DEFAULT_PORT = 6001
"""The port ``clarion serve`` listens on by default."""


class Client:
    """A Pusher Channels client with pusher-js 8's connection behaviour.

    Create it anywhere, then call ``connect()`` from a running event loop (or
    use ``async with``). Timers are in seconds; their defaults are pusher-js's.
    ``channel_authorizer`` and ``user_authenticator`` are each an endpoint URL
    or a callable (see :mod:`clarion.client.auth`); ``auth_params`` and
    ``auth_headers`` go with every request to an endpoint URL. ``jitter``
    stretches every reconnect delay and attempt timeout by a random fraction of
    up to that much. ``ssl_context`` checks the certificate of a ``wss://``
    server; without it, ``ssl.create_default_context()`` trusts the system's CAs,
    or those in the ``SSL_CERT_FILE`` file. Only the WebSocket transport exists:
    there are no HTTP fallbacks.
    """

    def __init__(
        self,
        key: str,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        tls: bool = False,
        path: str = "",
        activity_timeout: float = 120.0,
        pong_timeout: float = 30.0,
        unavailable_timeout: float = 10.0,
        attempt_timeout: float = 15.0,
        max_attempt_timeout: float = 60.0,
        retry_delay: float = 1.0,
        jitter: float = 0.0,
        channel_authorizer: str | Authorizer | None = None,
        user_authenticator: str | Authorizer | None = None,
        auth_params: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        auth_timeout: float = AUTH_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if not key:
            raise ValueError("key must be the app key, a non-empty string")

        timing = Timing(
            activity_timeout=activity_timeout,
            pong_timeout=pong_timeout,
            unavailable_timeout=unavailable_timeout,
            attempt_timeout=attempt_timeout,
            max_attempt_timeout=max_attempt_timeout,
            retry_delay=retry_delay,
            jitter=jitter,
        )
        self.key = key
        self.auth_timeout = auth_timeout
        self.connection = Connection(
            key,
            host=host,
            port=port,
            tls=tls,
            path=path,
            timing=timing,
            ssl_context=ssl_context,
            rng=rng,
        )

        self._channel_authorizer = resolve_authorizer(
            channel_authorizer, params=auth_params, headers=auth_headers
        )
        self._user_authenticator = resolve_authorizer(
            user_authenticator, params=auth_params, headers=auth_headers
        )

        self._channels: dict[str, Channel] = {}
        self._global = EventEmitter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connection.bind_internal("connected", self._on_connected)
        self.connection.bind_internal("message", self._on_message)
        self.connection.bind_internal("connecting", self._on_connection_lost)
        self.connection.bind_internal("disconnected", self._on_connection_lost)
        self.user = User(self)

    def __repr__(self) -> str:
        return f"<Client key={self.key!r} state={self.connection.state}>"

    # -- Connection ----------------------------------------------------------

    def connect(self) -> None:
        """Start connecting; the connection then reconnects by itself."""
        self.connection.connect()

    def disconnect(self) -> None:
        """Close the connection; channels are kept for the next ``connect()``."""
        self.connection.disconnect()

    async def aclose(self) -> None:
        """Disconnect, cancel auth requests in flight and wait for the socket."""
        self.disconnect()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        await self.connection.wait_closed()

    async def __aenter__(self) -> Client:
        self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def send_event(self, event: str, data: Any, channel: str | None = None) -> bool:
        """Send a raw frame; return False when not connected."""
        return self.connection.send_event(event, data, channel)

    # -- Channels ------------------------------------------------------------

    def subscribe(self, channel_name: str) -> Channel:
        """Return the channel, subscribing now if connected or else on connect.

        The type follows the name: ``private-encrypted-`` gives an
        :class:`EncryptedChannel`, ``private-`` a :class:`PrivateChannel`,
        ``presence-`` a :class:`PresenceChannel`, anything else a public
        :class:`Channel`.

        Raises:
            BadChannelName: the name is empty or starts with ``#``.
        """
        channel = self._channels.get(channel_name)
        if channel is None:
            channel = self._create_channel(channel_name)
            self._channels[channel_name] = channel
        if channel.subscription_pending and channel.subscription_cancelled:
            channel.reinstate_subscription()
        elif not channel.subscription_pending and self.connection.state == "connected":
            channel.subscribe()
        return channel

    def unsubscribe(self, channel_name: str) -> None:
        """Leave the channel; a pending subscription is cancelled when it succeeds."""
        channel = self._channels.get(channel_name)
        if channel is not None and channel.subscription_pending:
            channel.cancel_subscription()
            return
        channel = self._channels.pop(channel_name, None)
        if channel is None:
            return
        if channel.subscribed:
            channel.unsubscribe()
        channel.end_iteration()

    def channel(self, channel_name: str) -> Channel | None:
        return self._channels.get(channel_name)

    def all_channels(self) -> list[Channel]:
        return list(self._channels.values())

    def _create_channel(self, name: str) -> Channel:
        if not name:
            raise BadChannelName("A channel name must not be empty")
        if name.startswith("private-encrypted-"):
            return EncryptedChannel(name, self)
        if name.startswith("private-"):
            return PrivateChannel(name, self)
        if name.startswith("presence-"):
            return PresenceChannel(name, self)
        if name.startswith("#"):
            raise BadChannelName(f'Cannot create a channel with name "{name}".')
        return Channel(name, self)

    # -- Events from every channel ------------------------------------------

    def bind(self, event_name: str, callback: Callback) -> Client:
        """Call ``callback(data)`` for ``event_name`` on any channel."""
        self._global.bind(event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> Client:
        self._global.unbind(event_name, callback)
        return self

    def bind_global(self, callback: Callback) -> Client:
        """Call ``callback(event_name, data)`` for every event that is not internal."""
        self._global.bind_global(callback)
        return self

    def unbind_global(self, callback: Callback | None = None) -> Client:
        self._global.unbind_global(callback)
        return self

    def unbind_all(self) -> Client:
        self._global.unbind_all()
        return self

    # -- Users ---------------------------------------------------------------

    def signin(self) -> None:
        """Sign the user in with the user authenticator, now and after reconnects."""
        self.user.signin()

    # -- Used by channels and the user ---------------------------------------

    def start_task(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finish_task)

    def _finish_task(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Client task failed", exc_info=task.exception())

    async def authorize_channel(
        self, socket_id: str, channel_name: str
    ) -> dict[str, Any]:
        request = ChannelAuthorizationRequest(socket_id, channel_name)
        return await run_authorizer(
            self._channel_authorizer, request, self.auth_timeout
        )

    async def authenticate_user(self, socket_id: str) -> dict[str, Any]:
        request = UserAuthenticationRequest(socket_id)
        auth_data = await run_authorizer(
            self._user_authenticator, request, self.auth_timeout
        )
        if not isinstance(auth_data.get("user_data"), str):
            raise AuthError("The user authenticator's response has no user_data string")
        return auth_data

    # -- Connection events -----------------------------------------------------

    def _on_connected(self) -> None:
        for name in list(self._channels):
            self.subscribe(name)

    def _on_connection_lost(self) -> None:
        for channel in list(self._channels.values()):
            channel.disconnect()

    def _on_message(self, message: ServerMessage) -> None:
        if message.channel is not None:
            channel = self._channels.get(message.channel)
            if channel is not None:
                channel.handle_event(message)
        if not message.event.startswith("pusher_internal:"):
            self._global.emit(message.event, message.data)
