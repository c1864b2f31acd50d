"""The Pusher protocol over open connections: admission, subscriptions, presence,
client events, publishing and liveness."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from clarion.protocol import messages
from clarion.protocol.api import EventRequest
from clarion.protocol.apps import App
from clarion.protocol.channels import ChannelKind, classify, is_cache_channel
from clarion.protocol.errors import (
    ConnectionRejected,
    ErrorCode,
    ProtocolError,
    SubscriptionError,
    shorten,
)
from clarion.protocol.handshake import check_connection_quota, new_socket_id
from clarion.protocol.messages import ClientMessage, parse_client_message
from clarion.protocol.subscriptions import check_client_event, check_subscribe
from clarion.server.adapters import Adapter, CacheMiss
from clarion.server.apps import AppChanges, AppRegistry
from clarion.server.config import DEV_APP, DEV_APP_WARNING, Settings
from clarion.server.connection import Connection
from clarion.server.counts import SubscriptionCounts
from clarion.server.drain import close_connections, drain
from clarion.server.health import NodeHealth
from clarion.server.limits import LimitCounter, LocalLimitCounter, Rejections
from clarion.server.monitor import Monitor
from clarion.server.users import Users
from clarion.server.webhooks import Webhooks
from clarion.server.websocket import OutboundMessage

__all__ = ["Hub"]

logger = logging.getLogger(__name__)

ConnectionT = TypeVar("ConnectionT", bound=Connection)


class Hub:
    """Every open connection of this process, and what they do to channel state."""

    def __init__(
        self,
        settings: Settings,
        apps: AppRegistry,
        adapter: Adapter,
        webhooks: Webhooks | None = None,
        limits: LimitCounter | None = None,
    ) -> None:
        self.settings = settings
        self.apps = apps
        self.adapter = adapter
        self.connections: dict[str, Connection] = {}
        self._connections_per_app: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.unflushed: list[Connection] = []
        """Connections with queued frames, written by the next flush."""
        self.flush_scheduled = False
        self._flush_scheduled_at = 0.0
        self.tally = adapter.tally
        self.limits = limits or LocalLimitCounter()
        """Counts behind the per-app limits, cluster wide with Redis."""
        self.rejections = Rejections(self.tally)
        self.health = NodeHealth(settings)
        self.monitor = Monitor()
        self.webhooks = webhooks or Webhooks(settings, apps)
        self.webhooks.monitor = self.monitor
        self.webhooks.claim_held = adapter.claim_held_webhook
        self.users = Users(adapter, self.webhooks)
        self.counts = SubscriptionCounts(adapter, self.spawn, self.webhooks)

    # Lifecycle

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())
        self.health.start()
        self.adapter.start(self)
        self.limits.start(self._connections_per_app)
        self.webhooks.start()

    async def stop(
        self, drain_seconds: float = 0, hurry: asyncio.Event | None = None
    ) -> None:
        """Close every connection with 4200 (reconnect now), spread over
        ``drain_seconds`` (see ``drain``), wait for their channels and members
        to be cleaned up, then flush the webhooks. Setting ``hurry`` closes the
        remaining connections at once and ends the last webhook attempt."""
        self.health.draining = True
        hurry = hurry or asyncio.Event()
        await drain(list(self.connections.values()), drain_seconds, hurry)
        self.health.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.counts.close()
        close_connections(list(self.connections.values()))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.webhooks.stop(self.settings.drain_webhook_seconds, hurry)
        await self.limits.close()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` as a task that the hub keeps until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule_flush(self) -> None:
        """Have the connections in ``unflushed`` written in the next pass of the
        event loop; a connection with queued frames calls this when no flush is
        scheduled yet."""
        self.flush_scheduled = True
        self._flush_scheduled_at = time.perf_counter()
        asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        connections = self.unflushed
        self.unflushed = []
        self.flush_scheduled = False
        for connection in connections:
            connection.flush()
        if self.tally.published:
            self.tally.record_flush(self._flush_scheduled_at)

    # Connections

    def open_connection(
        self, app: App, create: Callable[[str], ConnectionT]
    ) -> ConnectionT:
        """Admit a peer whose app and protocol version passed the checks.

        ``create`` builds the transport's connection object for a new
        ``socket_id``; the hub then sends it ``pusher:connection_established``.

        With Redis, the quota counts the app's connections on every node, as
        last exchanged (see ``RedisLimitCounter``).

        Raises:
            ConnectionRejected: 4004 when the app is at its connection quota,
            4100 when this process is over capacity (see ``NodeHealth``).
        """
        open_connections = self._connections_per_app.get(app.id, 0)
        if app.limits.max_connections:
            open_connections += self.limits.connections_elsewhere(app.id)
        try:
            check_connection_quota(app, open_connections)
        except ConnectionRejected as exc:
            self.rejections.record(app.id, "max_connections", exc.message)
            raise
        self.health.check_capacity(len(self.connections))
        socket_id = new_socket_id()
        while socket_id in self.connections:
            socket_id = new_socket_id()
        connection = create(socket_id)
        self.connections[socket_id] = connection
        self._connections_per_app[app.id] = self._connections_per_app.get(app.id, 0) + 1
        self.tally.connections_opened[connection.transport_name] += 1
        connection.send_text(
            messages.connection_established(socket_id, self.settings.activity_timeout)
        )
        logger.debug(
            "Connection %s opened for app %s",
            socket_id,
            app.id,
            extra={"app_id": app.id, "socket_id": socket_id},
        )
        self.monitor.record(
            app.id,
            "connection_opened",
            socket_id=socket_id,
            transport=type(connection).__name__,
        )
        return connection

    def apps_changed(self, changes: AppChanges) -> None:
        """Apply a refresh of the apps to open connections.

        Connections of a removed app close with 4001 and those of a disabled
        app with 4003, as new ones would be rejected. The others take the new
        values of their app, such as a rotated secret or new limits.
        """
        removed = {app.id for app in changes.removed}
        updated = {app.id: app for app in changes.updated}
        for app in changes.removed:
            if app == DEV_APP:
                logger.warning(
                    "The development app is no longer served: the app store has "
                    "apps now. Its %d connection(s) close with 4001",
                    self.connection_count(app.id),
                    extra={"app_id": app.id},
                )
                continue
            logger.info("App %s is no longer served", app.id, extra={"app_id": app.id})
        for app in changes.added:
            logger.info(
                "Serving app %s (key %s)", app.id, app.key, extra={"app_id": app.id}
            )
            if app == DEV_APP:
                # Back because the last app of the store was deleted.
                logger.warning(DEV_APP_WARNING)
        for app in changes.updated:
            logger.info("App %s changed", app.id, extra={"app_id": app.id})
        for connection in list(self.connections.values()):
            app_id = connection.app.id
            if app_id in removed:
                connection.reject(
                    ErrorCode.APP_NOT_FOUND, f"App {app_id} is no longer served"
                )
            elif app_id in updated:
                connection.app = updated[app_id]
                if not connection.app.enabled:
                    connection.reject(ErrorCode.APP_DISABLED, "Application disabled")

    def connection_count(self, app_id: str) -> int:
        """Return how many connections of ``app_id`` this process has open."""
        return self._connections_per_app.get(app_id, 0)

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
        self.tally.connections_closed[connection.transport_name] += 1
        logger.debug(
            "Connection %s closed for app %s",
            connection.socket_id,
            app_id,
            extra={"app_id": app_id, "socket_id": connection.socket_id},
        )
        self.monitor.record(app_id, "connection_closed", socket_id=connection.socket_id)
        if connection.subscriptions or connection.user is not None:
            self.spawn(self._clean_up(connection))

    async def _clean_up(self, connection: Connection) -> None:
        for channel in list(connection.subscriptions):
            await self.unsubscribe(connection, channel)
        await self.users.signout(connection)

    # Inbound messages

    async def receive_text(self, connection: Connection, text: str) -> None:
        """Handle one text message from ``connection``, reporting errors to it."""
        try:
            message = parse_client_message(text)
            await self._dispatch(connection, message)
        except ProtocolError as exc:
            if exc.code == ErrorCode.CLIENT_EVENT_RATE_LIMIT:
                self.rejections.record(
                    connection.app.id,
                    "client_event_rate",
                    exc.message,
                    connection.socket_id,
                )
            else:
                connection.log_error("Rejected message: %s", exc.message)
            self.monitor.record(
                connection.app.id,
                "error",
                socket_id=connection.socket_id,
                code=exc.code,
                message=exc.message,
                channel=exc.channel,
            )
            connection.send_text(messages.error(exc.code, exc.message, exc.channel))
        except ConnectionRejected as exc:
            connection.log_error("Closing connection: %s", exc.message)
            connection.reject(exc.code, exc.message)
        except Exception:
            # A bug of ours: report it, keep this connection and every other one.
            logger.exception(
                "Unhandled error on message from connection %s of app %s",
                connection.socket_id,
                connection.app.id,
                extra={"app_id": connection.app.id, "socket_id": connection.socket_id},
            )
            connection.send_text(messages.error(None, "Internal server error"))

    async def _dispatch(self, connection: Connection, message: ClientMessage) -> None:
        event = message.event
        if event == "pusher:ping":
            connection.send_text(messages.PONG)
        elif event == "pusher:pong":
            pass
        elif event == "pusher:subscribe":
            await self.subscribe(connection, message.data)
        elif event == "pusher:signin":
            await self.users.signin(connection, message.data)
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
            raise ProtocolError(
                f"Unsupported event received on socket: {shorten(event)}"
            )

    # Subscriptions

    async def subscribe(self, connection: Connection, data: dict[str, Any]) -> None:
        """Handle ``pusher:subscribe``; a refusal goes to the connection as
        ``pusher:subscription_error`` and leaves it open."""
        try:
            await self._subscribe(connection, data)
        except SubscriptionError as exc:
            # check_subscribe raises ProtocolError when 'channel' is not a string.
            channel = str(data.get("channel"))
            if exc.error_type == "LimitReached":
                self.rejections.record(
                    connection.app.id,
                    exc.limit or exc.error_type,
                    f"subscription to {channel} rejected: {exc.message}",
                    connection.socket_id,
                )
            else:
                connection.log_error(
                    "Subscription to %s rejected: %s", channel, exc.message
                )
            self.monitor.record(
                connection.app.id,
                "error",
                socket_id=connection.socket_id,
                code=exc.status,
                message=exc.message,
                channel=channel,
            )
            connection.send_text(
                messages.subscription_error(
                    channel, exc.error_type, exc.message, exc.status
                )
            )

    async def _subscribe(self, connection: Connection, data: dict[str, Any]) -> None:
        app = connection.app
        request = check_subscribe(app, connection.socket_id, data, connection.user)
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
        self.tally.subscriptions[request.kind.value] += 1
        if request.kind.needs_auth:
            connection.authorized = True
        connection.send_text(messages.subscription_succeeded(channel, result.roster))
        if result.occupied:
            self.webhooks.channel_occupied(
                app, channel, cancelled_vacated=result.cancelled_vacated
            )
        if is_cache_channel(channel):
            await self._send_cached_event(connection, channel)
        if result.member_added and request.member is not None:
            member = request.member
            self.webhooks.member_added(
                app,
                channel,
                member.user_id,
                cancelled_removed=result.cancelled_removed,
            )
            added = messages.member_added(channel, member.user_id, member.user_info)
            await self.adapter.publish(
                app.id, channel, OutboundMessage(added), connection.socket_id
            )
        await self.counts.changed(app, channel)
        logger.debug("Connection %s subscribed to %s", connection.socket_id, channel)
        self.monitor.record(
            app.id,
            "subscribed",
            socket_id=connection.socket_id,
            channel=channel,
            user_id=request.member.user_id if request.member else None,
        )

    async def _send_cached_event(self, connection: Connection, channel: str) -> None:
        app = connection.app
        cached = await self.adapter.get_cache_or_miss(
            app.id, channel, record_miss=self.webhooks.wants(app, "cache_miss")
        )
        if isinstance(cached, CacheMiss):
            connection.send_text(messages.cache_miss(channel))
            if cached.first:
                self.webhooks.cache_miss(app, channel)
        else:
            connection.send_text(
                messages.channel_event(cached.event, channel, cached.data)
            )

    async def unsubscribe(self, connection: Connection, channel: str) -> None:
        if channel not in connection.subscriptions:
            return
        del connection.subscriptions[channel]
        self.tally.subscriptions[classify(channel).value] -= 1
        app = connection.app
        app_id = app.id
        result = await self.adapter.remove_subscription(
            app_id,
            channel,
            connection,
            hold_vacated=self.webhooks.holds(app, channel, "channel_vacated"),
            hold_removed=self.webhooks.holds(app, channel, "member_removed"),
        )
        if result.removed_user_id is not None:
            removed = messages.member_removed(channel, result.removed_user_id)
            await self.adapter.publish(app_id, channel, OutboundMessage(removed))
            self.webhooks.member_removed(
                app, channel, result.removed_user_id, held=result.held
            )
        if result.vacated:
            self.webhooks.channel_vacated(app, channel, held=result.held)
        await self.counts.changed(connection.app, channel)
        logger.debug(
            "Connection %s unsubscribed from %s", connection.socket_id, channel
        )
        self.monitor.record(
            app_id, "unsubscribed", socket_id=connection.socket_id, channel=channel
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
        self.webhooks.client_event(
            app, channel, message.event, data, connection.socket_id, user_id
        )
        self.monitor.record(
            app.id,
            "client_event",
            socket_id=connection.socket_id,
            channel=channel,
            event=message.event,
            data=data,
        )

    async def publish(self, app: App, request: EventRequest) -> None:
        """Deliver an HTTP API event to each of its channels."""
        for channel in request.channels:
            text = messages.channel_event(request.name, channel, request.data)
            await self.adapter.publish(
                app.id, channel, OutboundMessage(text), request.socket_id
            )
            self.monitor.record(
                app.id,
                "api_event",
                channel=channel,
                event=request.name,
                data=request.data,
            )
            if is_cache_channel(channel):
                await self.adapter.set_cache(
                    app.id, channel, request.name, request.data, app.limits.cache_ttl
                )

    # Events from the cluster

    async def member_left(self, app_id: str, channel: str, user_id: str) -> None:
        app = self.apps.find_by_id(app_id)
        if app is None:
            return
        # The adapter sent member_removed to the clients, and held the webhook,
        # when it removed the dead node's share.
        self.webhooks.member_removed(app, channel, user_id, held=True)

    async def member_rejoined(
        self, app_id: str, channel: str, user_id: str, user_info: object
    ) -> None:
        added = messages.member_added(channel, user_id, user_info)
        await self.adapter.publish(app_id, channel, OutboundMessage(added))

    async def subscription_count_changed(self, app_id: str, channel: str) -> None:
        app = self.apps.find_by_id(app_id)
        if app is not None:
            await self.counts.changed(app, channel)

    def channel_vacated(self, app_id: str, channel: str) -> None:
        app = self.apps.find_by_id(app_id)
        if app is not None:
            self.webhooks.channel_vacated(app, channel, held=True)

    def held_webhook_overdue(
        self, app_id: str, channel: str, user_id: str | None
    ) -> None:
        app = self.apps.find_by_id(app_id)
        if app is not None:
            self.webhooks.send_overdue(app, channel, user_id)

    async def user_left(self, app_id: str, user_id: str) -> None:
        app = self.apps.find_by_id(app_id)
        if app is not None:
            self.webhooks.user_offline(app, user_id)
        await self.adapter.broadcast_user_status(app_id, user_id, online=False)

    def user_status(self, app_id: str, user_id: str, online: bool) -> None:
        self.users.notify_watchers(app_id, user_id, online=online)

    def terminate_user(self, app_id: str, user_id: str) -> None:
        connections = [c for c in self.connections.values() if c.app.id == app_id]
        closed = self.users.terminate_here(connections, user_id)
        if closed:
            logger.info(
                "Closed %d connection(s) of user %s of app %s",
                closed,
                user_id,
                app_id,
                extra={"app_id": app_id},
            )

    # Liveness

    async def _sweep_idle(self) -> None:
        """Ping connections silent for ``activity_timeout`` and close those that
        then stay silent for ``pong_timeout`` with 4201."""
        activity_timeout = self.settings.activity_timeout
        pong_timeout = self.settings.pong_timeout
        while True:
            # Recomputed each pass, because apps of the app store come and go.
            timeouts = [activity_timeout, pong_timeout] + [
                app.limits.authorization_timeout
                for app in self.apps.all()
                if app.authorized_connections
            ]
            interval = max(0.1, min(5.0, *(timeout / 4 for timeout in timeouts)))
            await asyncio.sleep(interval)
            now = time.monotonic()
            for connection in list(self.connections.values()):
                if connection.closing:
                    continue
                if self._is_unauthorized_too_long(connection, now):
                    connection.log_error("Not authorized within timeout, closing")
                    connection.reject(
                        ErrorCode.UNAUTHORIZED,
                        "Connection not authorized within timeout",
                    )
                elif connection.ping_sent_at:
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

    @staticmethod
    def _is_unauthorized_too_long(connection: Connection, now: float) -> bool:
        app = connection.app
        return (
            app.authorized_connections
            and not connection.authorized
            and now - connection.opened_at >= app.limits.authorization_timeout
        )
