"""A raw HTTP/1.1 client for the fallback endpoints, and the frames they carry.

Each request opens its own TCP connection with ``Connection: close``, as
pusher-js's Node build does, so the reply ends when the server closes it.
``Stream`` reads an ``xhr_streaming`` response chunk by chunk while it is open.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any

# Query of every receiving request, as pusher-js 8.6.0 sends it (t and n follow).
RECEIVE_QUERY = "protocol=7&client=js&version=8.6.0"

# pusher-js draws session ids from these 32 characters.
SESSION_ALPHABET = "0123456789abcdefghijklmnopqrstuv"

PRELUDE = "h" * 2048
"""The first line of every streaming response, without its LF."""

STREAM_CHARACTER_LIMIT = 256 * 1024
"""Characters pusher-js 8.6.0 reads from one response before it opens the next."""

CACHE_CONTROL = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
FRAME_CONTENT_TYPE = "application/javascript; charset=UTF-8"
SEND_CONTENT_TYPE = "text/plain; charset=UTF-8"

# How long one read or one reply may take on loopback.
TIMEOUT = 5.0

_request_numbers = iter(range(1, 1_000_000))


@dataclass
class Reply:
    """A complete HTTP response."""

    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def lines(self) -> list[str]:
        """The body's frames: the text split at each LF, the empty tail dropped."""
        text = self.text
        assert text.endswith("\n"), f"body does not end with LF: {text!r}"
        return text[:-1].split("\n")


def unique_query() -> str:
    """Return the ``t`` and ``n`` parameters that make each URL unique."""
    return f"t=1700000000000&n={next(_request_numbers)}"


def encode_request(
    method: str,
    target: str,
    port: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Connection: close",
    ]
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def decode_chunked(data: bytes) -> list[bytes]:
    """Split a chunked body into its chunks, and raise if the last chunk is missing."""
    chunks = []
    while True:
        size_line, separator, rest = data.partition(b"\r\n")
        assert separator, f"chunked body ends inside a chunk header: {data[:80]!r}"
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n", "chunk is not followed by CRLF"
        data = rest[size + 2 :]


