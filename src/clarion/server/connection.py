"""A Pusher connection, whatever carries it: its subscriptions, user, liveness
and the order in which its messages are handled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, ClassVar

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.presence import Member
from clarion.protocol.subscriptions import ClientEventRate
from clarion.protocol.users import User
from clarion.server.websocket import OutboundMessage, frame_payload_size

if TYPE_CHECKING:
    from clarion.server.hub import Hub

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

MAX_LOGGED_ERRORS = 10
"""Errors logged at INFO per connection; later ones go to DEBUG."""


class Connection:
    """One Pusher connection, in the terms the hub uses.

    Subclasses carry it over a WebSocket or an HTTP session: they implement
    ``send``, ``flush`` and ``close``, and hand each complete text message from
    the peer to ``_queue_text``.
    """

    __slots__ = (
        "_closing",
        "_errors_logged",
        "_inbox",
        "_rate",
        "app",
        "authorized",
        "hub",
        "last_received",
        "opened_at",
        "ping_sent_at",
        "socket_id",
        "subscriptions",
        "user",
    )

    transport_name: ClassVar[str]
    """``websocket`` or ``http``, as the metrics label connections."""

    def __init__(self, hub: Hub, app: App, socket_id: str) -> None:
        self.hub = hub
        self.app = app
        self.socket_id = socket_id
        self.subscriptions: dict[str, Member | None] = {}
        """Channel name to its presence member (``None`` for other channels)."""
        self.user: User | None = None
        """The signed-in user, after a successful ``pusher:signin``."""
        self.authorized = False
        """Signed in, or subscribed to a channel that needs authorization."""
        self.opened_at = self.last_received = time.monotonic()
        self.ping_sent_at = 0.0
        """Monotonic time of the server's unanswered ping, or 0."""
        self._inbox: deque[str] | None = None
        self._rate: ClientEventRate | None = None
        self._closing = False
        self._errors_logged = 0

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or closed; nothing more is sent."""
        return self._closing

    # Sending, implemented by each transport

    def send(self, message: OutboundMessage) -> None:
        """Queue ``message`` for the peer without blocking."""
        raise NotImplementedError

    def flush(self) -> None:
        """Write what ``send`` queued; the hub calls it once per event-loop pass."""
        raise NotImplementedError

    def close(self, code: int, reason: str = "") -> None:
        """Close the connection with ``code``; the hub cleans up once it is gone."""
        raise NotImplementedError

    def send_text(self, text: str) -> None:
        if self._closing:
            return
        message = OutboundMessage(text)
        tally = self.hub.tally
        tally.messages_sent += 1
        tally.bytes_sent += frame_payload_size(message.frame)
        self.send(message)

    def reject(self, code: int, message: str) -> None:
        """Report ``pusher:error`` with ``code``, then close with the same code."""
        self.send_text(messages.error(code, message))
        self.close(code, message)

    def log_error(self, text: str, *args: object) -> None:
        """Log a peer's mistake with its ids, at INFO for the first few, then DEBUG."""
        self._errors_logged += 1
        level = (
            logging.INFO if self._errors_logged <= MAX_LOGGED_ERRORS else logging.DEBUG
        )
        logger.log(
            level,
            f"[app %s, socket %s] {text}",
            self.app.id,
            self.socket_id,
            *args,
            extra={"app_id": self.app.id, "socket_id": self.socket_id},
        )

    def check_client_event_rate(self, channel: str | None) -> None:
        if self._rate is None:
            self._rate = ClientEventRate()
        self._rate.check(time.monotonic(), self.app.limits.client_event_rate, channel)

    # Receiving

    def _queue_text(self, text: str, size: int) -> None:
        """Queue a message of ``size`` UTF-8 bytes from the peer for the hub."""
        tally = self.hub.tally
        tally.messages_received += 1
        tally.bytes_received += size
        # Messages are handled one at a time, in order, because a subscribe may
        # wait on the adapter while the client event after it must see its result.
        if self._inbox is not None:
            self._inbox.append(text)
            return
        self._inbox = deque((text,))
        asyncio.get_running_loop().create_task(self._drain_inbox())

    async def _drain_inbox(self) -> None:
        inbox = self._inbox
        try:
            while inbox and not self._closing:
                await self.hub.receive_text(self, inbox.popleft())
        finally:
            self._inbox = None
