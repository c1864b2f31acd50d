"""Signed-in users: sign-in, watchlist events and terminating a user's connections."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.errors import ErrorCode, ProtocolError
from clarion.protocol.users import check_signin
from clarion.server.adapters import Adapter
from clarion.server.connection import Connection
from clarion.server.webhooks import Webhooks
from clarion.server.websocket import OutboundMessage, frame_payload_size

__all__ = ["Users"]

logger = logging.getLogger(__name__)

TERMINATED_MESSAGE = "You got disconnected by the app"


class Users:
    """Signed-in users of this process's connections, and who watches whom."""

    def __init__(self, adapter: Adapter, webhooks: Webhooks) -> None:
        self.adapter = adapter
        self.webhooks = webhooks
        self._watchers: dict[tuple[str, str], set[Connection]] = {}
        """(app id, watched user id) to the local connections that watch the user."""

    async def signin(self, connection: Connection, data: dict[str, Any]) -> None:
        """Handle ``pusher:signin``.

        Raises:
            ProtocolError: code 4009 for a forged or malformed sign-in, or one
            for another user than the connection is already signed in as.
        """
        app = connection.app
        user = check_signin(app, connection.socket_id, data)
        current = connection.user
        if current is not None:
            if current.id != user.id:
                raise ProtocolError(
                    f"Sign-in rejected: this connection is already signed in as "
                    f"{current.id}",
                    code=ErrorCode.UNAUTHORIZED,
                )
            # The first sign-in's user data is kept, so echo that.
            connection.send_text(messages.signin_success(current.user_data))
            return

        connection.user = user
        connection.authorized = True
        first = await self.adapter.add_user(app.id, user.id, connection)
        connection.send_text(messages.signin_success(user.user_data))
        logger.debug(
            "Connection %s signed in as user %s", connection.socket_id, user.id
        )
        if user.dropped_watchlist and app.watchlist_events:
            connection.send_text(
                messages.error(
                    ErrorCode.WATCHLIST_LIMIT,
                    f"Watchlist limit exceeded: only the first {len(user.watchlist)} "
                    f"user ids are watched: {', '.join(user.watchlist)}",
                )
            )
        if first:
            self.webhooks.user_online(app, user.id)
            await self.adapter.broadcast_user_status(app.id, user.id, online=True)
        if app.watchlist_events and user.watchlist:
            await self._start_watching(connection)

    async def _start_watching(self, connection: Connection) -> None:
        assert connection.user is not None
        app_id = connection.app.id
        watchlist = connection.user.watchlist
        for watched in watchlist:
            self._watchers.setdefault((app_id, watched), set()).add(connection)
        online = await self.adapter.online_users(app_id, watchlist)
        connection.send_text(
            messages.watchlist_events(
                [user_id for user_id in watchlist if user_id in online],
                [user_id for user_id in watchlist if user_id not in online],
            )
        )

    async def signout(self, connection: Connection) -> None:
        """Forget a closed connection's user; the user goes offline with its last
        connection."""
        user = connection.user
        if user is None:
            return
        app = connection.app
        for watched in user.watchlist:
            watchers = self._watchers.get((app.id, watched))
            if watchers is not None:
                watchers.discard(connection)
                if not watchers:
                    del self._watchers[(app.id, watched)]
        if await self.adapter.remove_user(app.id, user.id, connection):
            self.webhooks.user_offline(app, user.id)
            await self.adapter.broadcast_user_status(app.id, user.id, online=False)

    def notify_watchers(self, app_id: str, user_id: str, *, online: bool) -> None:
        """Send a user's new status to this node's connections that watch it."""
        watchers = self._watchers.get((app_id, user_id))
        if not watchers:
            return
        if online:
            text = messages.watchlist_events([user_id], [])
        else:
            text = messages.watchlist_events([], [user_id])
        message = OutboundMessage(text)
        for watcher in watchers:
            watcher.send(message)
        tally = self.adapter.tally
        tally.messages_sent += len(watchers)
        tally.bytes_sent += len(watchers) * frame_payload_size(message.frame)

    async def terminate(self, app: App, user_id: str) -> None:
        """Close every connection signed in as ``user_id``, on every node, with
        4009."""
        logger.info(
            "App %s terminates the connections of user %s",
            app.id,
            user_id,
            extra={"app_id": app.id},
        )
        await self.adapter.terminate_user(app.id, user_id)

    def terminate_here(self, connections: Iterable[Connection], user_id: str) -> int:
        """Close those of ``connections`` signed in as ``user_id``; return how
        many there were."""
        closed = 0
        for connection in connections:
            if connection.user is not None and connection.user.id == user_id:
                connection.reject(ErrorCode.UNAUTHORIZED, TERMINATED_MESSAGE)
                closed += 1
        return closed
