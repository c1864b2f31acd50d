"""Malformed, unknown and oversized inbound WebSocket frames."""

from __future__ import annotations

import pytest
from clarion_e2e import PING_TEXT, PONG_TEXT, error_frame
from clarion_launch import ClientOpener, RunningServer

INVALID_FORMAT = error_frame(None, "Invalid message format")
# Default max_frame_bytes: inbound messages above this many bytes close with 1009.
MAX_FRAME_BYTES = 262144


def padded_ping(size: int) -> str:
    """Build a pusher:ping frame padded with an ignored key to `size` bytes."""
    prefix = '{"event":"pusher:ping","data":{},"pad":"'
    suffix = '"}'
    return prefix + "p" * (size - len(prefix) - len(suffix)) + suffix


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "[]",
        '"a string"',
        "42",
        "null",
        "{}",
        '{"event":5}',
        '{"event":null,"data":{}}',
        '{"data":{}}',
    ],
)
async def test_invalid_message_format_error(
    shared_server: RunningServer, clients: ClientOpener, text: str
) -> None:
    """Frames that are not a JSON object with a string event get the format error."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text(text)
    frame = await client.recv_frame()
    assert frame.text == INVALID_FORMAT


async def test_invalid_json_keeps_socket(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """After invalid JSON the socket stays open."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text("{not json")
    await client.recv_frame()
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_unknown_event_exact_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """An unknown event name is reported by name and the socket stays open."""
    client = await clients.established(shared_server.ws_url())
    await client.send_json({"event": "hello", "data": {}})
    frame = await client.recv_frame()
    assert frame.text == error_frame(
        None, "Unsupported event received on socket: hello"
    )
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_binary_json_frame_treated_as_text(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A binary frame holding UTF-8 JSON is handled like a text frame."""
    client = await clients.established(shared_server.ws_url())
    await client.send_bytes(PING_TEXT.encode())
    frame = await client.recv_frame()
    assert frame.text == PONG_TEXT


async def test_binary_garbage_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A binary frame that is not UTF-8 JSON gets pusher:error code null."""
    client = await clients.established(shared_server.ws_url())
    await client.send_bytes(b"\xff\xfe\x00garbage\x80")
    frame = await client.recv_frame()
    assert frame.event == "pusher:error"
    assert list(frame.message) == ["event", "data"]
    assert frame.data["code"] is None
    assert isinstance(frame.data["message"], str)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_oversized_frame_closes_1009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A frame one byte over max_frame_bytes closes the socket with 1009."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text(padded_ping(MAX_FRAME_BYTES + 1))
    close_code, _reason = await client.wait_closed()
    assert close_code == 1009


async def test_frame_at_limit_accepted(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A frame of exactly max_frame_bytes is processed normally."""
    client = await clients.established(shared_server.ws_url())
    text = padded_ping(MAX_FRAME_BYTES)
    assert len(text.encode()) == MAX_FRAME_BYTES
    await client.send_text(text)
    frame = await client.recv_frame()
    assert frame.text == PONG_TEXT
