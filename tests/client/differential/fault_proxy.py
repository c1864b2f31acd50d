"""A loopback TCP proxy between WebSocket clients and a server, with faults on demand.

Each accepted client connection becomes a `Link` to the upstream server. The
link forwards the HTTP upgrade as raw bytes and then whole WebSocket frames, so
a frame the test injects never lands inside a forwarded one. It also decodes
every text frame in both directions, so tests can check what the client sent
and received without asking the client.

Faults: inject a close frame or a text frame toward the client, drop the TCP
connection without a close frame (FIN or RST), stop forwarding from the server
(silence), and close the listener so that new connections are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable
from typing import Any

OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8

# Frames in these tests are small; a larger length means the stream is corrupt.
MAX_FRAME_BYTES = 1 << 20

# How long an injected close waits for the client's close frame in reply.
CLOSE_REPLY_TIMEOUT = 5.0

Message = dict[str, Any]


class Frame:
    """One WebSocket frame: its bytes as read, opcode and unmasked payload."""

    def __init__(self, raw: bytes, opcode: int, payload: bytes) -> None:
        self.raw = raw
        self.opcode = opcode
        self.payload = payload


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """Read one whole frame, masked (client to server) or not.

    Raises:
        asyncio.IncompleteReadError: the stream ended inside or before a frame.
        ValueError: the frame is longer than `MAX_FRAME_BYTES`.
    """
    head = await reader.readexactly(2)
    opcode = head[0] & 0x0F
    masked = bool(head[1] & 0x80)
    length = head[1] & 0x7F
    extended = b""
    if length == 126:
        extended = await reader.readexactly(2)
        length = int.from_bytes(extended, "big")
    elif length == 127:
        extended = await reader.readexactly(8)
        length = int.from_bytes(extended, "big")
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length} bytes is over {MAX_FRAME_BYTES}")
    mask = await reader.readexactly(4) if masked else b""
    payload = await reader.readexactly(length)
    raw = head + extended + mask + payload
    if masked:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return Frame(raw, opcode, payload)


def encode_server_frame(opcode: int, payload: bytes) -> bytes:
    """Encode an unfragmented, unmasked frame, as a server sends it."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", len(payload)) + payload
    return head + bytes([127]) + struct.pack("!Q", len(payload)) + payload


class Link:
    """One client connection through the proxy and its upstream connection."""

    def __init__(
        self,
        number: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.number = number
        self._client_reader, self._client_writer = client
        self._server_reader, self._server_writer = server
        self.to_client: list[Message] = []
        """Text frames the server sent, decoded, including those not forwarded."""
        self.to_server: list[Message] = []
        """Text frames the client sent, decoded."""
        self.silent = False
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._client_close_frame = asyncio.Event()
        # Held while a whole frame is written to the client, so that injected
        # frames land between forwarded ones.
        self._client_write_lock = asyncio.Lock()
        self._forwarding_to_client = True
        self._tasks = [
            asyncio.create_task(self._pump_to_server()),
            asyncio.create_task(self._pump_to_client()),
        ]

    # Faults

    def go_silent(self) -> None:
        """Stop forwarding anything the server sends; keep reading and recording it."""
        self.silent = True

    async def inject_text(self, message: Message) -> None:
        """Send the client a text frame holding `message` as compact JSON."""
        payload = json.dumps(message, separators=(",", ":")).encode()
        async with self._client_write_lock:
            self._client_writer.write(encode_server_frame(OPCODE_TEXT, payload))
            await self._client_writer.drain()

    async def inject_close(self, code: int, reason: str = "") -> None:
        """Close the WebSocket toward the client with `code`, as a server would.

        Nothing from the server is forwarded after the close frame. The TCP
        connections close once the client replies with its own close frame, or
        after `CLOSE_REPLY_TIMEOUT` seconds.
        """
        payload = struct.pack("!H", code) + reason.encode()
        async with self._client_write_lock:
            self._forwarding_to_client = False
            self._client_writer.write(encode_server_frame(OPCODE_CLOSE, payload))
            await self._client_writer.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_REPLY_TIMEOUT):
                await self._client_close_frame.wait()
        self.drop(reset=False)

    def drop(self, *, reset: bool) -> None:
        """Close both TCP connections with no close frame: FIN, or RST if `reset`."""
        if reset:
            client_socket = self._client_writer.get_extra_info("socket")
            if client_socket is not None:
                # A zero linger time makes close() send RST instead of FIN.
                client_socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self._client_writer.transport.abort()
        else:
            self._client_writer.close()
        self._server_writer.close()
        self.closed.set()

    # Observation

    async def wait_message(
        self,
        description: str,
        predicate: Callable[[Message], bool],
        *,
        to_client: bool = True,
        timeout: float,
    ) -> Message:
        """Return the first recorded message that matches, waiting if needed.

        Raise AssertionError naming `description` after `timeout` seconds.
        """
        messages = self.to_client if to_client else self.to_server
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for message in messages:
                        if predicate(message):
                            return message
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"link {self.number}: no {description} within {timeout} s; "
                f"to client: {self.to_client}; to server: {self.to_server}"
            ) from None

    # Forwarding

    async def _record(self, messages: list[Message], frame: Frame) -> None:
        if frame.opcode != OPCODE_TEXT:
            return
        try:
            message = json.loads(frame.payload)
        except ValueError:
            message = {"unparsed": frame.payload.decode(errors="replace")}
        async with self._changed:
            messages.append(message)
            self._changed.notify_all()

    async def _pump_to_server(self) -> None:
        try:
            head = await self._client_reader.readuntil(b"\r\n\r\n")
            self._server_writer.write(head)
            while True:
                frame = await read_frame(self._client_reader)
                await self._record(self.to_server, frame)
                if frame.opcode == OPCODE_CLOSE and not self._forwarding_to_client:
                    # The reply to an injected close: the server never sent one.
                    self._client_close_frame.set()
                    continue
                self._server_writer.write(frame.raw)
                await self._server_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError):
            pass
        finally:
            self._client_close_frame.set()
            self._end()

    async def _pump_to_client(self) -> None:
        try:
            head = await self._server_reader.readuntil(b"\r\n\r\n")
            async with self._client_write_lock:
                self._client_writer.write(head)
            while True:
                frame = await read_frame(self._server_reader)
                await self._record(self.to_client, frame)
                async with self._client_write_lock:
                    if self.silent or not self._forwarding_to_client:
                        continue
                    self._client_writer.write(frame.raw)
                    await self._client_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError):
            pass
        finally:
            if self._forwarding_to_client and not self.silent:
                self._end()

    def _end(self) -> None:
        """Close both sides with FIN once either side has ended its stream."""
        if self.closed.is_set():
            return
        self._client_writer.close()
        self._server_writer.close()
        self.closed.set()

    async def close(self) -> None:
        """Close both connections and wait for the forwarding tasks to end."""
        if not self.closed.is_set():
            self.drop(reset=False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class FaultProxy:
    """A proxy on 127.0.0.1 to one upstream server, keeping every link in order."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.links: list[Link] = []
        self.port = 0
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free port, or on the same port again after stop_listening()."""
        self._listener = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        """Close the listener, so that new connections are refused."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None

    @property
    def latest(self) -> Link:
        return self.links[-1]

    async def close(self) -> None:
        await self.stop_listening()
        for link in self.links:
            await link.close()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), timeout=5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        self.links.append(Link(len(self.links) + 1, (reader, writer), upstream))
