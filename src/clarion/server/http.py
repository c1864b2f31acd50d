"""The listener: HTTP/1.1 requests for the API, and upgrades to the WebSocket endpoint.

Each accepted TCP connection starts with an ``HttpProtocol``. A WebSocket
upgrade hands the transport to a ``Connection`` and drops the HTTP parser, so an
open WebSocket carries no HTTP state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qsl

import httptools

from clarion.protocol import messages
from clarion.protocol.apps import App
from clarion.protocol.errors import ConnectionRejected, ErrorCode, shorten
from clarion.protocol.handshake import (
    app_key_from_path,
    check_app,
    check_origin,
    check_protocol_version,
    check_tls,
)
from clarion.server.hub import Hub

if TYPE_CHECKING:
    from clarion.server.console import Console
    from clarion.server.fallback import HttpSessions
    from clarion.server.ops import OpsEndpoints
from clarion.server.websocket import OP_TEXT, accept_key, encode_close, encode_frame
from clarion.server.websocket_connection import (
    WRITE_BUFFER_HIGH_WATER,
    WebSocketConnection,
)

__all__ = ["HttpProtocol", "Request", "RequestHandler", "Response", "error_response"]

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED_REQUESTS = 32
"""Requests read ahead of their responses before reading pauses."""
LINGER_SECONDS = 2.0
"""Seconds a connection stays open after an error response, discarding input."""
MAX_DISCARDED_BYTES = 16 * 1024 * 1024
REJECTED_SOCKET_GRACE = 2.0
"""Seconds a refused WebSocket stays open for the peer to read the error and close."""

_STATUS_TEXT = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    """The path as received, still percent-encoded."""
    query: str
    headers: dict[str, str]
    """Header names in lower case; a repeated header keeps its last value."""
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    """Query parameters, percent-decoded."""
    tls: bool = False
    """Whether the request came over TLS on this server's own socket; a proxy's
    ``X-Forwarded-Proto`` does not count here (see ``HttpProtocol.is_tls``)."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, keep_alive: bool, with_body: bool = True) -> bytes:
        """Encode the response; ``with_body`` is false for HEAD requests, whose
        response has the headers of the full response but no body."""
        lines = [
            f"HTTP/1.1 {self.status} {_STATUS_TEXT.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body if with_body else head


class RequestHandler:
    """The handler that the listener calls for each plain HTTP request."""

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def error_headers(
        self, path: str, headers: Mapping[str, str]
    ) -> tuple[tuple[str, str], ...]:
        """Return the headers of an error response that the listener writes
        itself (413 for a body over the limit, 500 for an unhandled error) to a
        request for ``path`` with ``headers``. None by default."""
        return ()


class HttpProtocol(asyncio.Protocol):
    """An HTTP/1.1 connection, keep-alive included; responses go out in request
    order."""

    def __init__(
        self,
        hub: Hub,
        handler: RequestHandler,
        sessions: HttpSessions | None = None,
        console: Console | None = None,
        ops: OpsEndpoints | None = None,
    ) -> None:
        self.hub = hub
        self.handler = handler
        self.sessions = sessions
        self.console = console
        self.ops = ops
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = "?"
        self._socket_tls = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._failed = False
        self._discarded = 0
        self._upgrade: Request | None = None
        self._pending: deque[tuple[Request, bool]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._final_response: Response | None = None
        """An error response that waits for the requests received before it."""
        self._writing_paused = False
        self._reading_paused = False

    # Transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self._socket_tls = transport.get_extra_info("sslcontext") is not None
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        # Only a complete request re-arms the timer, so a peer that sends a
        # request slowly, or nothing at all, cannot hold the connection open.
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(
            self.hub.settings.http_idle_timeout, self._on_idle_timeout
        )

    def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._worker is not None:
            self._arm_idle_timer()
            return
        logger.info(
            "Closing HTTP connection from %s: no complete request within %d s",
            self.peer,
            self.hub.settings.http_idle_timeout,
        )
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._failed:
            # Discard what the peer still sends after an error response, so that
            # it can read the response instead of failing on a reset connection.
            self._discarded += len(data)
            if self._discarded > MAX_DISCARDED_BYTES and self.transport is not None:
                self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self._start_websocket(data[offset:])
            return
        except httptools.HttpParserError as exc:
            if not self._failed:
                logger.info("Malformed HTTP request from %s: %s", self.peer, exc)
                self._fail(error_response(400, "Malformed HTTP request"))
            # A callback may have failed the request already; it logged why.
        if self._pending and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._answer_requests()
            )
        self._update_reading()

    def pause_writing(self) -> None:
        # The peer does not read its answers; stop reading its requests too,
        # so that the answers waiting for it stay bounded.
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        pause = self._writing_paused or len(self._pending) >= MAX_PIPELINED_REQUESTS
        if pause and not self._reading_paused:
            self.transport.pause_reading()
        elif not pause and self._reading_paused:
            self.transport.resume_reading()
        self._reading_paused = pause

    def connection_lost(self, exc: Exception | None) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def is_tls(self, headers: dict[str, str]) -> bool:
        """Return True when the client reached the server over TLS, either on
        this socket or through a proxy that terminates TLS and sets
        ``X-Forwarded-Proto: https``.

        The header is trusted from any client, because a client that sends it
        without TLS only gives up the protection of its own traffic.
        """
        if self._socket_tls:
            return True
        # Behind several proxies the first value is the client's own scheme.
        forwarded = headers.get("x-forwarded-proto", "").split(",")[0]
        return forwarded.strip().lower() == "https"

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._header_bytes = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        declared = self._headers.get("content-length", "")
        limit = self.hub.settings.max_body_bytes
        if declared.isdecimal() and int(declared) > limit:
            logger.info(
                "Rejected request from %s with 413: its body of %s bytes is over "
                "the limit of %d bytes",
                self.peer,
                declared,
                limit,
            )
            message = f"Request body is over the limit of {limit} bytes"
            self._fail(self._body_too_large(message))
            raise httptools.HttpParserError("body too large")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        limit = self.hub.settings.max_body_bytes
        if self._body_size > limit:
            logger.info(
                "Rejected request from %s with 413: its body is over the limit of "
                "%d bytes",
                self.peer,
                limit,
            )
            message = f"Request body is over the limit of {limit} bytes"
            self._fail(self._body_too_large(message))
            raise httptools.HttpParserError("body too large")
        self._body.append(body)

    def _body_too_large(self, message: str) -> Response:
        response = error_response(413, message)
        try:
            # parse_url also takes the absolute form, http://host/path.
            path = (httptools.parse_url(self._url).path or b"").decode("latin-1")
        except httptools.HttpParserInvalidURLError:
            path = ""
        response.headers = self.handler.error_headers(path, self._headers)
        return response

    def on_message_complete(self) -> None:
        url = httptools.parse_url(self._url)
        path = url.path.decode("latin-1")
        query = (url.query or b"").decode("latin-1")
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
            params=dict(parse_qsl(query, keep_blank_values=True)),
            tls=self._socket_tls,
        )
        if self.parser.should_upgrade():
            self._upgrade = request
        else:
            self._pending.append((request, self.parser.should_keep_alive()))
            self._arm_idle_timer()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            logger.info(
                "Request headers from %s are over %d bytes", self.peer, MAX_HEADER_BYTES
            )
            self._fail(error_response(431, "Request headers are too large"))
            raise httptools.HttpParserError("headers too large")

    # Plain HTTP

    async def _answer_requests(self) -> None:
        assert self.transport is not None
        try:
            while self._pending:
                request, keep_alive = self._pending.popleft()
                try:
                    if self.sessions is not None and self.sessions.matches(
                        request.path
                    ):
                        fallback = await self.sessions.handle(request, self)
                        if fallback is None:
                            # A stream was written directly and has ended.
                            return
                        response = fallback
                    elif self.console is not None and self.console.matches(
                        request.path
                    ):
                        page = await self.console.handle(request, self)
                        if page is None:
                            # The live log stream was written directly and has ended.
                            return
                        response = page
                    elif self.ops is not None and self.ops.matches(request.path):
                        response = await self.ops.handle(request)
                    else:
                        response = await self.handler.handle(request)
                except Exception:
                    logger.exception(
                        "Unhandled error while handling %s %s",
                        request.method,
                        request.path,
                    )
                    response = error_response(500, "Internal server error")
                    response.headers = self.handler.error_headers(
                        request.path, request.headers
                    )
                if self.transport.is_closing():
                    return
                with_body = request.method != "HEAD"
                self.transport.write(response.encode(keep_alive, with_body))
                if not keep_alive:
                    self.transport.close()
                    return
                self._update_reading()
            if self._final_response is not None:
                self._write_final(self._final_response)
        finally:
            self._worker = None

    def _fail(self, response: Response) -> None:
        """Answer with an error and close, ignoring anything more the peer sends.

        Complete requests that arrived before the bad one are answered first.
        """
        if self._failed or self.transport is None:
            return
        self._failed = True
        if self._pending or self._worker is not None:
            self._final_response = response
        else:
            self._write_final(response)

    def _write_final(self, response: Response) -> None:
        assert self.transport is not None
        self._final_response = None
        self.transport.write(response.encode(keep_alive=False))
        asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)

    # WebSocket

    def _start_websocket(self, rest: bytes) -> None:
        assert self.transport is not None
        if self._idle_timer is not None:
            # A WebSocket has its own liveness checks.
            self._idle_timer.cancel()
            self._idle_timer = None
        request = self._upgrade
        if request is None or request.method != "GET":
            self._fail(error_response(400, "WebSocket upgrade must be a GET"))
            return
        headers = request.headers
        key = headers.get("sec-websocket-key", "")
        if headers.get("upgrade", "").lower() != "websocket" or not key:
            self._fail(error_response(400, "Invalid WebSocket upgrade request"))
            return
        if headers.get("sec-websocket-version") != "13":
            self._fail(
                Response(
                    426,
                    error_response(426, "Unsupported WebSocket version: use 13").body,
                    headers=(("Sec-WebSocket-Version", "13"),),
                )
            )
            return

        self.transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        app: App | None = None
        try:
            app_key = app_key_from_path(request.path)
            app = check_app(self.hub.apps.find_by_key(app_key), app_key)
            check_origin(app, headers.get("origin"))
            check_protocol_version(request.params.get("protocol"))
            check_tls(app, self.is_tls(headers))
            transport = self.transport
            admitted = app
            connection = self.hub.open_connection(
                app,
                lambda socket_id: WebSocketConnection(
                    self.hub, admitted, socket_id, transport
                ),
            )
        except ConnectionRejected as exc:
            self.hub.tally.connections_rejected[exc.code] += 1
            app_id = app.id if app is not None else None
            # The hub logs quota rejections itself, throttled.
            if exc.code != ErrorCode.OVER_CONNECTION_QUOTA:
                logger.info(
                    "WebSocket from %s to %s rejected with %d%s: %s",
                    self.peer,
                    shorten(request.path),
                    exc.code,
                    f" for app {app_id}" if app_id is not None else "",
                    exc.message,
                    extra={"app_id": app_id},
                )
            self._reject_websocket(exc)
            return
        logger.debug(
            "WebSocket %s from %s, client %s %s",
            connection.socket_id,
            self.peer,
            request.params.get("client", "?"),
            request.params.get("version", "?"),
        )
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH_WATER)
        self.transport.set_protocol(connection)
        if rest:
            connection.data_received(rest)

    def _reject_websocket(self, exc: ConnectionRejected) -> None:
        assert self.transport is not None
        self._failed = True
        self.transport.write(
            encode_frame(OP_TEXT, messages.error(exc.code, exc.message).encode())
        )
        self.transport.write(encode_close(exc.code, exc.message))
        self.transport.set_protocol(_ClosingSocket(self.transport))
        asyncio.get_running_loop().call_later(
            REJECTED_SOCKET_GRACE, self.transport.close
        )


class _ClosingSocket(asyncio.Protocol):
    """A refused WebSocket: close the TCP connection when the peer answers."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.close()


def error_response(status: int, message: str) -> Response:
    """Build the JSON error answer ``{"error": message, "code": status}``."""
    return Response(status, messages.dumps({"error": message, "code": status}).encode())
