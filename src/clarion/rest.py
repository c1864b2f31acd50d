"""An asyncio client for the Pusher HTTP API, for an app's backend.

``RestClient`` publishes events and reads channel state on a Clarion server
(or any server with the Pusher HTTP API), and signs what a backend's auth
endpoints and webhook receiver need::

    async with RestClient(app_id="1", key="app-key", secret="app-secret") as rest:
        await rest.trigger("my-channel", "my-event", {"message": "hello"})
        print(await rest.channels(prefix="presence-", info=["user_count"]))

Requests are built and signed by ``clarion.protocol.backend`` with no I/O;
``HttpTransport`` sends them over HTTP/1.1 keep-alive connections, with no
dependency beyond the standard library.

Errors, all under ``RestError`` (itself a ``PusherError``)::

    RestError
     +-- RestStatusError      the server responded with a status other than 2xx
     +-- RestTransportError   connecting failed, timed out, or the response was
                              not valid HTTP/1.1 or JSON

Invalid arguments, such as an encrypted channel without a master key, raise
``ValueError`` before anything is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from clarion import __version__
from clarion.protocol.backend import (
    ApiRequest,
    ApiRequestBuilder,
    BatchEvent,
    Webhook,
    WebhookError,
    authenticate_user,
    authorize_channel,
    decode_master_key,
    verify_webhook,
)
from clarion.protocol.errors import PusherError

__all__ = [
    "BatchEvent",
    "HttpResponse",
    "HttpTransport",
    "RestClient",
    "RestError",
    "RestStatusError",
    "RestTransportError",
    "Webhook",
    "WebhookError",
]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:6001"
DEFAULT_TIMEOUT = 10.0
"""Seconds one request may take, from connecting to the last byte of the body."""
DEFAULT_MAX_CONNECTIONS = 10

# A keep-alive connection idle for longer is closed instead of reused. Servers
# close idle connections after their own timeout (Clarion: 30 s by default), and
# a request sent just as the server closes would fail, so stay well below it.
IDLE_CONNECTION_TTL = 5.0

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


# Errors


class RestError(PusherError):
    """An HTTP API request failed."""


class RestStatusError(RestError):
    """The server responded with a status other than 2xx.

    ``message`` is the server's error text: the ``error`` field of a JSON
    body (Clarion, soketi) or the body as text (Pusher).
    """

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        self.error = _error_text(body)
        super().__init__(f"{method} {path} failed with HTTP {status}: {self.error}")


class RestTransportError(RestError):
    """No valid HTTP response arrived: connection failure, timeout or bad response."""


def _error_text(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        fields = json.loads(text)
    except ValueError:
        return text or "(empty body)"
    if isinstance(fields, dict) and isinstance(fields.get("error"), str):
        return str(fields["error"])
    return text


# HTTP/1.1 transport


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response."""

    status: int
    reason: str
    headers: dict[str, str]
    """Header names in lower case; a repeated header keeps its last value."""
    body: bytes


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def is_reusable(self) -> bool:
        # The server's FIN shows up as EOF on the reader while the connection
        # sits idle, so a connection closed by the server is never reused.
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < IDLE_CONNECTION_TTL
        )

    def close(self) -> None:
        self.writer.close()


class HttpTransport:
    """Sends ``ApiRequest`` objects to one server over HTTP/1.1.

    Up to ``max_connections`` requests run at once, each on its own connection.
    Finished connections are kept for reuse unless the response carries
    ``Connection: close``. ``url`` is ``http://`` or ``https://`` with a host
    and optional port, and no path, because the signed API paths must be the
    paths the server receives.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Invalid server URL {url!r}: expected http://HOST[:PORT]")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"Invalid server URL {url!r}: it must have no path, query or fragment"
            )
        if parts.username is not None:
            raise ValueError(f"Invalid server URL {url!r}: it must have no user info")
        if max_connections < 1:
            raise ValueError(
                f"max_connections must be at least 1, got {max_connections}"
            )
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._host_header = parts.netloc
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def send(self, request: ApiRequest) -> HttpResponse:
        """Send ``request`` and return the response, whatever its status.

        Raises:
            RestTransportError: connecting failed, ``timeout`` seconds passed,
                the connection broke, or the response is not valid HTTP/1.1.
        """
        if self._closed:
            raise RestTransportError("The HTTP client is closed")
        description = f"{request.method} {self.url}{request.path}"
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                return await self._exchange(request, description)
        except TimeoutError:
            raise RestTransportError(
                f"{description} timed out after {self.timeout:g} s"
            ) from None

    async def aclose(self) -> None:
        """Close idle connections; connections in use close when their request ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    async def _exchange(self, request: ApiRequest, description: str) -> HttpResponse:
        connection = await self._acquire(description)
        try:
            connection.writer.write(self._encode(request))
            await connection.writer.drain()
            response, keep_alive = await _read_response(connection.reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            connection.close()
            # NOTE: a reused connection that the server closes just as the
            # request leaves also ends up here. The request is not retried,
            # because the server may have processed it.
            raise RestTransportError(
                f"{description} failed: {_describe_failure(exc)}"
            ) from exc
        except BaseException:
            connection.close()
            raise
        if keep_alive and not self._closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return response

    async def _acquire(self, description: str) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.is_reusable():
                return connection
            connection.close()
        try:
            reader, writer = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl, limit=MAX_HEADER_BYTES
            )
        except OSError as exc:
            raise RestTransportError(
                f"{description} failed: cannot connect to {self._host}:{self._port}: "
                f"{_describe_failure(exc)}"
            ) from exc
        return _Connection(reader, writer)

    def _encode(self, request: ApiRequest) -> bytes:
        lines = [
            f"{request.method} {request.target} HTTP/1.1",
            f"Host: {self._host_header}",
            f"User-Agent: clarion-rest/{__version__}",
            "Accept: application/json",
        ]
        if request.body or request.method == "POST":
            lines += [
                "Content-Type: application/json",
                f"Content-Length: {len(request.body)}",
            ]
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + request.body


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the server closed the connection before a complete response"
    if isinstance(exc, asyncio.LimitOverrunError):
        return f"the response headers are over {MAX_HEADER_BYTES} bytes"
    return str(exc) or type(exc).__name__


