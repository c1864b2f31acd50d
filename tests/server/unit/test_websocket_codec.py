"""RFC 6455 frame encoding and parsing, without sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from clarion.server.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    OutboundMessage,
    accept_key,
    encode_close,
    encode_frame,
    read_frames,
)

MAX_SIZE = 256 * 1024
MASK = b"\x37\xfa\x21\x3d"


def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = MASK,
    rsv: int = 0,
) -> bytes:
    """Build a frame as a client sends it: masked unless ``mask`` is None."""
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return header + payload
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def feed_in_pieces(data: bytes, sizes: list[int]) -> list[tuple[bool, int, bytes]]:
    """Parse ``data`` arriving in pieces, keeping unparsed bytes as a server does."""
    frames: list[tuple[bool, int, bytes]] = []
    buffer = b""
    position = 0
    for size in [*sizes, len(data)]:
        buffer += data[position : position + size]
        position += size
        parsed, consumed = read_frames(buffer, MAX_SIZE)
        frames.extend(parsed)
        buffer = buffer[consumed:]
    assert buffer == b""
    return frames


# Encoding

HEADERS = [
    pytest.param(0, b"\x81\x00", id="0"),
    pytest.param(125, b"\x81\x7d", id="125"),
    pytest.param(126, b"\x81\x7e\x00\x7e", id="126"),
    pytest.param(65535, b"\x81\x7e\xff\xff", id="65535"),
    pytest.param(65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", id="65536"),
]


@pytest.mark.parametrize(("length", "header"), HEADERS)
def test_encode_frame_length_header(length: int, header: bytes) -> None:
    """The header uses the 7-bit, 16-bit or 64-bit length form as the size needs."""
    payload = b"a" * length
    assert encode_frame(OP_TEXT, payload) == header + payload


def test_encode_frame_opcode_and_fin() -> None:
    """Server frames are final and unmasked, with the given opcode."""
    assert encode_frame(OP_PONG, b"hi") == b"\x8a\x02hi"


def test_encode_close_code_and_reason() -> None:
    """A close frame carries the code as two big-endian bytes, then the reason."""
    assert encode_close(4001, "bye") == b"\x88\x05\x0f\xa1bye"


def close_reason(frame: bytes) -> bytes:
    """Return the reason bytes of a close frame encoded with a 7-bit length."""
    assert frame[1] == len(frame) - 2
    return frame[4:]


CLOSE_REASONS = [
    pytest.param("a" * 123, "a" * 123, id="123-ascii-kept"),
    pytest.param("a" * 200, "a" * 123, id="ascii-cut-to-123"),
    pytest.param("é" * 62, "é" * 61, id="two-byte-not-split"),
    pytest.param("a" + "é" * 61, "a" + "é" * 61, id="two-byte-fits"),
    pytest.param("aa" + "€" * 41, "aa" + "€" * 40, id="three-byte-not-split"),
    pytest.param("😀" * 31, "😀" * 30, id="four-byte-not-split"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("reason", "expected"), CLOSE_REASONS)
def test_encode_close_truncates_reason(reason: str, expected: str) -> None:
    """The reason is cut to at most 123 bytes at a character boundary."""
    assert close_reason(encode_close(4009, reason)) == expected.encode()


def test_accept_key_rfc_example() -> None:
    """The accept value for the RFC 6455 sample key matches the RFC."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# Parsing


def test_read_frames_rfc_masked_hello() -> None:
    """The masked "Hello" frame from RFC 6455 section 5.7 decodes."""
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert read_frames(data, MAX_SIZE) == ([(True, OP_TEXT, b"Hello")], 11)


@pytest.mark.parametrize(
    "length", [0, 1, 3, 4, 5, 125, 126, 65535, 65536], ids=lambda n: f"{n}-bytes"
)
def test_read_frames_round_trip(length: int) -> None:
    """A masked text frame of any length decodes to its payload."""
    payload = bytes(index % 251 for index in range(length))
    data = client_frame(OP_TEXT, payload)
    assert read_frames(data, MAX_SIZE) == ([(True, OP_TEXT, payload)], len(data))


def test_read_frames_several_in_one_buffer() -> None:
    """Every complete frame in the buffer is returned, in order."""
    data = (
        client_frame(OP_TEXT, b'{"event":"pusher:ping","data":{}}')
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CLOSE, b"\x03\xe8")
    )
    assert read_frames(data, MAX_SIZE) == (
        [
            (True, OP_TEXT, b'{"event":"pusher:ping","data":{}}'),
            (True, OP_PING, b"p"),
            (True, OP_CLOSE, b"\x03\xe8"),
        ],
        len(data),
    )


def test_read_frames_keeps_partial_frame() -> None:
    """A trailing incomplete frame is left unconsumed."""
    first = client_frame(OP_TEXT, b"one")
    second = client_frame(OP_TEXT, b"two")
    assert read_frames(first + second[:-1], MAX_SIZE) == (
        [(True, OP_TEXT, b"one")],
        len(first),
    )


@pytest.mark.parametrize(
    "prefix_length", [0, 1, 2, 3, 5, 9, 13], ids=lambda n: f"{n}-bytes"
)
def test_read_frames_incomplete_header(prefix_length: int) -> None:
    """Fewer bytes than a whole frame, headers included, parse to nothing."""
    data = client_frame(OP_TEXT, b"x" * 70000)[:prefix_length]
    assert read_frames(data, MAX_SIZE) == ([], 0)


