"""The frames of xhr_streaming and xhr_polling on the wire, byte for byte:
prelude, `o`, `a[...]`, `h`, and the replies to `xhr_send`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pusher
from fallback_wire import (
    CACHE_CONTROL,
    FRAME_CONTENT_TYPE,
    PRELUDE,
    SEND_CONTENT_TYPE,
    Session,
    array_frame,
    decode_array,
    established_text,
)

from server_process import ServerProcess

# Frames for a subscribe to `my-channel` and for `my-event` with {"hello":"world"}.
SUBSCRIBED_FRAME = (
    r'a["{\"event\":\"pusher_internal:subscription_succeeded\",'
    r'\"channel\":\"my-channel\",\"data\":\"{}\"}"]'
)
EVENT_FRAME = (
    r'a["{\"event\":\"my-event\",\"channel\":\"my-channel\",'
    r'\"data\":\"{\\\"hello\\\":\\\"world\\\"}\"}"]'
)
SUBSCRIBE_BODY = (
    rb'["{\"event\":\"pusher:subscribe\",\"data\":'
    rb'{\"auth\":\"\",\"channel\":\"my-channel\"}}"]'
)


async def trigger(sdk: pusher.Pusher, channel: str, event: str, data: str) -> None:
    """Trigger an event with already-encoded data, from a worker thread."""
    await asyncio.to_thread(sdk.trigger, channel, event, data)


# xhr_streaming


async def test_stream_reply_headers(server: ServerProcess) -> None:
    """A streaming reply is a chunked 200 with the frame content type and no caching."""
    stream = await Session(server.port).open_stream()
    stream.close()
    assert stream.status == 200
    assert stream.headers["content-type"] == FRAME_CONTENT_TYPE
    assert stream.headers["cache-control"] == CACHE_CONTROL
    assert stream.headers["access-control-allow-origin"] == "*"
    assert stream.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in stream.headers


async def test_stream_starts_with_prelude_then_open(server: ServerProcess) -> None:
    """The first lines are 2048 `h`, `o`, then exactly `connection_established`."""
    stream = await Session(server.port).open_stream()
    try:
        prelude = await stream.read_line()
        opened = await stream.read_line()
        established = await stream.read_line()
    finally:
        stream.close()
    assert prelude == PRELUDE
    assert opened == "o"
    assert established is not None
    socket_id = json.loads(decode_array(established)[0]["data"])["socket_id"]
    assert established == array_frame(established_text(socket_id))


async def test_stream_frames_travel_as_whole_chunks(server: ServerProcess) -> None:
    """Each frame is flushed as its own chunk: `o` is the chunk `2 CR LF o LF CR LF`."""
    session = Session(server.port)
    stream = await session.open_streaming()
    stream.close()
    assert stream.chunks[0] == PRELUDE.encode() + b"\n"
    assert stream.chunks[1] == b"o\n"
    assert all(chunk.endswith(b"\n") for chunk in stream.chunks)


async def test_stream_subscribe_and_event_frames(
    server: ServerProcess, sdk: pusher.Pusher
) -> None:
    """A subscribe and an API event on a stream give exactly the expected frames."""
    session = Session(server.port)
    stream = await session.open_streaming()
    try:
        sent = await session.send_body(SUBSCRIBE_BODY)
        subscribed = await stream.read_line()
        await trigger(sdk, "my-channel", "my-event", '{"hello":"world"}')
        event = await stream.read_line()
    finally:
        stream.close()
    assert sent.status == 204
    assert subscribed == SUBSCRIBED_FRAME
    assert event == EVENT_FRAME


async def test_send_reply_headers(server: ServerProcess) -> None:
    """`xhr_send` replies 204 with an empty text/plain body and no caching."""
    session = Session(server.port)
    stream = await session.open_streaming()
    try:
        reply = await session.send_body(b"[]")
    finally:
        stream.close()
    assert reply.status == 204
    assert reply.body == b""
    assert reply.headers["content-type"] == SEND_CONTENT_TYPE
    assert reply.headers["cache-control"] == CACHE_CONTROL
    assert reply.headers["access-control-allow-origin"] == "*"


async def test_stream_ping_writes_no_heartbeat(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A `[]` send on a streaming session gets no `h`, which would start a loop."""
    session = Session(server.port)
    channel = unique("public-")
    stream = await session.open_streaming()
    try:
        await session.subscribe(channel)
        await stream.read_line()
        assert (await session.send_body(b"[]")).status == 204
        await trigger(sdk, channel, "after-ping", "{}")
        line = await stream.read_line()
    finally:
        stream.close()
    assert line is not None
    assert decode_array(line)[0]["event"] == "after-ping"


