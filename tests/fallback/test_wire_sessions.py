"""The life of an HTTP session: server-side closes, the 5 s grace for a client
that stops polling, the queue limit and the 25 s heartbeat."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pusher
from fallback_harness import GRACE_MARGIN, GRACE_SECONDS, channel_occupied
from fallback_wire import Session, Stream, array_frame, decode_array

from server_process import ServerProcess

TERMINATED_ERROR = (
    '{"event":"pusher:error","data":'
    '{"code":4009,"message":"You got disconnected by the app"}}'
)
TERMINATED_CLOSE = 'c[4009,"You got disconnected by the app"]'

HEARTBEAT_SECONDS = 25.0
"""Seconds without output after which the server writes `h`."""


async def sign_in(session: Session, sdk: pusher.Pusher, user_id: str) -> None:
    """Sign the session in as `user_id` with a signature made by the SDK."""
    assert session.socket_id is not None
    signed = sdk.authenticate_user(session.socket_id, {"id": user_id})
    reply = await session.send({"event": "pusher:signin", "data": signed})
    assert reply.status == 204


async def wait_vacated(sdk: pusher.Pusher, channel: str, timeout: float) -> None:
    """Wait until the HTTP API reports `channel` unoccupied, for at most `timeout` s."""
    started = time.monotonic()
    while await asyncio.to_thread(channel_occupied, sdk, channel):
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"{channel} still occupied after {elapsed:.1f} s"
        await asyncio.sleep(0.1)


async def test_terminate_closes_stream_with_4009(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """terminate_connections writes `pusher:error` 4009 and `c[4009,...]` on the
    stream, then ends the response."""
    session = Session(server.port)
    user_id = unique("user-")
    stream = await session.open_streaming()
    try:
        await sign_in(session, sdk, user_id)
        signed_in = await stream.read_messages()
        assert signed_in[0]["event"] == "pusher:signin_success"
        await asyncio.to_thread(sdk.terminate_user_connections, user_id)
        lines = await stream.read_until_end()
    finally:
        stream.close()
    assert lines == [array_frame(TERMINATED_ERROR), TERMINATED_CLOSE]
    assert stream.ended is True


async def test_terminate_closes_poll_with_4009(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """terminate_connections completes the held poll with the error and the close
    frame, and later polls within the grace get the close frame again."""
    session = Session(server.port)
    user_id = unique("user-")
    channel = unique("public-")
    await session.open_polling()
    await sign_in(session, sdk, user_id)
    await session.subscribe(channel)
    received = await session.poll_until("pusher_internal:subscription_succeeded")
    assert received[0]["event"] == "pusher:signin_success"
    held_poll = asyncio.create_task(session.poll())
    await asyncio.sleep(0.1)
    await asyncio.to_thread(sdk.terminate_user_connections, user_id)
    closed = await held_poll
    again = await session.poll()
    assert closed.lines == [array_frame(TERMINATED_ERROR), TERMINATED_CLOSE]
    assert again.lines == [TERMINATED_CLOSE]
    assert await asyncio.to_thread(channel_occupied, sdk, channel) is False


async def test_closed_session_refuses_sends(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A send to a session the server closed changes nothing: a subscribe in it
    does not occupy the channel."""
    session = Session(server.port)
    user_id = unique("user-")
    channel = unique("public-")
    await session.open_polling()
    await sign_in(session, sdk, user_id)
    await asyncio.to_thread(sdk.terminate_user_connections, user_id)
    closed = await session.poll()
    assert closed.lines[-1] == TERMINATED_CLOSE
    await session.subscribe(channel)
    assert await asyncio.to_thread(channel_occupied, sdk, channel) is False


async def test_vanished_poller_vacates_channel(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A client that stops polling is closed after the 5 s grace, and its channel
    is vacated as for a dropped socket."""
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()
    # The session keeps its channel while no poll is attached, for up to 5 s.
    assert await asyncio.to_thread(channel_occupied, sdk, channel) is True
    await wait_vacated(sdk, channel, GRACE_SECONDS + GRACE_MARGIN)
    late = await session.send_body(b"[]")
    assert late.status == 404


async def test_session_survives_gap_under_grace(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A poll 2 s after the last one finds the session, with what was queued."""
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()
    await asyncio.to_thread(sdk.trigger, channel, "during-gap", "{}")
    await asyncio.sleep(2.0)
    reply = await session.poll()
    assert reply.lines[0] != "o"
    assert decode_array(reply.lines[0])[0]["event"] == "during-gap"


async def test_unread_queue_closes_session(
    server: ServerProcess, sdk: pusher.Pusher, unique: Callable[[str], str]
) -> None:
    """A session that does not poll while over 4 MiB of events are published to
    it is closed with 4100, and its channel is vacated at once."""
    session = Session(server.port)
    channel = unique("public-")
    await session.open_polling()
    await session.subscribe(channel)
    await session.poll()

    padding = "x" * 9000
    batch = [{"channel": channel, "name": "bulk", "data": padding} for _ in range(10)]
    # 50 batches of 10 events of 9 000 characters: about 4.5 million characters.
    for _ in range(50):
        await asyncio.to_thread(sdk.trigger_batch, batch)
    reply = await session.poll()
    close = reply.lines[-1]
    assert close.startswith("c["), close[:80]
    assert json.loads(close[1:])[0] == 4100
    assert await asyncio.to_thread(channel_occupied, sdk, channel) is False


async def test_idle_session_gets_heartbeat(server: ServerProcess) -> None:
    """After 25 s without output a stream gets `h` and a held poll ends with `h`."""
    streaming = Session(server.port)
    polling = Session(server.port)
    stream = await streaming.open_streaming()
    await polling.open_polling()
    timeout = HEARTBEAT_SECONDS + 3

    async def next_stream_line(stream: Stream) -> tuple[str | None, float]:
        started = time.monotonic()
        line = await stream.read_line(timeout)
        return line, time.monotonic() - started

    async def next_poll() -> tuple[bytes, float]:
        started = time.monotonic()
        reply = await polling.poll(timeout)
        return reply.body, time.monotonic() - started

    try:
        (line, stream_wait), (body, poll_wait) = await asyncio.gather(
            next_stream_line(stream), next_poll()
        )
    finally:
        stream.close()
    assert line == "h"
    assert stream_wait >= HEARTBEAT_SECONDS - 1, f"h after {stream_wait:.1f} s"
    assert body == b"h\n"
    assert poll_wait >= HEARTBEAT_SECONDS - 1, f"h after {poll_wait:.1f} s"


PING_CONFIG = """
[server]
activity_timeout = 1
pong_timeout = 2

[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
"""


async def test_server_ping_answered_over_http(
    start_server: Callable[..., ServerProcess],
) -> None:
    """After `activity_timeout` without a request, the held poll carries the
    server's `pusher:ping`, and a `pusher:pong` sent with `xhr_send` keeps the
    session open."""
    quiet = start_server(PING_CONFIG)
    session = Session(quiet.port)
    await session.open_polling()
    pinged = await session.poll()
    (ping,) = decode_array(pinged.lines[0])
    assert ping["event"] == "pusher:ping"
    pong = await session.send({"event": "pusher:pong", "data": {}})
    assert pong.status == 204
    # Two more rounds: the session replies to every ping and stays open.
    for _ in range(2):
        reply = await session.poll()
        assert [m["event"] for m in decode_array(reply.lines[0])] == ["pusher:ping"]
        await session.send({"event": "pusher:pong", "data": {}})
