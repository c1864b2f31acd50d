"""RFC 6455 framing: the opening handshake, frame encoding and frame parsing.

Only what a Pusher server needs: unfragmented server frames, no extensions,
masked client frames (RFC 6455 section 5.3 requires the mask).
"""

from __future__ import annotations

import base64
import hashlib
import struct

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameError",
    "OutboundMessage",
    "accept_key",
    "encode_close",
    "encode_frame",
    "frame_payload_size",
    "frame_size",
    "read_frames",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_MESSAGE_TOO_BIG = 1009

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_CLOSE_REASON_BYTES = 123


def accept_key(client_key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (section 4.2.2)."""
    digest = hashlib.sha1(client_key.encode() + _ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final, unmasked frame as the server sends it."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def frame_payload_size(frame: bytes) -> int:
    """Return the payload length of a frame built by ``encode_frame``."""
    length_code = frame[1]
    if length_code < 126:
        return len(frame) - 2
    if length_code == 126:
        return len(frame) - 4
    return len(frame) - 10


def encode_close(code: int, reason: str) -> bytes:
    """Encode a close frame, cutting the reason to 123 UTF-8 bytes."""
    raw = reason.encode()[:_MAX_CLOSE_REASON_BYTES]
    # Cutting may split a character; drop the partial bytes.
    raw = raw.decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + raw)


class FrameError(Exception):
    """The peer broke RFC 6455 framing; the connection closes with ``close_code``."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(length, "little")


def read_frames(
    buffer: bytes, max_size: int
) -> tuple[list[tuple[bool, int, bytes]], int]:
    """Parse the complete client frames at the start of ``buffer``.

    Returns ``(frames, consumed)``: each frame is ``(fin, opcode, payload)``
    with the payload unmasked, and ``consumed`` is how many bytes of ``buffer``
    they took; the rest is an incomplete frame to keep for the next read.

    Raises:
        FrameError: 1002 for a framing violation, 1009 for a frame whose payload
        is larger than ``max_size`` bytes.
    """
    frames: list[tuple[bool, int, bytes]] = []
    offset = 0
    end = len(buffer)
    while end - offset >= 2:
        first, second = buffer[offset], buffer[offset + 1]
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        if first & 0x70:
            raise FrameError(
                CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension"
            )
        if not second & 0x80:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = second & 0x7F
        position = offset + 2
        if length == 126:
            if end - position < 2:
                break
            (length,) = struct.unpack_from("!H", buffer, position)
            position += 2
        elif length == 127:
            if end - position < 8:
                break
            (length,) = struct.unpack_from("!Q", buffer, position)
            position += 8
        if opcode >= OP_CLOSE:
            if length > 125 or not fin:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
            if opcode > OP_PONG:
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        elif opcode > OP_BINARY:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if length > max_size:
            raise FrameError(
                CLOSE_MESSAGE_TOO_BIG,
                f"frame of {length} bytes is over {max_size} bytes",
            )
        if end - position < 4 + length:
            break
        mask = buffer[position : position + 4]
        position += 4
        payload = _unmask(buffer[position : position + length], mask)
        frames.append((fin, opcode, payload))
        offset = position + length
    return frames, offset


def frame_size(buffer: bytes) -> int:
    """Return the total size of the masked client frame that starts ``buffer``,
    or 0 while its header is incomplete."""
    if len(buffer) < 2:
        return 0
    length = buffer[1] & 0x7F
    header = 2
    if length == 126:
        if len(buffer) < 4:
            return 0
        (length,) = struct.unpack_from("!H", buffer, 2)
        header = 4
    elif length == 127:
        if len(buffer) < 10:
            return 0
        (length,) = struct.unpack_from("!Q", buffer, 2)
        header = 10
    return int(header + 4 + length)


class OutboundMessage:
    """One server event, encoded once and shared by every subscriber's transport.

    ``text`` is the JSON frame and ``frame`` its WebSocket frame, so a message
    published to many connections is framed once.
    """

    __slots__ = ("frame", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.frame = encode_frame(OP_TEXT, text.encode())