async def request(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Reply:
    """Send one request and return the complete reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(encode_request(method, target, port, body, headers))
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, separator, payload = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response head within {timeout} s: {raw[:200]!r}"
    status, response_headers = parse_head(head)
    if response_headers.get("transfer-encoding") == "chunked":
        payload = b"".join(decode_chunked(payload))
    return Reply(status, response_headers, payload)


class Stream:
    """An open ``xhr_streaming`` response, read while the server writes it."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        """Every chunk received, as the server framed it."""
        self.characters = 0
        """Characters of the body received, as pusher-js counts them."""
        self.ended = False
        """Whether the server wrote the last chunk or closed the connection."""
        self._pending = ""

    @classmethod
    async def open(
        cls, port: int, target: str, headers: dict[str, str] | None = None
    ) -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        stream = cls(reader, writer)
        writer.write(encode_request("POST", target, port, headers=headers))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        stream.status, stream.headers = parse_head(head[:-4])
        return stream

    async def read_chunk(self, timeout: float = TIMEOUT) -> bytes | None:
        """Return the next chunk, or None once the response has ended."""
        if self.ended:
            return None
        try:
            size_line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not size_line:
                self.ended = True
                return None
            size = int(size_line.strip(), 16)
            data = await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"no data on the stream within {timeout} s, after "
                f"{self.characters} characters in {len(self.chunks)} chunks"
            ) from None
        if size == 0:
            self.ended = True
            return None
        chunk = data[:-2]
        self.chunks.append(chunk)
        self.characters += len(chunk.decode("utf-8"))
        return chunk

    async def read_line(self, timeout: float = TIMEOUT) -> str | None:
        """Return the next frame without its LF, or None once the response ended."""
        while "\n" not in self._pending:
            chunk = await self.read_chunk(timeout)
            if chunk is None:
                assert not self._pending, (
                    f"response ended in a frame: {self._pending!r}"
                )
                return None
            self._pending += chunk.decode("utf-8")
        line, _, self._pending = self._pending.partition("\n")
        return line

    async def read_until_end(self, timeout: float = TIMEOUT) -> list[str]:
        """Return the remaining frames once the server has ended the response."""
        lines = []
        while (line := await self.read_line(timeout)) is not None:
            lines.append(line)
        return lines

    async def read_messages(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Return the Pusher messages of the next ``a`` frame, skipping heartbeats."""
        while True:
            line = await self.read_line(timeout)
            assert line is not None, "the stream ended before the next a frame"
            if not line.startswith("h"):
                return decode_array(line)

    def close(self) -> None:
        """Drop the connection, as pusher-js does when it aborts a request."""
        self.writer.close()


class Session:
    """One pusher-js-style HTTP session: a ``{server}/{session}`` pair under a key."""

    def __init__(self, port: int, key: str = "app-key") -> None:
        self.port = port
        self.key = key
        self.server = str(secrets.randbelow(1000))
        self.id = "".join(secrets.choice(SESSION_ALPHABET) for _ in range(8))
        self.socket_id: str | None = None

    def target(self, kind: str, query: str | None = None) -> str:
        path = f"/pusher/app/{self.key}/{self.server}/{self.id}/{kind}"
        if query is None:
            query = unique_query()
            if kind != "xhr_send":
                query = f"{RECEIVE_QUERY}&{query}"
        return f"{path}?{query}" if query else path

    async def poll(
        self, timeout: float = TIMEOUT, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one ``xhr`` request and return the reply once the server ends it."""
        return await request(
            self.port, "POST", self.target("xhr"), headers=headers, timeout=timeout
        )

    async def open_polling(self) -> Reply:
        """Send the first poll, which opens the session, and store the socket id."""
        reply = await self.poll()
        assert reply.status == 200, reply
        self.socket_id = socket_id_of(reply.lines[1])
        return reply

    async def poll_until(self, event: str, polls: int = 5) -> list[dict[str, Any]]:
        """Poll until a reply carries the message `event`, and return every
        message received on the way. Raise AssertionError after `polls` polls."""
        messages: list[dict[str, Any]] = []
        for _ in range(polls):
            reply = await self.poll()
            assert reply.status == 200, reply
            for line in reply.lines:
                if line.startswith("a"):
                    messages.extend(decode_array(line))
            if any(message["event"] == event for message in messages):
                return messages
        raise AssertionError(f"no {event} in {polls} polls: {messages}")

    async def open_stream(self, headers: dict[str, str] | None = None) -> Stream:
        return await Stream.open(self.port, self.target("xhr_streaming"), headers)

    async def open_streaming(self) -> Stream:
        """Open the session by streaming, and store the socket id.

        Returns the stream positioned after ``connection_established``.
        """
        stream = await self.open_stream()
        assert stream.status == 200, stream.headers
        assert await stream.read_line() == PRELUDE
        assert await stream.read_line() == "o"
        line = await stream.read_line()
        assert line is not None
        self.socket_id = socket_id_of(line)
        return stream

    async def send_body(
        self, body: bytes, headers: dict[str, str] | None = None
    ) -> Reply:
        return await request(
            self.port, "POST", self.target("xhr_send"), body, headers=headers
        )

    async def send(self, *messages: dict[str, Any]) -> Reply:
        """Send Pusher messages in one ``xhr_send`` body, as pusher-js encodes them."""
        texts = [json.dumps(message, separators=(",", ":")) for message in messages]
        return await self.send_body(json.dumps(texts, separators=(",", ":")).encode())

    async def subscribe(self, channel: str, **data: Any) -> Reply:
        data = {"auth": "", "channel": channel, **data}
        return await self.send({"event": "pusher:subscribe", "data": data})


def decode_array(line: str) -> list[dict[str, Any]]:
    """Decode an ``a`` frame into its Pusher messages, checking each is a string."""
    assert line.startswith("a"), f"not an a frame: {line[:80]!r}"
    texts = json.loads(line[1:])
    assert all(isinstance(text, str) for text in texts), line[:200]
    return [json.loads(text) for text in texts]


def array_frame(*texts: str) -> str:
    """Encode Pusher message texts as the ``a`` frame the server writes."""
    return "a" + json.dumps(list(texts), separators=(",", ":"))


def established_text(socket_id: str, activity_timeout: int = 120) -> str:
    """Return the exact text of ``pusher:connection_established``."""
    data = json.dumps(
        {"socket_id": socket_id, "activity_timeout": activity_timeout},
        separators=(",", ":"),
    )
    return json.dumps(
        {"event": "pusher:connection_established", "data": data}, separators=(",", ":")
    )


def socket_id_of(line: str) -> str:
    """Return the socket id of an ``a`` frame holding ``connection_established``."""
    (message,) = decode_array(line)
    assert message["event"] == "pusher:connection_established", line
    return str(json.loads(message["data"])["socket_id"])
