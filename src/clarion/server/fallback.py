"""pusher-js's HTTP fallback transports: ``xhr_streaming`` and ``xhr_polling``.

Clients that cannot open a WebSocket use a SockJS-style session under
``{path}/app/{key}/{server}/{session}/``: ``xhr_streaming`` keeps one response
open and writes each frame as it comes, ``xhr`` (polling) responds with what is
queued or holds the request until something is, and ``xhr_send`` carries the
client's messages. An ``HttpSession`` is a ``Connection`` like a WebSocket one,
so the hub treats both alike; only the framing differs:

- ``o``: the session is open;
- ``h``: a heartbeat;
- ``a[...]``: a JSON array of Pusher messages, each as a JSON string;
- ``c[code,"reason"]``: the server closed the session.

Every frame ends with one LF. The rules follow pusher-js 8.6.0's transports
(``src/core/http/``) and SockJS 0.3's defaults (25 s heartbeats, 5 s before a
session without a receiving request is dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from typing import TYPE_CHECKING

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.errors import ConnectionRejected, ErrorCode, shorten
from clarion.protocol.handshake import (
    check_app,
    check_origin,
    check_protocol_version,
    check_tls,
)
from clarion.server.connection import Connection
from clarion.server.http import Request, RequestHandler, Response
from clarion.server.websocket import OutboundMessage

if TYPE_CHECKING:
    from clarion.server.http import HttpProtocol
    from clarion.server.hub import Hub

__all__ = ["HttpSession", "HttpSessions"]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 25.0
"""Seconds without output after which a stream gets ``h`` and a held poll ends."""
DISCONNECT_GRACE = 5.0
"""Seconds a session may have no receiving request before it is closed."""
STREAM_CHARACTER_LIMIT = 256 * 1024
"""Characters pusher-js reads from one stream (or poll) before it aborts it
and opens the next; nothing written after that point would be read."""
STREAM_RESUME_SECONDS = 2.0
"""Seconds after reaching the limit before writing resumes on a stream that
the client did not replace."""
MAX_QUEUED_CHARACTERS = 4 * 1024 * 1024
"""Characters queued for a session before its client counts as too slow."""
PRELUDE = b"h" * 2048 + b"\n"
"""The SockJS prelude: some proxies hold back the first bytes of a response."""

_CACHE_CONTROL = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
_FRAME_CONTENT_TYPE = "application/javascript; charset=UTF-8"


def _array_frame(texts: list[str]) -> str:
    # ensure_ascii makes characters and bytes the same count, which the
    # 256 KiB accounting of pusher-js needs.
    return "a" + json.dumps(texts, separators=(",", ":")) + "\n"


def _close_frame(code: int, reason: str) -> str:
    return "c" + json.dumps([code, reason], separators=(",", ":")) + "\n"


class _Receiver:
    """A receiving request attached to a session: a stream or a held poll."""

    def __init__(self) -> None:
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def deliver(self, session: HttpSession) -> None:
        raise NotImplementedError


class _PollReceiver(_Receiver):
    """A held poll: the first frames queued complete it."""

    def deliver(self, session: HttpSession) -> None:
        # A finished poll takes nothing: what is queued waits for the next one.
        if self.done.done():
            return
        body = session.take_frames(STREAM_CHARACTER_LIMIT, may_cross=False)
        if body:
            self.done.set_result(body)


class _StreamReceiver(_Receiver):
    """An open ``xhr_streaming`` response, written chunk by chunk."""

    def __init__(self, protocol: HttpProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.characters = 0
        self.last_write = time.monotonic()
        self._resume: asyncio.TimerHandle | None = None

    @property
    def writable(self) -> bool:
        transport = self.protocol.transport
        return transport is not None and not transport.is_closing()

    def write(self, text: str) -> None:
        transport = self.protocol.transport
        if transport is None or transport.is_closing():
            return
        data = text.encode()
        transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.characters += len(text)
        self.last_write = time.monotonic()

    def deliver(self, session: HttpSession) -> None:
        if self.done.done() or not self.writable:
            # Leave the queue to the next receiving request.
            return
        transport = self.protocol.transport
        assert transport is not None
        if transport.get_write_buffer_size() > MAX_QUEUED_CHARACTERS:
            # The client stopped reading this stream: bound the memory it
            # takes up, as the WebSocket path does.
            session.log_error("Dropping HTTP session: its stream is not being read")
            transport.abort()
            return
        if self.characters <= STREAM_CHARACTER_LIMIT:
            # The frame that crosses the limit is still read by pusher-js;
            # anything after it would not be.
            frames = session.take_frames(
                max(1, STREAM_CHARACTER_LIMIT - self.characters + 1)
            )
            if frames:
                self.write(frames)
        if self.characters > STREAM_CHARACTER_LIMIT:
            # pusher-js now opens another stream; queue until it does, or
            # resume on this one if it does not within a moment.
            if self._resume is None:
                self._resume = asyncio.get_running_loop().call_later(
                    STREAM_RESUME_SECONDS, self._resume_writing, session
                )
            return
        if session.closed_frame is not None and not session.has_queued:
            self.done.set_result("")

    def _resume_writing(self, session: HttpSession) -> None:
        self._resume = None
        if session.receiver is self:
            self.characters = 0
            self.deliver(session)

    def stop(self) -> None:
        if self._resume is not None:
            self._resume.cancel()


class HttpSession(Connection):
    """A Pusher connection over HTTP requests."""

    __slots__ = (
        "_flush_scheduled",
        "_grace",
        "_queue",
        "_queued_characters",
        "_receiver",
        "closed_frame",
        "key",
        "opened",
        "sessions",
    )

    transport_name = "http"

    def __init__(
        self,
        hub: Hub,
        app: App,
        socket_id: str,
        sessions: HttpSessions,
        key: tuple[str, str, str],
    ) -> None:
        super().__init__(hub, app, socket_id)
        self.sessions = sessions
        self.key = key
        self.opened = False
        """Whether ``o`` has been sent."""
        self.closed_frame: str | None = None
        """The ``c`` frame once the server closed the session."""
        self._queue: deque[str] = deque()
        self._queued_characters = 0
        self._receiver: _Receiver | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._flush_scheduled = False

    # Connection

    def send(self, message: OutboundMessage) -> None:
        if self._closing:
            return
        self._queue.append(message.text)
        self._queued_characters += len(message.text)
        if self._queued_characters > MAX_QUEUED_CHARACTERS:
            self.log_error(
                "Dropping HTTP session: over %d characters queued for a slow client",
                MAX_QUEUED_CHARACTERS,
            )
            self._queue.clear()
            self._queued_characters = 0
            self.close(ErrorCode.OVER_CAPACITY, "Connection is too slow")
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            hub = self.hub
            hub.unflushed.append(self)
            if not hub.flush_scheduled:
                hub.schedule_flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._receiver is not None:
            self._receiver.deliver(self)

    def close(self, code: int, reason: str = "") -> None:
        if self._closing:
            return
        self._closing = True
        self.closed_frame = _close_frame(code, reason)
        if self._receiver is not None:
            self._receiver.deliver(self)
        self.hub.remove_connection(self)
        self.sessions.forget_later(self)

    # Frames

    @property
    def receiver(self) -> _Receiver | None:
        return self._receiver

    @property
    def has_queued(self) -> bool:
        return bool(self._queue)

    def take_frames(self, limit: int, *, may_cross: bool = True) -> str:
        """Return queued messages as one frame, and the close frame once the
        queue is empty.

        Messages are added while the frame is under ``limit`` characters, so
        with ``may_cross`` the last one may take it over the limit; without,
        only the first message may. A frame always has at least one message.
        """
        texts: list[str] = []
        size = 0
        while self._queue and size < limit:
            # The escaped JSON string is what the frame carries.
            length = len(json.dumps(self._queue[0])) + 1
            if texts and not may_cross and size + length > limit:
                break
            texts.append(self._queue.popleft())
            size += length
        self._queued_characters -= sum(len(text) for text in texts)
        frames = _array_frame(texts) if texts else ""
        if not self._queue and self.closed_frame is not None:
            frames += self.closed_frame
        return frames

    # Receiving requests

    def attach(self, receiver: _Receiver) -> None:
        """Make ``receiver`` the session's receiving request, replacing any other."""
        self.last_received = time.monotonic()
        self.ping_sent_at = 0.0
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        previous = self._receiver
        self._receiver = receiver
        if previous is not None and not previous.done.done():
            previous.done.set_result("")
        if self._queue or self.closed_frame is not None:
            receiver.deliver(self)

    def detach(self, receiver: _Receiver) -> None:
        if self._receiver is not receiver:
            return
        self._receiver = None
        if isinstance(receiver, _StreamReceiver):
            receiver.stop()
        if not self._closing:
            self._grace = asyncio.get_running_loop().call_later(
                DISCONNECT_GRACE, self._abandon
            )

    def _abandon(self) -> None:
        # The client stopped polling or streaming: clean up as for a socket
        # that dropped.
        self._grace = None
        if self._receiver is not None or self._closing:
            return
        logger.debug(
            "HTTP session %s abandoned by its client",
            self.socket_id,
            extra={"app_id": self.app.id, "socket_id": self.socket_id},
        )
        self._closing = True
        self.hub.remove_connection(self)
        self.sessions.forget(self)

    def receive(self, texts: list[object]) -> None:
        """Handle the messages of one ``xhr_send`` body, in order."""
        self.last_received = time.monotonic()
        self.ping_sent_at = 0.0
        if not texts and isinstance(self._receiver, _PollReceiver):
            # The client's ping: respond to it with the held poll at once.
            if not self._receiver.done.done():
                self._receiver.done.set_result("h\n")
            return
        for text in texts:
            # An element that is no string is handled like a frame that is not
            # a JSON object.
            if not isinstance(text, str):
                text = ""
            self._queue_text(text, len(text.encode(errors="surrogatepass")))


