"""The 256 KiB accounting: pusher-js stops reading a response once it has read
past 262 144 characters and opens the next one, so the server must stop
writing there, keep what follows for the next request and lose nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pusher
import pytest
from fallback_harness import ScriptClient
from fallback_wire import (
    PRELUDE,
    STREAM_CHARACTER_LIMIT,
    Session,
    Stream,
    decode_array,
)

from server_process import ServerProcess

RESUME_SECONDS = 2.0
"""Seconds after which the server writes again to a stream the client kept."""

EVENT_PADDING = 9000
"""Characters of each event's data (9 KB)."""


def numbered_data(number: int) -> str:
    """Return 9 000 characters of event data that start with `number`."""
    prefix = f"{number:04d}:"
    return prefix + "x" * (EVENT_PADDING - len(prefix))


async def publish_numbered(sdk: pusher.Pusher, channel: str, count: int) -> None:
    """Publish events 0 to count-1 in batches of 10, in order."""
    for first in range(0, count, 10):
        batch = [
            {"channel": channel, "name": "bulk", "data": numbered_data(number)}
            for number in range(first, min(first + 10, count))
        ]
        await asyncio.to_thread(sdk.trigger_batch, batch)


def event_numbers(messages: list[dict[str, object]]) -> list[int]:
    return [
        int(str(message["data"]).split(":")[0])
        for message in messages
        if message["event"] == "bulk"
    ]


async def read_past_limit(stream: Stream) -> tuple[list[dict[str, object]], int]:
    """Read frames until the stream has carried more than 262 144 characters.

    Returns the messages read and the character count before the last line.
    """
    messages: list[dict[str, object]] = []
    before_last = stream.characters
    while stream.characters <= STREAM_CHARACTER_LIMIT:
        before_last = stream.characters
        line = await stream.read_line()
        assert line is not None, "the stream ended before the limit"
        if line.startswith("a"):
            messages.extend(decode_array(line))
    return messages, before_last


async def subscribed_stream(session: Session, channel: str) -> Stream:
    """Open the session by streaming and subscribe it to `channel`."""
    stream = await session.open_streaming()
    await session.subscribe(channel)
    subscribed = await stream.read_messages()
    assert subscribed[0]["event"] == "pusher_internal:subscription_succeeded"
    return stream


async def test_stream_stops_writing_past_limit(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """Once a stream has carried over 262 144 characters, the line that crossed
    the limit is the last one written to it for the next 1.5 s (the server may
    resume a stream that is still open after 2 s)."""
    session = Session(server.port)
    channel = unique("public-")
    stream = await subscribed_stream(session, channel)
    try:
        await publish_numbered(sdk, channel, 40)
        _, before_last = await read_past_limit(stream)
        with pytest.raises(TimeoutError):
            await stream.read_chunk(timeout=RESUME_SECONDS - 0.5)
    finally:
        stream.close()
    assert before_last <= STREAM_CHARACTER_LIMIT
    assert stream.characters > STREAM_CHARACTER_LIMIT


async def test_stream_reopen_delivers_rest_in_order(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """The next stream of the session, opened as pusher-js does after the limit,
    starts with the prelude and carries every remaining event, in order."""
    count = 40
    session = Session(server.port)
    channel = unique("public-")
    first = await subscribed_stream(session, channel)
    await publish_numbered(sdk, channel, count)
    try:
        received, _ = await read_past_limit(first)
    finally:
        first.close()

    second = await session.open_stream()
    try:
        assert await second.read_line() == PRELUDE
        while len(event_numbers(received)) < count:
            line = await second.read_line()
            assert line is not None, "the reopened stream ended"
            assert line != "o", "the reopened stream sent o again"
            if line.startswith("a"):
                received.extend(decode_array(line))
    finally:
        second.close()
    assert event_numbers(received) == list(range(count))


async def test_reopened_stream_drains_queue(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """Events published while no stream is attached all arrive without any newer
    event: the next stream carries them until it passes the limit, and the
    stream after that carries the rest."""
    count = 40
    session = Session(server.port)
    channel = unique("public-")
    first = await subscribed_stream(session, channel)
    first.close()
    # About 362 000 characters, queued while no stream is attached.
    await publish_numbered(sdk, channel, count)

    received: list[dict[str, object]] = []
    streams = 0
    while len(event_numbers(received)) < count and streams < 3:
        streams += 1
        stream = await session.open_stream()
        try:
            while (
                len(event_numbers(received)) < count
                and stream.characters <= STREAM_CHARACTER_LIMIT
            ):
                line = await stream.read_line()
                assert line is not None, "the stream ended"
                if line.startswith("a"):
                    received.extend(decode_array(line))
        finally:
            stream.close()
    assert event_numbers(received) == list(range(count))
    assert streams == 2


async def test_stream_resumes_when_not_reopened(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A stream whose client read past the limit but did not reopen gets the rest
    after 2 s, on the same response."""
    count = 40
    session = Session(server.port)
    channel = unique("public-")
    stream = await subscribed_stream(session, channel)
    try:
        await publish_numbered(sdk, channel, count)
        received, _ = await read_past_limit(stream)
        while len(event_numbers(received)) < count:
            line = await stream.read_line(timeout=RESUME_SECONDS + 3)
            assert line is not None, "the stream ended"
            if line.startswith("a"):
                received.extend(decode_array(line))
    finally:
        stream.close()
    assert event_numbers(received) == list(range(count))


async def test_poll_body_stays_under_limit(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A poll body contains at most 262 144 characters even when escaping makes the
    frame longer than the messages, and the rest comes with the next polls."""
    count = 40
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()
    # Quotes are escaped twice on the way into a frame, so each event's
    # 7 200 characters of data become about 18 000 characters of frame.
    for first in range(0, count, 10):
        batch = [
            {
                "channel": channel,
                "name": "quoted",
                "data": json.dumps([number] + ["a"] * 1800, separators=(",", ":")),
            }
            for number in range(first, first + 10)
        ]
        await asyncio.to_thread(sdk.trigger_batch, batch)

    sizes = []
    numbers: list[int] = []
    for _ in range(count):
        if len(numbers) == count:
            break
        reply = await session.poll()
        sizes.append(len(reply.text))
        for line in reply.lines:
            numbers += [json.loads(m["data"])[0] for m in decode_array(line)]
    assert numbers == list(range(count))
    assert max(sizes) <= STREAM_CHARACTER_LIMIT, f"poll body sizes: {sizes}"


def test_pusher_js_stream_loses_no_events(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
) -> None:
    """120 events of 9 KB, published in bursts of 10, all reach pusher-js over
    xhr_streaming in order, across its reopens, on one connection."""
    count = 120
    client = connect_http("xhr_streaming")
    channel = unique("public-")
    client.subscribe(channel)
    for first in range(0, count, 10):
        batch = [
            {"channel": channel, "name": "bulk", "data": numbered_data(number)}
            for number in range(first, first + 10)
        ]
        sdk.trigger_batch(batch)
    deadline = time.monotonic() + 10
    while len(client.events(channel, "bulk")) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    records = client.events(channel, "bulk")
    numbers = [int(record["data"].split(":")[0]) for record in records]
    assert numbers == list(range(count))
    # About 1.1 million characters: pusher-js must have reopened the stream.
    assert len(client.records_of("stream_reopen")) >= 3
    assert client.states() == ["connected"]
