"""The Pusher protocol over open connections: admission, subscriptions, presence,
client events, publishing and liveness."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from clarion.protocol import messages
from clarion.protocol.api import EventRequest
from clarion.protocol.apps import App
from clarion.protocol.channels import ChannelKind
from clarion.protocol.errors import (
    ConnectionRejected,
    ErrorCode,
    ProtocolError,
    SubscriptionError,
)
from clarion.protocol.handshake import check_connection_quota, new_socket_id
from clarion.protocol.messages import ClientMessage, parse_client_message
from clarion.protocol.subscriptions import check_client_event, check_subscribe
from clarion.server.adapters import Adapter
from clarion.server.apps import AppRegistry
from clarion.server.config import Settings
from clarion.server.connection import Connection
from clarion.server.websocket import OutboundMessage

__all__ = ["Hub"]

logger = logging.getLogger(__name__)


class Hub:
    """Every open connection of this process, and what they do to channel state."""

    def __init__(self, settings: Settings, apps: AppRegistry, adapter: Adapter) -> None:
        self.settings = settings
        self.apps = apps
        self.adapter = adapter
        self.connections: dict[str, Connection] = {}
        self._connections_per_app: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # Lifecycle

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())

    async def stop(self) -> None:
        """Close every connection with 4200 (reconnect now) and wait for cleanup."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections.values()):
            connection.reject(ErrorCode.RECONNECT, "Server is shutting down")
        for connection in list(self.connections.values()):
            self.remove_connection(connection)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task that the hub keeps until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Connections

    def open_connection(self, app: App, transport: asyncio.Transport) -> Connection:
        """Admit a WebSocket peer whose app and protocol version passed the checks.

        Raises:
            ConnectionRejected: 4004 when the app is at its connection quota.
        """
        check_connection_quota(app, self._connections_per_app.get(app.id, 0))
        socket_id = new_socket_id()
        while socket_id in self.connections:
            socket_id = new_socket_id()
        connection = Connection(self, app, socket_id, transport)
        self.connections[socket_id] = connection
        self._connections_per_app[app.id] = self._connections_per_app.get(app.id, 0) + 1
        connection.send_text(
            messages.connection_established(socket_id, self.settings.activity_timeout)
        )
        logger.debug("Connection %s opened for app %s", socket_id, app.id)
        return connection

    def remove_connection(self, connection: Connection) -> None:
        """Forget a closed connection and leave each of its channels."""
        if self.connections.pop(connection.socket_id, None) is None:
            return
        app_id = connection.app.id
        remaining = self._connections_per_app.get(app_id, 1) - 1
        if remaining:
            self._connections_per_app[app_id] = remaining
        else:
            self._connections_per_app.pop(app_id, None)
        logger.debug("Connection %s closed for app %s", connection.socket_id, app_id)
        if connection.subscriptions:
            self.spawn(self._leave_all(connection))

    async def _leave_all(self, connection: Connection) -> None:
        for channel in list(connection.subscriptions):
            await self.unsubscribe(connection, channel)

    # Inbound messages

    async def receive_text(self, connection: Connection, text: str) -> None:
        """Handle one text message from ``connection``, reporting errors to it."""
        try:
            message = parse_client_message(text)
            await self._dispatch(connection, message)
        except ProtocolError as exc:
            connection.log_error("Rejected message: %s", exc.message)
            connection.send_text(messages.error(exc.code, exc.message, exc.channel))
        except ConnectionRejected as exc:
            connection.log_error("Closing connection: %s", exc.message)
            connection.reject(exc.code, exc.message)

    async def _dispatch(self, connection: Connection, message: ClientMessage) -> None:
        event = message.event
        if event == "pusher:ping":
            connection.send_text(messages.PONG)
        elif event == "pusher:pong":
            pass
        elif event == "pusher:subscribe":
            await self.subscribe(connection, message.data)
        elif event == "pusher:unsubscribe":
            channel = message.data.get("channel")
            if not isinstance(channel, str):
                raise ProtocolError(
                    "Invalid unsubscribe request: 'channel' must be a string"
                )
            await self.unsubscribe(connection, channel)
        elif event.startswith("client-"):
            await self.forward_client_event(connection, message)
        else:
            raise ProtocolError(f"Unsupported event received on socket: {event}")

    # Subscriptions

    async def subscribe(self, connection: Connection, data: dict[str, Any]) -> None:
        """Handle ``pusher:subscribe``; a refusal goes to the connection as
        ``pusher:subscription_error`` and leaves it open."""
        try:
            await self._subscribe(connection, data)
        except SubscriptionError as exc:
            # check_subscribe raises ProtocolError when 'channel' is not a string.
            channel = str(data.get("channel"))
            connection.log_error("Subscription to %s refused: %s", channel, exc.message)
            connection.send_text(
                messages.subscription_error(
                    channel, exc.error_type, exc.message, exc.status
                )
            )

    async def _subscribe(self, connection: Connection, data: dict[str, Any]) -> None:
        app = connection.app
        request = check_subscribe(app, connection.socket_id, data)
        channel = request.channel
        if channel in connection.subscriptions:
            # Subscribing twice changes nothing but confirms again.
            roster = None
            if request.kind is ChannelKind.PRESENCE:
                roster = dict(await self.adapter.members(app.id, channel))
            connection.send_text(messages.subscription_succeeded(channel, roster))
            return

        result = await self.adapter.add_subscription(
            app.id, channel, connection, request.member, app.limits.max_presence_members
        )
        connection.subscriptions[channel] = request.member
        connection.send_text(messages.subscription_succeeded(channel, result.roster))
        if result.member_added and request.member is not None:
            member = request.member
            added = messages.member_added(channel, member.user_id, member.user_info)
            await self.adapter.publish(
                app.id, channel, OutboundMessage(added), connection.socket_id
            )
        logger.debug("Connection %s subscribed to %s", connection.socket_id, channel)

    async def unsubscribe(self, connection: Connection, channel: str) -> None:
        if channel not in connection.subscriptions:
            return
        del connection.subscriptions[channel]
        app_id = connection.app.id
        result = await self.adapter.remove_subscription(app_id, channel, connection)
        if result.removed_user_id is not None:
            removed = messages.member_removed(channel, result.removed_user_id)
            await self.adapter.publish(app_id, channel, OutboundMessage(removed))
        logger.debug(
            "Connection %s unsubscribed from %s", connection.socket_id, channel
        )

    # Events

    async def forward_client_event(
        self, connection: Connection, message: ClientMessage
    ) -> None:
        app = connection.app
        subscribed = message.channel in connection.subscriptions
        channel, data = check_client_event(app, message, subscribed)
        connection.check_client_event_rate(channel)
        member = connection.subscriptions[channel]
        user_id = member.user_id if member is not None else None
        text = messages.channel_event(message.event, channel, data, user_id)
        await self.adapter.publish(
            app.id, channel, OutboundMessage(text), connection.socket_id
        )

    async def publish(self, app: App, request: EventRequest) -> None:
        """Deliver an HTTP API event to each of its channels."""
        for channel in request.channels:
            text = messages.channel_event(request.name, channel, request.data)
            await self.adapter.publish(
                app.id, channel, OutboundMessage(text), request.socket_id
            )

    # Liveness

    async def _sweep_idle(self) -> None:
        """Ping connections silent for ``activity_timeout`` and close those that
        then stay silent for ``pong_timeout`` with 4201."""
        activity_timeout = self.settings.activity_timeout
        pong_timeout = self.settings.pong_timeout
        interval = max(0.1, min(5.0, activity_timeout / 4, pong_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections.values()):
                if connection.ping_sent_at:
                    if now - connection.ping_sent_at >= pong_timeout:
                        connection.log_error(
                            "No pong within %d s, closing", pong_timeout
                        )
                        connection.reject(
                            ErrorCode.PONG_NOT_RECEIVED, "Pong reply not received"
                        )
                elif now - connection.last_received >= activity_timeout:
                    connection.ping_sent_at = now
                    connection.send_text(messages.PING)
