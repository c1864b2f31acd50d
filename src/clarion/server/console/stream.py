"""The live log as server-sent events, written directly on the HTTP transport.

Two bounds keep a slow browser from slowing the server: the monitor's
watcher queue drops its oldest events when the stream falls behind, and
while the transport's write buffer is over ``MAX_BUFFERED_BYTES`` new
events are dropped instead of written. A ``dropped`` message then gives
the browser the number it missed.

A stream ends when its session ends: at once when the session logs out on
this process, and within ``SESSION_CHECK_SECONDS`` when it logs out on
another node or its cookie expires.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from clarion.protocol.errors import ApiError
from clarion.server.monitor import Monitor, MonitorEvent

if TYPE_CHECKING:
    from clarion.server.http import HttpProtocol

__all__ = ["MAX_DATA_CHARACTERS", "EventStreams", "event_record"]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""Seconds without events after which a comment line keeps proxies from
closing the stream."""
MAX_BUFFERED_BYTES = 256 * 1024
"""Bytes waiting in a stream's write buffer above which events are dropped."""
MAX_DATA_CHARACTERS = 2000
"""Characters of an event's data sent to the browser; the rest is cut."""
MAX_STREAMS = 32
"""Live log streams open at once on one process."""
RETRY_MILLISECONDS = 3000
"""Delay the browser waits before reconnecting a dropped stream."""
SESSION_CHECK_SECONDS = 5.0
"""Seconds between two checks that a stream's session is still valid."""


def event_record(event: MonitorEvent, node: str) -> dict[str, Any]:
    """Return the JSON-ready form of ``event`` that the browser shows."""
    detail = dict(event.detail)
    data = detail.get("data")
    if data is not None:
        text = data if isinstance(data, str) else json.dumps(data, default=str)
        if len(text) > MAX_DATA_CHARACTERS:
            text = text[:MAX_DATA_CHARACTERS] + "…"
        detail["data"] = text
    return {
        "kind": event.kind,
        "time": event.time,
        "node": event.node or node,
        "detail": detail,
    }


def _message(name: str, payload: object) -> bytes:
    data = json.dumps(payload, default=str, ensure_ascii=False)
    return f"event: {name}\ndata: {data}\n\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class EventStreams:
    """The open live log streams of this process."""

    def __init__(self, monitor: Monitor, node: str) -> None:
        self.monitor = monitor
        self.node = node
        self._protocols: dict[HttpProtocol, str] = {}
        """Open streams and the session id that opened each."""

    @property
    def count(self) -> int:
        return len(self._protocols)

    @property
    def full(self) -> bool:
        return len(self._protocols) >= MAX_STREAMS

    def close_all(self) -> None:
        """Close every stream's connection, for shutdown."""
        for protocol in list(self._protocols):
            if protocol.transport is not None:
                protocol.transport.close()

    def close_session(self, session_id: str) -> int:
        """Close the streams opened by one session; return how many."""
        closed = 0
        for protocol, opened_by in list(self._protocols.items()):
            if opened_by == session_id and protocol.transport is not None:
                protocol.transport.close()
                closed += 1
        return closed

    async def serve(
        self,
        protocol: HttpProtocol,
        app_id: str,
        session_id: str,
        check_session: Callable[[], Awaitable[object]],
    ) -> None:
        """Write the app's recent events, then its live events, until the
        browser disconnects, the server stops or the session ends.

        ``check_session`` returns a false value, or raises ``ApiError``, once
        the session is no longer valid or cannot be checked.
        """
        transport = protocol.transport
        assert transport is not None
        head = [
            "HTTP/1.1 200 OK",
            "Content-Type: text/event-stream; charset=utf-8",
            "Cache-Control: no-store",
            "X-Accel-Buffering: no",
            "X-Content-Type-Options: nosniff",
            "Transfer-Encoding: chunked",
            "Connection: close",
        ]
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

        watcher = self.monitor.watch(app_id)
        self._protocols[protocol] = session_id
        logger.info("Console live log opened for app %s", app_id)
        try:
            recent = [event_record(e, self.node) for e in self.monitor.recent(app_id)]
            first = f"retry: {RETRY_MILLISECONDS}\n\n".encode()
            transport.write(_chunk(first + _message("recent", recent)))

            dropped = 0
            last_write = next_check = time.monotonic()
            while not transport.is_closing():
                events = await self.monitor.next_events(watcher, SESSION_CHECK_SECONDS)
                if transport.is_closing():
                    break
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + SESSION_CHECK_SECONDS
                    if not await self._session_valid(check_session, app_id):
                        break
                dropped += watcher.dropped
                watcher.dropped = 0
                if not events:
                    if now - last_write >= HEARTBEAT_SECONDS:
                        transport.write(_chunk(b": keep-alive\n\n"))
                        last_write = now
                    continue
                if transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
                    dropped += len(events)
                    continue
                body = b""
                if dropped:
                    body += _message("dropped", {"count": dropped})
                    dropped = 0
                records = [event_record(event, self.node) for event in events]
                body += _message("events", records)
                transport.write(_chunk(body))
                last_write = now
        finally:
            self.monitor.unwatch(app_id, watcher)
            self._protocols.pop(protocol, None)
            logger.info("Console live log closed for app %s", app_id)

        if not transport.is_closing():
            transport.write(b"0\r\n\r\n")
            transport.close()

    @staticmethod
    async def _session_valid(
        check_session: Callable[[], Awaitable[object]], app_id: str
    ) -> bool:
        try:
            valid = bool(await check_session())
        except ApiError as exc:
            logger.warning(
                "Console live log for app %s ended: its session cannot be checked: %s",
                app_id,
                exc.message,
            )
            return False
        if not valid:
            logger.info("Console live log for app %s ended with its session", app_id)
        return valid
