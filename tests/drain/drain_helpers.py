"""Helpers for the drain tests: many light WebSocket clients in one asyncio
process that record when and how the server closed them, and a webhook
receiver that keeps every event it is sent. Everything runs on 127.0.0.1.
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
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class EventReceiver:
    """A webhook receiver on 127.0.0.1 that keeps every event of every request
    it accepts; while ``failing`` is set it returns 503 and keeps nothing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing = False
        self.rejected = 0
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                receiver.receive(body["events"])
                status = 503 if receiver.failing else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/webhooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def receive(self, events: list[dict[str, Any]]) -> None:
        with self._changed:
            if self.failing:
                self.rejected += 1
            else:
                self.events.extend(events)
            self._changed.notify_all()

    def names(self) -> list[tuple[str, str]]:
        """Return (event name, channel) of every event kept so far."""
        with self._changed:
            return [(event["name"], event.get("channel", "")) for event in self.events]

    def wait_rejected(self, count: int) -> None:
        """Wait until ``count`` requests were rejected while failing."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: self.rejected >= count, timeout=WAIT_TIMEOUT
            ):
                raise AssertionError(
                    f"{self.rejected} webhook request(s) rejected within "
                    f"{WAIT_TIMEOUT} s, expected {count}"
                )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
