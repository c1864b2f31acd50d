"""Bad input gets an error reply, is logged, and never disturbs other clients.

Each test runs on its own server so that a crash cannot hide behind, or
spread to, other tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from clarion_e2e import (
    PONG_TEXT,
    WireClient,
    compact,
    event_frame,
    http_status,
    md5_hex,
    send_raw_http,
    wait_for_log,
)
from clarion_launch import ClientOpener, RunningServer

# Words a log line about a rejected input is expected to contain (any of them).
ERROR_WORDS = re.compile(
    r"invalid|error|malformed|reject|unsupported|too (large|big)|exceed|limit|"
    r"1009|400|413|bad request|parse",
    re.IGNORECASE,
)


async def watch_channel(server: RunningServer, clients: ClientOpener) -> WireClient:
    """Open a bystander socket subscribed to the channel `watched`."""
    watcher = await clients.established(server.ws_url())
    frame = await watcher.subscribe("watched")
    assert frame.event == "pusher_internal:subscription_succeeded"
    return watcher


async def assert_still_serving(server: RunningServer, watcher: WireClient) -> None:
    """Trigger an event over HTTP and check the bystander receives it."""
    response = await server.api().trigger(
        {"name": "still-here", "channel": "watched", "data": "ok"}
    )
    assert response.status == 200
    frame = await watcher.recv_frame()
    assert frame.text == event_frame("still-here", "watched", "ok")


def logged_about(token: str) -> Callable[[str], bool]:
    """Match a log line that names `token` and reads like an error report."""
    return lambda line: token in line and bool(ERROR_WORDS.search(line))


async def test_resilience_malformed_json(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """Invalid JSON gets pusher:error, is logged, and other clients are served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    start = server.log_size()
    await offender.send_text('{"event": "pusher:subscribe", "data": ')
    frame = await offender.recv_frame()
    assert frame.event == "pusher:error"
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, logged_about(offender.socket_id))
    assert lines, "no log line names the socket that sent invalid JSON"


async def test_resilience_binary_garbage(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A binary non-UTF-8 frame gets pusher:error, is logged, and others are served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    start = server.log_size()
    await offender.send_bytes(bytes(range(256)))
    frame = await offender.recv_frame()
    assert frame.event == "pusher:error"
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, logged_about(offender.socket_id))
    assert lines, "no log line names the socket that sent a binary frame"


async def test_resilience_oversized_frame(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """An oversized frame closes only the sender (1009) and is logged."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    start = server.log_size()
    await offender.send_text(
        compact({"event": "pusher:ping", "data": {}, "pad": "x" * 300_000})
    )
    close_code, _reason = await offender.wait_closed()
    assert close_code == 1009
    await assert_still_serving(server, watcher)
    barrier = await watcher.ping_barrier()
    assert barrier.text == PONG_TEXT
    lines = await wait_for_log(server.log_path, start, logged_about(offender.socket_id))
    assert lines, "no log line names the socket closed for an oversized frame"


async def test_resilience_huge_http_body(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A body over max_body_bytes gets 413, is logged, and others are served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    api = server.api()
    path = api.app_path("/events")
    body = (
        b'{"name":"e","channel":"watched","data":"' + b"z" * (2 * 1024 * 1024) + b'"}'
    )
    params = api.signed_params("POST", path, body)
    start = server.log_size()
    response = await asyncio.to_thread(api.send, "POST", path, params, body)
    assert response.status == 413
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(
        server.log_path, start, lambda line: "413" in line or "body" in line.lower()
    )
    assert lines, "no log line reports the oversized HTTP body"


async def test_resilience_declared_huge_body(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A Content-Length over max_body_bytes is refused without reading the body."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    request = (
        b"POST /apps/1/events HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: 1073741824\r\n\r\n"
        b'{"name":"e"'
    )
    raw = await asyncio.to_thread(send_raw_http, server.host, server.port, request)
    assert http_status(raw) == 413
    await assert_still_serving(server, watcher)


async def test_resilience_invalid_request_line(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """An invalid HTTP request line gets 400, is logged, and others are served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    start = server.log_size()
    raw = await asyncio.to_thread(
        send_raw_http,
        server.host,
        server.port,
        b"THIS IS NOT HTTP\x00\x01\r\n\r\n",
    )
    assert http_status(raw) == 400
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, logged_about(""))
    assert lines, "no log line reports the invalid HTTP request"


async def test_resilience_bad_body_md5_logged(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A rejected HTTP signature is logged and others are still served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    api = server.api()
    path = api.app_path("/events")
    body = compact({"name": "e", "channel": "watched", "data": "x"}).encode()
    params = api.signed_params("POST", path, body)
    params["body_md5"] = md5_hex(b"different")
    start = server.log_size()
    response = await asyncio.to_thread(api.send, "POST", path, params, body)
    assert response.status == 401
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, lambda line: "401" in line)
    assert lines, "no log line reports the 401"


async def test_resilience_many_bad_frames(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A burst of 200 invalid frames gets 200 errors and others are served."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    for _ in range(200):
        await offender.send_text("nope")
    errors = [(await offender.recv_frame()).event for _ in range(200)]
    assert errors == ["pusher:error"] * 200
    await assert_still_serving(server, watcher)


async def test_resilience_unknown_event_logged(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """An unknown event name gets pusher:error and is logged with the socket_id."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    start = server.log_size()
    await offender.send_json({"event": "no-such-event", "data": {}})
    frame = await offender.recv_frame()
    assert frame.event == "pusher:error"
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, logged_about(offender.socket_id))
    assert lines, "no log line names the socket that sent an unknown event"


async def test_resilience_invalid_channel_logged(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """A subscribe to an invalid channel name gets an error and is logged."""
    server = own_server()
    watcher = await watch_channel(server, clients)
    offender = await clients.established(server.ws_url())
    start = server.log_size()
    frame = await offender.subscribe("not a valid name!")
    assert frame.event == "pusher:subscription_error"
    await assert_still_serving(server, watcher)
    lines = await wait_for_log(server.log_path, start, logged_about(offender.socket_id))
    assert lines, "no log line names the socket that used an invalid channel"


async def test_resilience_shutdown_closes_4200(
    own_server: Callable[[], RunningServer], clients: ClientOpener
) -> None:
    """Stopping the server closes every socket with 4200 (reconnect now)."""
    server = own_server()
    client = await clients.established(server.ws_url())
    await asyncio.to_thread(server.stop)
    close_code, _reason = await client.wait_closed()
    assert close_code == 4200
