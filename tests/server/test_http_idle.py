"""HTTP connections that never complete a request are closed after a timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from websockets.asyncio.client import connect

from server_process import ServerProcess

IDLE_CONFIG = """
[server]
http_idle_timeout = 1

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
"""


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Return what the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), timeout)


async def test_partial_request_closed_after_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A request whose headers never end is dropped after http_idle_timeout."""
    server = start_server(IDLE_CONFIG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /apps/1/channels HTTP/1.1\r\nHost: x\r\n")
    await writer.drain()
    received = await read_until_closed(reader, timeout=5)
    writer.close()
    assert received == b""
    assert "no complete request within 1 s" in server.log_text()


async def test_silent_connection_closed_after_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A connection that sends nothing at all is dropped after the timeout."""
    server = start_server(IDLE_CONFIG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    received = await read_until_closed(reader, timeout=5)
    writer.close()
    assert received == b""


async def test_idle_keepalive_closed_after_answer(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A keep-alive connection is answered, then dropped once it idles."""
    server = start_server(IDLE_CONFIG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    received = await read_until_closed(reader, timeout=5)
    writer.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\nOK")


async def test_websocket_outlives_http_idle_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """The HTTP idle timeout does not apply after a WebSocket upgrade."""
    server = start_server(IDLE_CONFIG)
    async with connect(server.ws_url) as websocket:
        established = json.loads(await websocket.recv())
        await asyncio.sleep(2.5)
        await websocket.send(json.dumps({"event": "pusher:ping", "data": {}}))
        reply = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert established["event"] == "pusher:connection_established"
    assert reply == {"event": "pusher:pong", "data": {}}