class HttpSessions:
    """The HTTP sessions of this process, and the endpoints that serve them."""

    def __init__(self, hub: Hub, path: str = "/pusher") -> None:
        self.hub = hub
        self.path = path.rstrip("/") or "/pusher"
        self._pattern = re.compile(
            re.escape(self.path)
            + r"/app/([^/]+)/([^/.]+)/([^/.]+)/(xhr_streaming|xhr_send|xhr)"
        )
        self._sessions: dict[tuple[str, str, str], HttpSession] = {}
        self.address: str | None = None
        """Where other processes of a cluster relay requests for this process's
        sessions; set when the first session of a cluster node opens."""
        self._relay: asyncio.Server | None = None

    def matches(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")

    def forget(self, session: HttpSession) -> None:
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
            if self.address is not None:
                self.hub.spawn(
                    self.hub.adapter.set_session_owner(_owner_key(session.key), None)
                )

    # Sessions of other processes

    async def _claim(self, key: tuple[str, str, str]) -> None:
        """Record this process as the session's owner, so that the other
        processes of a cluster relay its requests here."""
        if self.address is None:
            loop = asyncio.get_running_loop()
            from clarion.server.http import HttpProtocol

            self._relay = await loop.create_server(
                lambda: HttpProtocol(self.hub, _NotFound(), self), "127.0.0.1", 0
            )
            port = self._relay.sockets[0].getsockname()[1]
            self.address = f"127.0.0.1:{port}"
            logger.info("Serving relayed HTTP session requests on %s", self.address)
        await self.hub.adapter.set_session_owner(_owner_key(key), self.address)

    async def _relay_to_owner(
        self, key: tuple[str, str, str], request: Request, protocol: HttpProtocol
    ) -> bool:
        """Pass a request for another process's session to that process and its
        response back; return False when no other process serves the session.

        The workers of one machine share a port, so the kernel may hand a
        session's next request to any of them.
        """
        if not self.hub.settings.redis_url:
            return False
        owner = await self.hub.adapter.session_owner(_owner_key(key))
        if owner is None or owner == self.address:
            return False
        host, _, port = owner.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except (OSError, ValueError) as exc:
            logger.info("Owner %s of an HTTP session is gone (%s)", owner, exc)
            await self.hub.adapter.set_session_owner(_owner_key(key), None)
            return False
        transport = protocol.transport
        try:
            target = request.path + (f"?{request.query}" if request.query else "")
            lines = [f"{request.method} {target} HTTP/1.1"]
            lines += [
                f"{name}: {value}"
                for name, value in request.headers.items()
                if name not in ("connection", "content-length", "transfer-encoding")
            ]
            lines += [f"Content-Length: {len(request.body)}", "Connection: close"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            writer.write(request.body)
            await writer.drain()
            while chunk := await reader.read(65536):
                if transport is None or transport.is_closing():
                    break
                transport.write(chunk)
        finally:
            writer.close()
            if transport is not None:
                transport.close()
        return True

    def forget_later(self, session: HttpSession) -> None:
        """Keep a closed session for the grace period, so that its client's next
        receiving request gets the close frame again."""
        asyncio.get_running_loop().call_later(DISCONNECT_GRACE, self.forget, session)

    # Requests

    async def handle(self, request: Request, protocol: HttpProtocol) -> Response | None:
        """Serve one request under the fallback path.

        Returns the response to write, or ``None`` when a stream was written
        to the transport directly and has ended.
        """
        cors = _cors_headers(request)
        if request.method == "OPTIONS":
            return _preflight(request, cors)
        match = self._pattern.fullmatch(request.path)
        if match is None:
            return Response(404, b"Not found", "text/plain; charset=UTF-8", cors)
        if request.method != "POST":
            headers = (*cors, ("Allow", "OPTIONS, POST"))
            return Response(405, b"", "text/plain; charset=UTF-8", headers)
        app_key, server, session_id, kind = match.groups()
        key = (app_key, server, session_id)
        if key not in self._sessions and await self._relay_to_owner(
            key, request, protocol
        ):
            return None
        if kind == "xhr_send":
            return self._send(key, request, cors)
        session = self._sessions.get(key)
        if session is None:
            session, refusal = self._open(
                key, request, protocol.is_tls(request.headers)
            )
            if session is None:
                return _frames_response(refusal, cors)
            if self.hub.settings.redis_url:
                await self._claim(key)
        if kind == "xhr":
            return await self._poll(session, cors)
        await self._stream(session, protocol, cors)
        return None

    def _open(
        self, key: tuple[str, str, str], request: Request, is_tls: bool
    ) -> tuple[HttpSession | None, str]:
        app_key = key[0]
        app: App | None = None
        try:
            app = check_app(self.hub.apps.find_by_key(app_key), app_key)
            check_origin(app, request.headers.get("origin"))
            check_protocol_version(request.params.get("protocol"))
            check_tls(app, is_tls)
            admitted = app
            session = self.hub.open_connection(
                app,
                lambda socket_id: HttpSession(self.hub, admitted, socket_id, self, key),
            )
        except ConnectionRejected as exc:
            self.hub.tally.connections_rejected[exc.code] += 1
            app_id = app.id if app is not None else None
            # The hub logs quota rejections itself, throttled.
            if exc.code != ErrorCode.OVER_CONNECTION_QUOTA:
                logger.info(
                    "HTTP session for app key %s%s rejected with %d: %s",
                    shorten(app_key),
                    f" (app {app_id})" if app_id is not None else "",
                    exc.code,
                    exc.message,
                    extra={"app_id": app_id},
                )
            body = (
                "o\n"
                + _array_frame([messages.error(exc.code, exc.message)])
                + _close_frame(exc.code, exc.message)
            )
            return None, body
        self._sessions[key] = session
        logger.debug("HTTP session %s opened for app %s", session.socket_id, app.id)
        return session, ""

    def _send(
        self,
        key: tuple[str, str, str],
        request: Request,
        cors: tuple[tuple[str, str], ...],
    ) -> Response:
        session = self._sessions.get(key)
        if session is None:
            return Response(
                404, b"Session not found", "text/plain; charset=UTF-8", cors
            )
        if not request.body:
            return Response(
                500, b"Payload expected.", "text/plain; charset=UTF-8", cors
            )
        try:
            texts = json.loads(request.body)
        except (ValueError, RecursionError):
            texts = None
        if not isinstance(texts, list):
            session.log_error("Rejected xhr_send body: it is not a JSON array")
            return Response(
                500, b"Broken JSON encoding.", "text/plain; charset=UTF-8", cors
            )
        if not session.closing:
            session.receive(texts)
        headers = (*cors, ("Cache-Control", _CACHE_CONTROL))
        return Response(204, b"", "text/plain; charset=UTF-8", headers)

    async def _poll(
        self, session: HttpSession, cors: tuple[tuple[str, str], ...]
    ) -> Response:
        prefix = ""
        if not session.opened:
            session.opened = True
            prefix = "o\n"
        receiver = _PollReceiver()
        session.attach(receiver)
        try:
            if prefix and not receiver.done.done():
                # The first poll opens the session and returns at once.
                body = prefix + session.take_frames(
                    STREAM_CHARACTER_LIMIT, may_cross=False
                )
            else:
                body = prefix + await asyncio.wait_for(
                    asyncio.shield(receiver.done), HEARTBEAT_SECONDS
                )
        except TimeoutError:
            body = "h\n"
        finally:
            session.detach(receiver)
        # An empty body means that a newer poll replaced this one.
        return _frames_response(body, cors)

    async def _stream(
        self,
        session: HttpSession,
        protocol: HttpProtocol,
        cors: tuple[tuple[str, str], ...],
    ) -> None:
        transport = protocol.transport
        assert transport is not None
        head = [
            "HTTP/1.1 200 OK",
            f"Content-Type: {_FRAME_CONTENT_TYPE}",
            f"Cache-Control: {_CACHE_CONTROL}",
            "Transfer-Encoding: chunked",
            "X-Accel-Buffering: no",
            "Connection: close",
            *(f"{name}: {value}" for name, value in cors),
        ]
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        receiver = _StreamReceiver(protocol)
        receiver.write(PRELUDE.decode())
        if not session.opened:
            session.opened = True
            receiver.write("o\n")
        session.attach(receiver)
        try:
            while not receiver.done.done():
                wait = HEARTBEAT_SECONDS - (time.monotonic() - receiver.last_write)
                try:
                    await asyncio.wait_for(
                        asyncio.shield(receiver.done), max(0.0, wait)
                    )
                except TimeoutError:
                    if receiver.characters <= STREAM_CHARACTER_LIMIT:
                        receiver.write("h\n")
        finally:
            session.detach(receiver)
        if not transport.is_closing():
            transport.write(b"0\r\n\r\n")
            transport.close()


class _NotFound(RequestHandler):
    """The relay listener serves only session requests."""

    async def handle(self, request: Request) -> Response:
        return Response(404, b"Not found", "text/plain; charset=UTF-8")


def _owner_key(key: tuple[str, str, str]) -> str:
    return "/".join(key)


def _cors_headers(request: Request) -> tuple[tuple[str, str], ...]:
    origin = request.headers.get("origin")
    if not origin:
        return (("Access-Control-Allow-Origin", "*"),)
    return (
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    )


def _preflight(request: Request, cors: tuple[tuple[str, str], ...]) -> Response:
    headers = [
        *cors,
        ("Access-Control-Allow-Methods", "OPTIONS, POST"),
        ("Access-Control-Max-Age", "31536000"),
    ]
    requested = request.headers.get("access-control-request-headers")
    if requested:
        headers.append(("Access-Control-Allow-Headers", requested))
    return Response(204, b"", "text/plain; charset=UTF-8", tuple(headers))


def _frames_response(body: str, cors: tuple[tuple[str, str], ...]) -> Response:
    headers = (*cors, ("Cache-Control", _CACHE_CONTROL))
    return Response(200, body.encode(), _FRAME_CONTENT_TYPE, headers)
