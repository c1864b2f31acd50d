"""A Pusher connection over a WebSocket: frame I/O after the upgrade."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.server.connection import Connection
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

__all__ = ["WRITE_BUFFER_HIGH_WATER", "WebSocketConnection"]

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


class WebSocketConnection(Connection, asyncio.Protocol):
    """A Pusher connection over a WebSocket.

    Frames are parsed in ``data_received``; each complete text message goes to
    the hub in arrival order. Outbound frames queue per connection and are
    written with one call per event-loop pass, with no task and no encoding per
    connection.
    """

    __slots__ = (
        "_buffer",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "_missing",
        "_pending",
        "transport",
    )

    transport_name = "websocket"

    def __init__(
        self, hub: Hub, app: App, socket_id: str, transport: asyncio.Transport
    ) -> None:
        super().__init__(hub, app, socket_id)
        self.transport = transport
        self._buffer: bytes | list[bytes] = b""
        """Bytes of an incomplete frame, or the pieces of a large one."""
        self._missing = 0
        """Bytes still to arrive before the large frame in ``_buffer`` is whole."""
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self._fragment_opcode = 0
        self._pending: bytes | list[bytes] | None = None
        """Frames queued since the last flush: one ``bytes`` or a list of them."""

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
        except RuntimeError as exc:
            # uvloop raises once the peer is gone but before connection_lost has
            # run; the other connections of the flush must still be written.
            self._write_failed(exc)

    def _write(self, data: bytes) -> None:
        # Control frames go out after the frames queued before them.
        self.flush()
        try:
            self.transport.write(data)
        except RuntimeError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: RuntimeError) -> None:
        self._closing = True
        logger.debug(
            "Write to connection %s failed, closing it: %s",
            self.socket_id,
            exc,
            extra={"app_id": self.app.id, "socket_id": self.socket_id},
        )

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
        self._queue_text(text, len(payload))

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
