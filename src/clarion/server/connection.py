"""One WebSocket peer after the upgrade: frame I/O, liveness and its subscriptions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.presence import Member
from clarion.protocol.subscriptions import ClientEventRate
from clarion.protocol.users import User
from clarion.server.websocket import (
    CLOSE_PROTOCOL_ERROR,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    OutboundMessage,
    encode_close,
    encode_frame,
    frame_size,
    read_frames,
)

if TYPE_CHECKING:
    from clarion.server.hub import Hub

__all__ = ["Connection"]

logger = logging.getLogger(__name__)

CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY_VIOLATION = 1008
MAX_FRAGMENTS = 1024
"""Frames one message may be split into; Pusher clients never fragment."""
LARGE_FRAME_BYTES = 4096
"""Partial frames over this size are collected in pieces rather than copied."""
CLOSE_HANDSHAKE_GRACE = 2.0
"""Seconds to wait for the peer's close frame after sending ours."""
WRITE_BUFFER_HIGH_WATER = 4 * 1024 * 1024
"""Bytes queued for a peer before it counts as too slow and is dropped."""
MAX_LOGGED_ERRORS = 10
"""Errors logged at INFO per connection; later ones go to DEBUG."""


class Connection(asyncio.Protocol):
    """A WebSocket connection speaking the Pusher protocol.

    Frames are parsed in ``data_received``; each complete text message goes to
    the hub in arrival order. Outbound messages are written straight to the
    transport, with no task and no encoding per connection.
    """

    __slots__ = (
        "_buffer",
        "_closing",
        "_errors_logged",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "_missing",
        "_inbox",
        "_pending",
        "_rate",
        "app",
        "authorized",
        "hub",
        "last_received",
        "opened_at",
        "ping_sent_at",
        "socket_id",
        "subscriptions",
        "transport",
        "user",
    )

    def __init__(
        self, hub: Hub, app: App, socket_id: str, transport: asyncio.Transport
    ) -> None:
        self.hub = hub
        self.app = app
        self.socket_id = socket_id
        self.transport = transport
        self.subscriptions: dict[str, Member | None] = {}
        """Channel name to its presence member (``None`` for other channels)."""
        self.user: User | None = None
        """The signed-in user, after a successful ``pusher:signin``."""
        self.authorized = False
        """Signed in, or subscribed to a channel that needs authorization."""
        self.opened_at = self.last_received = time.monotonic()
        self.ping_sent_at = 0.0
        """Monotonic time of the server's unanswered ping, or 0."""
        self._buffer: bytes | list[bytes] = b""
        """Bytes of an incomplete frame, or the pieces of a large one."""
        self._missing = 0
        """Bytes still to arrive before the large frame in ``_buffer`` is whole."""
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self._fragment_opcode = 0
        self._inbox: deque[str] | None = None
        self._pending: bytes | list[bytes] | None = None
        """Frames queued since the last flush: one ``bytes`` or a list of them."""
        self._rate: ClientEventRate | None = None
        self._closing = False
        self._errors_logged = 0

    # Transport callbacks

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        self.ping_sent_at = 0.0
        pending = self._buffer
        if isinstance(pending, list):
            # A large frame is arriving in pieces: keep them until it is whole,
            # so that no piece is copied more than once.
            pending.append(data)
            self._missing -= len(data)
            if self._missing > 0:
                return
            buffer = b"".join(pending)
        else:
            buffer = pending + data if pending else data
        try:
            frames, consumed = read_frames(buffer, self.hub.settings.max_frame_bytes)
        except FrameError as exc:
            self._buffer = b""
            self.log_error("WebSocket framing error: %s", exc.reason)
            self.close(exc.close_code, exc.reason)
            return
        rest = buffer[consumed:]
        self._buffer = rest
        self._missing = 0
        if len(rest) > LARGE_FRAME_BYTES:
            missing = frame_size(rest) - len(rest)
            if missing > 0:
                self._buffer = [rest]
                self._missing = missing
        for fin, opcode, payload in frames:
            if self._closing and opcode != OP_CLOSE:
                continue
            self._receive_frame(fin, opcode, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.hub.remove_connection(self)

    def pause_writing(self) -> None:
        # The peer reads slower than messages arrive for it. Dropping it keeps the
        # server's memory bounded; pusher-js reconnects after a second.
        logger.info(
            "Dropping connection %s: over %d bytes queued for a slow reader",
            self.socket_id,
            WRITE_BUFFER_HIGH_WATER,
            extra={"app_id": self.app.id, "socket_id": self.socket_id},
        )
        self._closing = True
        self.transport.abort()

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or closed; nothing more is sent."""
        return self._closing

    # Sending

    def send(self, message: OutboundMessage) -> None:
        """Queue ``message``; the hub writes each connection's queue once per
        event-loop pass, so a burst of frames costs one system call."""
        if self._closing:
            return
        pending = self._pending
        if pending is None:
            self._pending = message.frame
            hub = self.hub
            hub.unflushed.append(self)
            if not hub.flush_scheduled:
                hub.schedule_flush()
        elif isinstance(pending, list):
            pending.append(message.frame)
        else:
            self._pending = [pending, message.frame]

    def send_text(self, text: str) -> None:
        self.send(OutboundMessage(text))

    def flush(self) -> None:
        """Write the queued frames to the transport."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._closing:
            return
        try:
            if isinstance(pending, list):
                self.transport.writelines(pending)
            else:
                self.transport.write(pending)
        except RuntimeError:
            # uvloop raises once the peer is gone but before connection_lost has
            # run; the other connections of the flush must still be written.
            self._closing = True

    def _write(self, data: bytes) -> None:
        # Control frames go out after the frames queued before them.
        self.flush()
        try:
            self.transport.write(data)
        except RuntimeError:
            self._closing = True

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame, then drop the TCP connection once the peer responds
        or after a short grace period."""
        if self._closing:
            return
        self._write(encode_close(code, reason))
        self._closing = True
        asyncio.get_running_loop().call_later(
            CLOSE_HANDSHAKE_GRACE, self.transport.close
        )

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

    def _receive_frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._write(encode_frame(OP_PONG, payload))
            return
        if opcode == OP_PONG:
            return
        if opcode == OP_CLOSE:
            self._receive_close(payload)
            return

        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                self._protocol_error("continuation frame without a message to continue")
                return
            self._fragments.append(payload)
            self._fragment_size += len(payload)
            if self._fragment_size > self.hub.settings.max_frame_bytes:
                self.log_error(
                    "Message of %d bytes is over the limit", self._fragment_size
                )
                self.close(1009, "message too big")
                return
            if len(self._fragments) > MAX_FRAGMENTS:
                self.log_error("Message in over %d fragments rejected", MAX_FRAGMENTS)
                self.close(CLOSE_POLICY_VIOLATION, "too many fragments")
                return
            if not fin:
                return
            payload = b"".join(self._fragments)
            opcode = self._fragment_opcode
            self._fragments = None
        elif self._fragments is not None:
            self._protocol_error("new message before the previous one ended")
            return
        elif not fin:
            self._fragments = [payload]
            self._fragment_size = len(payload)
            self._fragment_opcode = opcode
            return

        try:
            text = payload.decode()
        except UnicodeDecodeError:
            if opcode == OP_TEXT:
                self.log_error("Text frame is not valid UTF-8")
                self.close(CLOSE_INVALID_PAYLOAD, "invalid UTF-8")
            else:
                self.log_error("Rejected binary frame: its payload is not UTF-8 JSON")
                self.send_text(messages.error(None, "Binary frames are not supported"))
            return
        if opcode == OP_BINARY and not text.lstrip().startswith("{"):
            self.log_error("Rejected binary frame: its payload is not UTF-8 JSON")
            self.send_text(messages.error(None, "Binary frames are not supported"))
            return
        self._queue_text(text)

    def _receive_close(self, payload: bytes) -> None:
        if self._closing:
            self.transport.close()
            return
        # Echo the peer's close code, as RFC 6455 section 5.5.1 requires, unless the
        # close frame itself is invalid (section 7.4.1 lists the codes a peer
        # may send).
        if not payload:
            code = 1000
        elif len(payload) == 1:
            code = CLOSE_PROTOCOL_ERROR
        else:
            code = int.from_bytes(payload[:2], "big")
            if not 1000 <= code < 5000 or code in (1004, 1005, 1006, 1015):
                code = CLOSE_PROTOCOL_ERROR
            else:
                try:
                    payload[2:].decode()
                except UnicodeDecodeError:
                    code = CLOSE_INVALID_PAYLOAD
        self._write(encode_close(code, ""))
        self._closing = True
        self.transport.close()

    def _protocol_error(self, reason: str) -> None:
        self.log_error("WebSocket protocol error: %s", reason)
        self.close(CLOSE_PROTOCOL_ERROR, reason)

    def _queue_text(self, text: str) -> None:
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
