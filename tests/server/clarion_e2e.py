"""Black-box helpers for the wire-level tests: a JSON WebSocket client and a
signed HTTP API client, both aimed at a Clarion server on loopback.

The signing code follows the Pusher HTTP API rules: HMAC-SHA256 over
``METHOD\\nPATH\\nQUERY`` where QUERY contains every parameter except
``auth_signature``, sorted by key and not URL-escaped. It is separate from any
SDK so that tests can build deliberately wrong requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pusher
from pusher.http import process_response
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Seconds to wait for a frame that the server is expected to send.
RECEIVE_TIMEOUT = 3.0

PONG_TEXT = '{"event":"pusher:pong","data":{}}'
PING_TEXT = '{"event":"pusher:ping","data":{}}'
EMPTY_BODY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def compact(value: Any) -> str:
    """Encode a value as compact JSON, the encoding the server emits."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def hmac_sha256_hex(secret: str, message: str) -> str:
    """Return the lowercase hex HMAC-SHA256 of a UTF-8 message."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256)
    return digest.hexdigest()


def channel_auth(
    key: str,
    secret: str,
    socket_id: str,
    channel: str,
    channel_data: str | None = None,
) -> str:
    """Build the `auth` token for a private, encrypted or presence channel."""
    parts = [socket_id, channel]
    if channel_data is not None:
        parts.append(channel_data)
    return f"{key}:{hmac_sha256_hex(secret, ':'.join(parts))}"


def signin_auth(key: str, secret: str, socket_id: str, user_data: str) -> str:
    """Build the `auth` token of `pusher:signin` for an exact user_data string."""
    return f"{key}:{hmac_sha256_hex(secret, f'{socket_id}::user::{user_data}')}"


@dataclass(frozen=True)
class Frame:
    """One text frame received from the server."""

    text: str

    @property
    def message(self) -> Any:
        return json.loads(self.text)

    @property
    def event(self) -> Any:
        return self.message.get("event")

    @property
    def data(self) -> Any:
        return self.message.get("data")


class WireClient:
    """A WebSocket connection to the server with JSON frame helpers."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.socket_id: str | None = None
        self.activity_timeout: int | None = None

    async def recv_frame(self, timeout: float = RECEIVE_TIMEOUT) -> Frame:
        """Wait for the next frame, failing on a timeout or a binary frame."""
        try:
            message = await asyncio.wait_for(self.connection.recv(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no frame from the server within {timeout} s"
            ) from None
        if isinstance(message, bytes):
            raise AssertionError(f"server sent a binary frame: {message[:80]!r}")
        return Frame(message)

    async def send_json(self, message: Any) -> None:
        await self.connection.send(compact(message))

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def send_bytes(self, payload: bytes) -> None:
        await self.connection.send(payload)

    async def ping_barrier(self) -> Frame:
        """Send `pusher:ping` and return the next frame.

        The server handles one connection's frames in order, so any frame it
        queued for this socket before the ping arrives ahead of the pong. A
        test asserting that this returns the pong proves nothing else came.
        """
        await self.send_text(PING_TEXT)
        return await self.recv_frame()

    async def subscribe(
        self,
        channel: str,
        auth: str | None = None,
        channel_data: str | None = None,
    ) -> Frame:
        """Send `pusher:subscribe` and return the server's reply frame."""
        data: dict[str, str] = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.send_json({"event": "pusher:subscribe", "data": data})
        return await self.recv_frame()

    async def unsubscribe(self, channel: str) -> None:
        await self.send_json(
            {"event": "pusher:unsubscribe", "data": {"channel": channel}}
        )

    async def signin(self, user_data: str, auth: str) -> Frame:
        """Send `pusher:signin` and return the server's reply frame."""
        await self.send_json(
            {"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}
        )
        return await self.recv_frame()

    async def wait_closed(
        self, timeout: float = RECEIVE_TIMEOUT
    ) -> tuple[int | None, str | None]:
        """Wait until the server closes the socket and return (code, reason).

        Frames still queued before the close frame are discarded.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.connection.recv()
        except ConnectionClosed:
            pass
        except TimeoutError:
            raise AssertionError(
                f"server did not close the socket within {timeout} s"
            ) from None
        return self.connection.close_code, self.connection.close_reason

    async def close(self) -> None:
        await self.connection.close()


async def open_socket(url: str) -> WireClient:
    """Open a WebSocket without reading anything from it."""
    connection = await connect(
        url,
        ping_interval=None,
        compression=None,
        max_size=None,
        open_timeout=5,
        close_timeout=2,
    )
    return WireClient(connection)


async def open_established(url: str) -> WireClient:
    """Open a WebSocket and read `pusher:connection_established`."""
    client = await open_socket(url)
    frame = await client.recv_frame()
    if frame.event != "pusher:connection_established":
        await client.close()
        raise AssertionError(f"expected connection_established, got {frame.text}")
    handshake = json.loads(frame.data)
    client.socket_id = handshake["socket_id"]
    client.activity_timeout = handshake["activity_timeout"]
    return client


async def sign_in(
    client: WireClient, key: str, secret: str, user: dict[str, Any]
) -> Frame:
    """Sign `client` in with a correctly signed compact JSON of `user`.

    Returns the server's reply frame, `pusher:signin_success` on success.
    """
    user_data = compact(user)
    auth = signin_auth(key, secret, client.socket_id or "", user_data)
    return await client.signin(user_data, auth)


def error_frame(code: int | None, message: str, channel: str | None = None) -> str:
    """Build the exact text of a `pusher:error` frame."""
    envelope: dict[str, Any] = {"event": "pusher:error"}
    if channel is not None:
        envelope["channel"] = channel
    envelope["data"] = {"code": code, "message": message}
    return compact(envelope)


def subscription_error_frame(channel: str, kind: str, error: str, status: int) -> str:
    """Build the exact text of a `pusher:subscription_error` frame."""
    return compact(
        {
            "event": "pusher:subscription_error",
            "channel": channel,
            "data": {"type": kind, "error": error, "status": status},
        }
    )


def succeeded_frame(channel: str, data: str = "{}") -> str:
    """Build the exact text of `pusher_internal:subscription_succeeded`."""
    return compact(
        {
            "event": "pusher_internal:subscription_succeeded",
            "channel": channel,
            "data": data,
        }
    )


def event_frame(event: str, channel: str, data: str, user_id: str | None = None) -> str:
    """Build the exact text of an application or client event frame."""
    envelope = {"event": event, "channel": channel, "data": data}
    if user_id is not None:
        envelope["user_id"] = user_id
    return compact(envelope)


def signin_success_frame(user_data: str) -> str:
    """Build the exact text of `pusher:signin_success` echoing `user_data`."""
    return compact({"event": "pusher:signin_success", "data": {"user_data": user_data}})


def watchlist_frame(online: list[str], offline: list[str]) -> str:
    """Build the exact text of `pusher_internal:watchlist_events`.

    An element whose id list is empty is left out, as the server does.
    """
    events = []
    if online:
        events.append({"name": "online", "user_ids": online})
    if offline:
        events.append({"name": "offline", "user_ids": offline})
    data = compact({"events": events})
    return compact({"event": "pusher_internal:watchlist_events", "data": data})


def cache_miss_frame(channel: str) -> str:
    """Build the exact text of `pusher:cache_miss`, which has no data field."""
    return compact({"event": "pusher:cache_miss", "channel": channel})


def subscription_count_frame(channel: str, count: int) -> str:
    """Build the exact text of `pusher_internal:subscription_count`."""
    data = compact({"subscription_count": count})
    return event_frame("pusher_internal:subscription_count", channel, data)


# HTTP API


def md5_hex(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def string_to_sign(method: str, path: str, params: dict[str, str]) -> str:
    """Build the Pusher HTTP string to sign from unescaped query parameters."""
    pairs = sorted(
        (key.lower(), value) for key, value in params.items() if key != "auth_signature"
    )
    query = "&".join(f"{key}={value}" for key, value in pairs)
    return f"{method}\n{path}\n{query}"


def encode_query(params: dict[str, str]) -> str:
    """Percent-encode query parameters, keeping commas readable."""
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=",")


@dataclass
class ApiResponse:
    """Status, headers and raw body of one HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApiClient:
    """A signing HTTP client for one app of the server under test."""

    host: str
    port: int
    app_id: str
    key: str
    secret: str
    timeout: float = 5.0
    clock: Callable[[], float] = field(default=time.time)

    def signed_params(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        query: dict[str, str] | None = None,
        *,
        timestamp: int | None = None,
        body_md5: bool | None = None,
        signing_path: str | None = None,
    ) -> dict[str, str]:
        """Return the full query, auth parameters and signature included.

        `body_md5=None` adds the MD5 only for a non-empty body (the Node SDK
        habit). True always adds it (the Python SDK habit), and False never does.
        `signing_path` signs a different path than the one requested.
        """
        params = dict(query or {})
        params["auth_key"] = self.key
        params["auth_timestamp"] = str(
            int(self.clock()) if timestamp is None else timestamp
        )
        params["auth_version"] = "1.0"
        if body_md5 or (body_md5 is None and body):
            params["body_md5"] = md5_hex(body)
        text = string_to_sign(method, signing_path or path, params)
        params["auth_signature"] = hmac_sha256_hex(self.secret, text)
        return params

    def send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> ApiResponse:
        """Send one request exactly as given (no signing) and read the reply."""
        target = path if not params else f"{path}?{encode_query(params)}"
        all_headers = {"Content-Type": "application/json"} if body else {}
        all_headers.update(headers or {})
        owned = connection is None
        conn = connection or http.client.HTTPConnection(
            self.host, self.port, timeout=self.timeout
        )
        try:
            conn.request(method, target, body=body or None, headers=all_headers)
            response = conn.getresponse()
            payload = response.read()
            response_headers = {k.lower(): v for k, v in response.getheaders()}
            return ApiResponse(response.status, response_headers, payload)
        finally:
            if owned:
                conn.close()

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        query: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
        **signing: Any,
    ) -> ApiResponse:
        """Sign and send one request. `signing` goes to `signed_params`."""
        params = self.signed_params(method, path, body, query, **signing)
        return self.send(method, path, params, body, connection=connection)

    def post_json(self, path: str, payload: Any, **signing: Any) -> ApiResponse:
        body = compact(payload).encode()
        return self.signed("POST", path, body, **signing)

    def get(self, path: str, query: dict[str, str] | None = None) -> ApiResponse:
        return self.signed("GET", path, query=query)

    # Endpoint shortcuts take paths relative to /apps/{app_id}.

    def app_path(self, suffix: str) -> str:
        return f"/apps/{self.app_id}{suffix}"

    async def trigger(self, payload: dict[str, Any], **signing: Any) -> ApiResponse:
        """POST /events from a worker thread, so the event loop keeps reading."""
        path = self.app_path("/events")
        return await asyncio.to_thread(self.post_json, path, payload, **signing)

    async def batch(self, items: list[dict[str, Any]]) -> ApiResponse:
        path = self.app_path("/batch_events")
        return await asyncio.to_thread(self.post_json, path, {"batch": items})

    async def get_json(
        self, suffix: str, query: dict[str, str] | None = None
    ) -> ApiResponse:
        return await asyncio.to_thread(self.get, self.app_path(suffix), query)


class StdlibBackend:
    """Transport for the official `pusher` SDK that sends through http.client.

    The SDK signs each request itself and this backend only delivers it, so the
    SDK's exact query (including `body_md5` on GET) reaches the server.
    """

    def __init__(self, client: Any, **options: Any) -> None:
        self.client = client

    def send_request(self, request: Any) -> Any:
        conn = http.client.HTTPConnection(
            self.client.host, self.client.port, timeout=self.client.timeout
        )
        try:
            conn.request(
                request.method,
                request.signed_path,
                body=request.body or None,
                headers=request.headers,
            )
            response = conn.getresponse()
            body = response.read().decode()
        finally:
            conn.close()
        return process_response(response.status, body)


def sdk_client(api: ApiClient) -> pusher.Pusher:
    """Return the official Python SDK pointed at the server under test."""
    return pusher.Pusher(
        app_id=api.app_id,
        key=api.key,
        secret=api.secret,
        host=api.host,
        port=api.port,
        ssl=False,
        backend=StdlibBackend,
    )


def send_raw_http(host: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Write raw bytes to the HTTP port and return everything read back.

    A server that closes the socket while the request is still being written
    is normal for oversized bodies, so a broken pipe stops the write but the
    reply (if any) is still read.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if _http_response_complete(b"".join(chunks)):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def _http_response_complete(data: bytes) -> bool:
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value.strip())
    return False


def http_status(raw_response: bytes) -> int | None:
    """Return the status code of a raw HTTP response, or None if there is none."""
    status_line = raw_response.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return None
    return int(status_line[1])


async def wait_for_log(
    log_path: Path, start: int, pattern: Callable[[str], bool], timeout: float = 3.0
) -> list[str]:
    """Poll the server log until a line written after byte `start` matches.

    Returns the matching lines (empty if none appeared within `timeout`).
    """
    deadline = time.monotonic() + timeout
    while True:
        with log_path.open("rb") as log_file:
            log_file.seek(start)
            text = log_file.read().decode("utf-8", errors="replace")
        matches = [line for line in text.splitlines() if pattern(line)]
        if matches or time.monotonic() >= deadline:
            return matches
        await asyncio.sleep(0.05)


async def poll_until(
    probe: Callable[[], Any], accept: Callable[[Any], bool], timeout: float = 3.0
) -> Any:
    """Call the blocking `probe` in a thread until `accept` approves its result.

    Returns the last result either way, so the caller's assert shows it.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(probe)
        if accept(result) or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.02)
