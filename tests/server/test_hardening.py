"""Regression tests for inputs that once stalled, crashed or confused the server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct

from clarion_e2e import ApiClient, encode_query, http_status, send_raw_http
from websockets.asyncio.client import connect

from server_process import ServerProcess


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    """Encode one client frame with a random mask."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = bytes((first_byte, 0x80 | length))
    else:
        header = struct.pack("!BBH", first_byte, 0x80 | 126, length)
    return header + mask + masked


async def open_raw_websocket(
    server: ServerProcess,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def read_close_code(reader: asyncio.StreamReader) -> int:
    """Skip text frames until a close frame arrives; return its code."""
    while True:
        first, second = await asyncio.wait_for(reader.readexactly(2), 5)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big")


async def test_fragment_flood_closed_1008(server: ServerProcess) -> None:
    """A message split into thousands of empty fragments is closed with 1008."""
    reader, writer = await open_raw_websocket(server)
    flood = masked_frame(0x01, b"") + masked_frame(0x00, b"") * 5000
    writer.write(flood)
    await writer.drain()
    code = await read_close_code(reader)
    writer.close()
    assert code == 1008


async def test_lone_surrogate_keeps_later_messages(server: ServerProcess) -> None:
    """A frame with a lone surrogate escape is rejected; the next frame works."""
    async with connect(server.ws_url) as websocket:
        await websocket.recv()
        await websocket.send('{"event":"x\\ud800"}')
        rejected = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.send('{"event":"pusher:subscribe","data":{"channel":"after"}}')
        accepted = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert rejected["data"] == {"code": None, "message": "Invalid message format"}
    assert accepted["event"] == "pusher_internal:subscription_succeeded"
    assert "Traceback" not in server.log_text()


async def test_nan_client_event_rejected(server: ServerProcess) -> None:
    """NaN is no JSON: such a client event is rejected, never forwarded."""
    async with connect(server.ws_url) as websocket:
        await websocket.recv()
        await websocket.send('{"event":"client-x","channel":"private-a","data":NaN}')
        reply = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert reply["data"]["message"] == "Invalid message format"


async def test_huge_protocol_number_gets_4007(server: ServerProcess) -> None:
    """A protocol parameter of thousands of digits gets 4007, not a dropped socket."""
    url = f"ws://{server.host}:{server.port}/app/app-key?protocol={'7' * 5000}"
    async with connect(url, max_size=2**20) as websocket:
        error = json.loads(await asyncio.wait_for(websocket.recv(), 5))
    assert error["data"]["code"] == 4007


def test_huge_timestamp_gets_401(server: ServerProcess) -> None:
    """An auth_timestamp of hundreds of digits is a 401, not a server error."""
    api = ApiClient(server.host, server.port, "1", "app-key", "app-secret")
    body = b'{"name":"e","channel":"c","data":"d"}'
    params = api.signed_params("POST", "/apps/1/events", body)
    params["auth_timestamp"] = "9" * 400
    response = api.send("POST", "/apps/1/events", params, body)
    assert response.status == 401
    assert "Traceback" not in server.log_text()


def test_head_answer_has_no_body(server: ServerProcess) -> None:
    """HEAD gets headers only, so a keep-alive request after it parses cleanly."""
    raw = send_raw_http(
        server.host,
        server.port,
        b"HEAD /up HTTP/1.1\r\nHost: x\r\n\r\nGET /up HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
    )
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nOK")


def test_valid_request_before_garbage_answered(server: ServerProcess) -> None:
    """A good request pipelined before a malformed one is answered and published."""
    api = ApiClient(server.host, server.port, "1", "app-key", "app-secret")
    body = b'{"name":"e","channel":"c","data":"d"}'
    query = encode_query(api.signed_params("POST", "/apps/1/events", body))
    request = (
        f"POST /apps/1/events?{query} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((server.host, server.port), timeout=5) as client:
        client.sendall(request + b"GARBAGE\r\n\r\n")
        raw = b""
        while chunk := client.recv(65536):
            raw += chunk
    first, _, rest = raw.partition(b"HTTP/1.1 400")
    assert http_status(first) == 200
    assert rest
