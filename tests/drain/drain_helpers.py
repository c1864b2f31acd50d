"""Helpers for the drain tests: many light WebSocket clients in one asyncio
process that record when and how the server closed them, and signals to the
server's own PID. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import signal
import struct
import subprocess
import time
from dataclasses import dataclass, field

from server_process import ServerProcess

WAIT_TIMEOUT = 10.0
"""Seconds that one wait for a server state may take on loopback."""
OPEN_CONCURRENCY = 100
"""Connections the test opens at a time."""

OP_TEXT = 0x1
OP_CLOSE = 0x8


def raise_open_file_limit(needed: int) -> None:
    """Raise this process's soft limit of open files to ``needed`` where the
    hard limit allows; server children started later inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Closing:
    """How the server ended one client's connection."""

    close_code: int | None = None
    """Code of the server's close frame; None when the socket ended without one."""
    error_code: int | None = None
    """Code of the last ``pusher:error`` before the close frame."""
    at: float | None = None
    """``time.monotonic()`` when the close frame arrived."""


@dataclass
class RawClient:
    """A minimal WebSocket client: it sends nothing after the handshake and
    reads frames until the server closes the connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    socket_id: str = ""
    closing: Closing = field(default_factory=Closing)

    async def read_frame(self) -> tuple[int, bytes]:
        """Read one unmasked server frame and return its opcode and payload."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def watch_close(self) -> None:
        """Read frames until the close frame, recording the close in ``closing``."""
        try:
            while True:
                opcode, payload = await self.read_frame()
                if opcode == OP_TEXT:
                    message = json.loads(payload)
                    if message.get("event") == "pusher:error":
                        self.closing.error_code = message["data"]["code"]
                elif opcode == OP_CLOSE:
                    self.closing.at = time.monotonic()
                    if len(payload) >= 2:
                        (self.closing.close_code,) = struct.unpack("!H", payload[:2])
                    # Echo the close frame (masked, empty payload) and hang up.
                    self.writer.write(b"\x88\x80" + os.urandom(4))
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.writer.close()


async def open_raw_client(port: int, key: str = "app-key") -> RawClient:
    """Open a WebSocket to ``/app/{key}`` and read ``connection_established``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    nonce = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /app/{key}?protocol=7&client=drain-test HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise AssertionError(f"WebSocket upgrade refused: {head[:200]!r}")
    client = RawClient(reader, writer)
    opcode, payload = await client.read_frame()
    message = json.loads(payload)
    if opcode != OP_TEXT or message["event"] != "pusher:connection_established":
        writer.close()
        raise AssertionError(f"expected connection_established, got {payload[:200]!r}")
    client.socket_id = json.loads(message["data"])["socket_id"]
    return client


async def open_raw_clients(port: int, count: int) -> list[RawClient]:
    """Open ``count`` clients, ``OPEN_CONCURRENCY`` at a time."""
    clients: list[RawClient] = []
    for start in range(0, count, OPEN_CONCURRENCY):
        size = min(OPEN_CONCURRENCY, count - start)
        batch = await asyncio.gather(*(open_raw_client(port) for _ in range(size)))
        clients.extend(batch)
    return clients


def send_signal(server: ServerProcess, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to the server's own PID."""
    os.kill(server.process.pid, signum)


def wait_exit(server: ServerProcess, timeout: float) -> int:
    """Wait for the server to exit and return its exit code."""
    try:
        return server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"server did not exit within {timeout} s\n{server.log_text()[-4000:]}"
        ) from None


class FallbackSession:
    """pusher-js's ``xhr_streaming`` transport, spoken over raw sockets: one
    stream that receives frames and one request per message sent."""

    def __init__(self, port: int, session_id: str, key: str = "app-key") -> None:
        self.port = port
        self.base = f"/pusher/app/{key}/123/{session_id}"
        self.received = b""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Start the stream; the server then sends ``o`` and
        ``connection_established``."""
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port
        )
        self._writer.write(
            self._request("xhr_streaming?protocol=7&client=js&version=8.4.0", b"")
        )

    async def send(self, message: dict[str, object]) -> int:
        """POST one Pusher message to ``xhr_send`` and return the HTTP status."""
        body = json.dumps([json.dumps(message)]).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(self._request("xhr_send", body))
            status_line = await asyncio.wait_for(reader.readline(), WAIT_TIMEOUT)
        finally:
            writer.close()
        return int(status_line.split()[1])

    async def read_until(self, marker: bytes) -> bytes:
        """Read the stream until ``marker`` has arrived; return all it sent."""
        assert self._reader is not None
        try:
            async with asyncio.timeout(WAIT_TIMEOUT):
                while marker not in self.received:
                    chunk = await self._reader.read(65536)
                    if not chunk:
                        break
                    self.received += chunk
        except TimeoutError:
            pass
        if marker not in self.received:
            raise AssertionError(
                f"{marker!r} not in the stream after {WAIT_TIMEOUT} s: "
                f"{self.received[-600:]!r}"
            )
        return self.received

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _request(self, target: str, body: bytes) -> bytes:
        head = (
            f"POST {self.base}/{target} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body