async def test_stream_reopen_sends_no_open_frame(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A new stream of a live session starts with the prelude, not `o`, then
    carries the events published while no stream was attached."""
    session = Session(server.port)
    channel = unique("public-")
    first = await session.open_streaming()
    await session.subscribe(channel)
    await first.read_line()
    first.close()
    # Let the server read the abort first: an event written before it reads
    # the abort is lost in the closed connection, which no server can prevent.
    await asyncio.sleep(0.2)
    await trigger(sdk, channel, "while-detached", '{"n":1}')

    second = await session.open_stream()
    try:
        prelude = await second.read_line()
        next_line = await second.read_line()
    finally:
        second.close()
    assert second.status == 200
    assert prelude == PRELUDE
    assert next_line is not None
    assert next_line != "o"
    (message,) = decode_array(next_line)
    assert message["event"] == "while-detached"


async def test_newer_stream_replaces_older(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A second stream of a session ends the first, and receives what follows."""
    session = Session(server.port)
    channel = unique("public-")
    first = await session.open_streaming()
    await session.subscribe(channel)
    await first.read_line()

    second = await session.open_stream()
    try:
        remaining = await first.read_until_end()
        assert await second.read_line() == PRELUDE
        await trigger(sdk, channel, "after-replace", "{}")
        line = await second.read_line()
    finally:
        first.close()
        second.close()
    assert remaining == []
    assert first.ended is True
    assert line is not None
    assert decode_array(line)[0]["event"] == "after-replace"


# xhr_polling


async def test_poll_reply_headers(server: ServerProcess) -> None:
    """A poll reply is a complete 200 whose Content-Length counts every LF."""
    reply = await Session(server.port).poll()
    assert reply.status == 200
    assert reply.headers["content-type"] == FRAME_CONTENT_TYPE
    assert reply.headers["cache-control"] == CACHE_CONTROL
    assert reply.headers["access-control-allow-origin"] == "*"
    assert int(reply.headers["content-length"]) == len(reply.body)


async def test_poll_frames_and_lengths(
    server: ServerProcess, sdk: pusher.Pusher
) -> None:
    """The first poll returns `o` and `connection_established` at once, and
    each message completes the held poll, with the exact lengths."""
    session = Session(server.port)
    first = await session.open_polling()
    assert session.socket_id is not None
    assert first.text == f"o\n{array_frame(established_text(session.socket_id))}\n"

    held_poll = asyncio.create_task(session.poll())
    await asyncio.sleep(0.1)
    assert held_poll.done() is False
    sent = await session.send_body(SUBSCRIBE_BODY)
    subscribed = await held_poll

    held_poll = asyncio.create_task(session.poll())
    await asyncio.sleep(0.1)
    assert held_poll.done() is False
    await trigger(sdk, "my-channel", "my-event", '{"hello":"world"}')
    event = await held_poll

    assert sent.status == 204
    assert subscribed.headers["content-length"] == "103"
    assert subscribed.text == SUBSCRIBED_FRAME + "\n"
    assert event.headers["content-length"] == "100"
    assert event.text == EVENT_FRAME + "\n"


async def test_poll_returns_queued_messages_together(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """Messages queued between polls come back at once, in order, in one `a` frame."""
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    subscribed = await session.poll()
    assert decode_array(subscribed.lines[0])[0]["channel"] == channel

    await asyncio.to_thread(
        sdk.trigger_batch,
        [{"channel": channel, "name": "queued", "data": str(n)} for n in range(3)],
    )
    # Let the server queue the events before the poll arrives.
    await asyncio.sleep(0.2)
    reply = await session.poll()
    assert len(reply.lines) == 1
    assert [message["data"] for message in decode_array(reply.lines[0])] == [
        "0",
        "1",
        "2",
    ]


async def test_ping_completes_held_poll(server: ServerProcess) -> None:
    """A `[]` send completes the held poll with `h` at once (Content-Length 2)."""
    session = Session(server.port)
    await session.open_polling()
    held_poll = asyncio.create_task(session.poll())
    await asyncio.sleep(0.1)
    assert held_poll.done() is False
    sent = await session.send_body(b"[]")
    reply = await asyncio.wait_for(held_poll, 1.0)
    assert sent.status == 204
    assert reply.status == 200
    assert reply.body == b"h\n"
    assert reply.headers["content-length"] == "2"


async def test_newer_poll_ends_older_with_empty_body(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A second poll ends the held one with an empty 200 and gets the next message."""
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()

    older = asyncio.create_task(session.poll())
    await asyncio.sleep(0.1)
    newer = asyncio.create_task(session.poll())
    ended = await asyncio.wait_for(older, 1.0)
    await trigger(sdk, channel, "for-newer", "{}")
    reply = await newer
    assert ended.status == 200
    assert ended.body == b""
    assert decode_array(reply.lines[0])[0]["event"] == "for-newer"


async def test_poll_loses_no_burst_events(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """Events triggered back to back all reach a client that keeps polling, in order."""
    count = 100
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()
    received: list[str] = []
    stop = asyncio.Event()

    async def keep_polling() -> None:
        while not stop.is_set():
            reply = await session.poll()
            assert reply.status == 200
            for line in reply.lines if reply.body else []:
                if line.startswith("a"):
                    received.extend(m["data"] for m in decode_array(line))

    poller = asyncio.create_task(keep_polling())
    for n in range(count):
        await trigger(sdk, channel, "burst", str(n))
    # The events are queued before each trigger returns. Give the last poll
    # time to carry them, then end the held poll with a ping.
    await asyncio.sleep(0.5)
    stop.set()
    await session.send_body(b"[]")
    await asyncio.wait_for(poller, 5)
    assert received == [str(n) for n in range(count)]