def test_read_frames_byte_by_byte() -> None:
    """Frames fed one byte at a time decode the same as all at once."""
    data = (
        client_frame(OP_TEXT, b"a" * 130)
        + client_frame(OP_TEXT, b"frag", fin=False)
        + client_frame(OP_CONTINUATION, b"ment")
        + client_frame(OP_PONG, b"")
    )
    whole, _ = read_frames(data, MAX_SIZE)
    assert feed_in_pieces(data, [1] * len(data)) == whole


def test_read_frames_keeps_fin_flag() -> None:
    """A fragment and its continuation come back with their fin flags."""
    data = client_frame(OP_BINARY, b"ab", fin=False) + client_frame(
        OP_CONTINUATION, b"cd"
    )
    frames, _ = read_frames(data, MAX_SIZE)
    assert frames == [(False, OP_BINARY, b"ab"), (True, OP_CONTINUATION, b"cd")]


def test_read_frames_accepts_max_size() -> None:
    """A payload of exactly max_size bytes is accepted."""
    data = client_frame(OP_TEXT, b"x" * 10)
    assert read_frames(data, 10) == ([(True, OP_TEXT, b"x" * 10)], len(data))


# (bytes, close code)
VIOLATIONS = [
    pytest.param(client_frame(OP_TEXT, b"hi", mask=None), 1002, id="unmasked"),
    pytest.param(client_frame(OP_TEXT, b"hi", rsv=0x40), 1002, id="rsv1"),
    pytest.param(client_frame(OP_TEXT, b"hi", rsv=0x20), 1002, id="rsv2"),
    pytest.param(client_frame(OP_TEXT, b"hi", rsv=0x10), 1002, id="rsv3"),
    pytest.param(client_frame(OP_PING, b"x" * 126), 1002, id="ping-over-125"),
    pytest.param(client_frame(OP_CLOSE, b"x" * 126), 1002, id="close-over-125"),
    pytest.param(client_frame(OP_PING, b"x", fin=False), 1002, id="ping-fragmented"),
    pytest.param(client_frame(OP_CLOSE, b"", fin=False), 1002, id="close-fragmented"),
    pytest.param(client_frame(OP_PONG, b"", fin=False), 1002, id="pong-fragmented"),
    *[
        pytest.param(client_frame(opcode, b"x"), 1002, id=f"opcode-{opcode:#x}")
        for opcode in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)
    ],
    pytest.param(client_frame(OP_TEXT, b"x" * 11), 1009, id="over-max-size"),
    # Rejected from the header alone, before the payload arrives.
    pytest.param(client_frame(OP_TEXT, b"x" * 70000)[:14], 1009, id="header-over-max"),
    pytest.param(b"\x81\xff" + b"\xff" * 8, 1009, id="64-bit-length-high-bit"),
    pytest.param(
        client_frame(OP_TEXT, b"ok") + client_frame(OP_TEXT, b"hi", mask=None),
        1002,
        id="second-frame-unmasked",
    ),
]


@pytest.mark.parametrize(("data", "close_code"), VIOLATIONS)
def test_read_frames_rejects_violation(data: bytes, close_code: int) -> None:
    """A framing violation raises FrameError with the close code to send."""
    with pytest.raises(FrameError) as caught:
        read_frames(data, 10 if close_code == 1009 else MAX_SIZE)
    assert caught.value.close_code == close_code


@settings(max_examples=300, database=None, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_read_frames_any_bytes(data: bytes, max_size: int) -> None:
    """Any bytes either parse within the buffer or raise FrameError 1002/1009."""
    try:
        frames, consumed = read_frames(data, max_size)
    except FrameError as error:
        assert error.close_code in (1002, 1009)
        return
    assert 0 <= consumed <= len(data)
    assert all(len(payload) <= max_size for _, _, payload in frames)


frame_specs = st.lists(
    st.tuples(
        st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE]),
        st.binary(max_size=200),
        st.binary(min_size=4, max_size=4),
    ),
    max_size=5,
)


@settings(max_examples=200, database=None, deadline=None)
@given(frame_specs, st.lists(st.integers(min_value=0, max_value=64), max_size=20))
def test_read_frames_split_anywhere(
    specs: list[tuple[int, bytes, bytes]], sizes: list[int]
) -> None:
    """Valid frames split at arbitrary points decode to what was sent."""
    sent = []
    data = b""
    for opcode, payload, mask in specs:
        if opcode >= OP_CLOSE:
            payload = payload[:125]
        sent.append((True, opcode, payload))
        data += client_frame(opcode, payload, mask=mask)
    assert feed_in_pieces(data, sizes) == sent


# OutboundMessage


def test_outbound_message_frame_bytes() -> None:
    """The frame is a text frame of the UTF-8 encoded text."""
    text = '{"event":"e","channel":"c","data":"é"}'
    assert OutboundMessage(text).frame == encode_frame(OP_TEXT, text.encode())


def test_outbound_message_frames_once() -> None:
    """A second access returns the same bytes object, not a new encoding."""
    message = OutboundMessage('{"event":"pusher:pong","data":{}}')
    assert message.frame is message.frame