async def _read_response(reader: asyncio.StreamReader) -> tuple[HttpResponse, bool]:
    """Read one response; return it and whether the connection may be reused.

    Raises:
        RestTransportError: the response is not valid HTTP/1.1.
        asyncio.IncompleteReadError: the stream ended early.
    """
    while True:
        status_line, headers = await _read_head(reader)
        version, status, reason = _parse_status_line(status_line)
        # An interim 1xx response precedes the real one.
        if not 100 <= status < 200:
            break
    connection_tokens = headers.get("connection", "").lower()
    keep_alive = (
        "close" not in connection_tokens
        if version == "HTTP/1.1"
        else "keep-alive" in connection_tokens
    )
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(_content_length(headers["content-length"]))
    elif status in (204, 304):
        body = b""
    else:
        body = await _read_until_eof(reader)
        keep_alive = False
    return HttpResponse(status, reason, headers, body), keep_alive


async def _read_until_eof(reader: asyncio.StreamReader) -> bytes:
    """Read a body without framing, which runs until the server closes."""
    chunks: list[bytes] = []
    size_total = 0
    while chunk := await reader.read(64 * 1024):
        size_total += len(chunk)
        if size_total > MAX_BODY_BYTES:
            raise RestTransportError(f"Response body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise RestTransportError(f"Invalid HTTP response header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _parse_status_line(line: str) -> tuple[str, int, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or len(code) != 3:
        raise RestTransportError(f"Invalid HTTP status line: {line!r}")
    return version, int(code), reason


def _content_length(raw: str) -> int:
    if not raw.isdigit():
        raise RestTransportError(f"Invalid Content-Length header: {raw!r}")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise RestTransportError(
            f"Response body of {length} bytes is over {MAX_BODY_BYTES} bytes"
        )
    return length


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size_total = 0
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise RestTransportError(
                f"Invalid chunk size line: {size_line!r}"
            ) from None
        if size == 0:
            break
        size_total += size
        if size_total > MAX_BODY_BYTES:
            raise RestTransportError(f"Response body is over {MAX_BODY_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    # Trailer fields, if any, end with an empty line.
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(chunks)


# The client


class RestClient:
    """An app's client for the HTTP API, and the signing helpers a backend needs.

    ``encryption_master_key_base64`` (32 bytes, base64) is needed only for
    private-encrypted channels: it authorizes them and seals the events
    published to them, which requires PyNaCl. ``ssl_context`` replaces the
    default certificate checks of an ``https://`` URL. Every API method raises
    ``RestStatusError`` on a status other than 2xx and ``RestTransportError``
    when no valid response arrives. Use it as an async context manager, or
    call ``aclose()``.
    """

    def __init__(
        self,
        *,
        app_id: str,
        key: str,
        secret: str,
        url: str = DEFAULT_URL,
        encryption_master_key_base64: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
        transport: HttpTransport | None = None,
    ) -> None:
        self.app_id = app_id
        self.key = key
        self._secret = secret
        self._master_key = (
            decode_master_key(encryption_master_key_base64)
            if encryption_master_key_base64 is not None
            else None
        )
        self.requests = ApiRequestBuilder(
            app_id=app_id,
            key=key,
            secret=secret,
            encryption_master_key=self._master_key,
        )
        self.transport = transport or HttpTransport(
            url,
            timeout=timeout,
            max_connections=max_connections,
            ssl_context=ssl_context,
        )

    def __repr__(self) -> str:
        return (
            f"RestClient(app_id={self.app_id!r}, key={self.key!r}, "
            f"url={self.transport.url!r})"
        )

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    # Events

    async def trigger(
        self,
        channels: str | Sequence[str],
        event: str,
        data: Any,
        *,
        socket_id: str | None = None,
        info: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Publish ``event`` on one or more channels.

        ``data`` is sent as it is when it is a string, else as compact JSON.
        ``socket_id`` excludes that connection from delivery. ``info`` names
        channel attributes (``user_count``, ``subscription_count``) to return
        under ``"channels"``; without it the server returns ``{}``.
        """
        request = self.requests.trigger(
            channels, event, data, socket_id=socket_id, info=info
        )
        return await self._send(request)

    async def trigger_batch(self, events: Sequence[BatchEvent]) -> dict[str, Any]:
        """Publish up to 10 events in one request; the server takes all or none."""
        return await self._send(self.requests.trigger_batch(events))

    async def send_to_user(self, user_id: str, event: str, data: Any) -> None:
        """Send ``event`` to every connection signed in as ``user_id``."""
        await self._send(self.requests.send_to_user(user_id, event, data))

    # Channels and users

    async def channels(
        self, *, prefix: str | None = None, info: Iterable[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """Return the occupied channels, by name, with the ``info`` attributes.

        ``info=["user_count"]`` needs a ``prefix`` starting with ``presence-``.
        """
        body = await self._send(self.requests.channels(prefix=prefix, info=info))
        channels = body.get("channels")
        if not isinstance(channels, dict):
            raise RestTransportError(f"Response has no 'channels' object: {body}")
        return channels

    async def channel_info(
        self, channel: str, *, info: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Return ``occupied`` and the ``info`` attributes of one channel.

        ``info`` may name ``user_count`` (presence), ``subscription_count`` and
        ``cache`` (cache channels).
        """
        return await self._send(self.requests.channel(channel, info=info))

    async def presence_users(self, channel: str) -> list[str]:
        """Return the ids of the users in a presence channel."""
        body = await self._send(self.requests.users(channel))
        users = body.get("users")
        if not isinstance(users, list):
            raise RestTransportError(f"Response has no 'users' array: {body}")
        return [str(user["id"]) for user in users if isinstance(user, dict)]

    async def terminate_user_connections(self, user_id: str) -> None:
        """Close every connection signed in as ``user_id``; they get code 4009."""
        await self._send(self.requests.terminate_user_connections(user_id))

    # Signing for the app's own endpoints

    def authorize_channel(
        self,
        socket_id: str,
        channel: str,
        user: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Return the auth endpoint's JSON body allowing one subscription.

        ``user`` (``{"user_id": ..., "user_info": ...}``) is required for a
        presence channel unless the connection has signed in.
        """
        return authorize_channel(
            key=self.key,
            secret=self._secret,
            socket_id=socket_id,
            channel=channel,
            user=user,
            encryption_master_key=self._master_key,
        )

    def authenticate_user(
        self, socket_id: str, user: Mapping[str, Any]
    ) -> dict[str, str]:
        """Return the user authentication endpoint's JSON body for sign-in.

        ``user`` needs a string ``id``; ``user_info`` and ``watchlist`` are
        optional.
        """
        return authenticate_user(
            key=self.key, secret=self._secret, socket_id=socket_id, user=user
        )

    def verify_webhook(
        self, body: bytes, headers: Mapping[str, str], *, check_time: bool = True
    ) -> Webhook:
        """Check a webhook's key and signature headers and decode its events.

        With ``check_time``, a webhook created more than 300 s from now is
        rejected as a possible replay.

        Raises:
            WebhookError: naming the header or field that failed.
        """
        return verify_webhook(
            key=self.key,
            secret=self._secret,
            body=body,
            headers=headers,
            now=time.time() if check_time else None,
        )

    # Sending

    async def _send(self, request: ApiRequest) -> dict[str, Any]:
        response = await self.transport.send(request)
        if not 200 <= response.status < 300:
            logger.debug(
                "HTTP API %s %s returned status %d",
                request.method,
                request.path,
                response.status,
            )
            raise RestStatusError(
                request.method, request.path, response.status, response.body
            )
        try:
            body = json.loads(response.body) if response.body.strip() else {}
        except ValueError:
            raise RestTransportError(
                f"{request.method} {request.path} returned HTTP {response.status} "
                f"with a body that is not JSON: {response.body[:200]!r}"
            ) from None
        if not isinstance(body, dict):
            raise RestTransportError(
                f"{request.method} {request.path} returned JSON that is not "
                f"an object: {body!r}"
            )
        return body
