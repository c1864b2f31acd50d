"""Connection admission, the handshake frame and ping/pong on `/app/{key}`."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from clarion_e2e import PONG_TEXT, WireClient, compact, error_frame
from clarion_launch import (
    DISABLED_APP,
    QUOTA_APP,
    ClientOpener,
    RunningServer,
)

SOCKET_ID = re.compile(r"^\d+\.\d+$")


async def expect_rejection(client: WireClient, code: int, message: str) -> None:
    """Assert the server sends one `pusher:error` then closes with the same code."""
    frame = await client.recv_frame()
    assert frame.text == error_frame(code, message)
    close_code, close_reason = await client.wait_closed()
    assert close_code == code
    assert close_reason == message


async def test_handshake_frame_exact_encoding(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """connection_established carries a JSON string with socket_id and timeout."""
    client = await clients.raw(shared_server.ws_url())
    frame = await client.recv_frame()
    handshake = json.loads(frame.data)
    expected = compact(
        {
            "event": "pusher:connection_established",
            "data": compact(
                {"socket_id": handshake["socket_id"], "activity_timeout": 120}
            ),
        }
    )
    assert frame.text == expected


async def test_handshake_socket_id_format(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The socket_id is two decimal integers joined by a dot."""
    client = await clients.established(shared_server.ws_url())
    assert SOCKET_ID.match(client.socket_id or "")


async def test_handshake_socket_ids_unique(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """Every connection gets a different socket_id."""
    socket_ids = set()
    for _ in range(5):
        client = await clients.established(shared_server.ws_url())
        socket_ids.add(client.socket_id)
    assert len(socket_ids) == 5


@pytest.mark.parametrize("protocol", ["4", "5", "6", "7"])
async def test_handshake_supported_protocols_accepted(
    shared_server: RunningServer, clients: ClientOpener, protocol: str
) -> None:
    """Protocol versions 4 to 7 all get connection_established."""
    client = await clients.raw(shared_server.ws_url(query=f"protocol={protocol}"))
    frame = await client.recv_frame()
    assert frame.event == "pusher:connection_established"


async def test_handshake_client_version_params_ignored(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The client, version and flash parameters never block a connection."""
    query = "protocol=7&client=js&version=8.4.0-rc2&flash=false"
    client = await clients.raw(shared_server.ws_url(query=query))
    frame = await client.recv_frame()
    assert frame.event == "pusher:connection_established"


async def test_admission_unknown_key_4001(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """An unknown app key gets pusher:error 4001 and close 4001."""
    client = await clients.raw(shared_server.ws_url(key="no-such-key"))
    await expect_rejection(client, 4001, "App key no-such-key does not exist")


async def test_admission_long_reason_truncated(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The close reason is cut to 123 bytes, but the pusher:error keeps it whole."""
    key = "k" * 200
    message = f"App key {key} does not exist"
    client = await clients.raw(shared_server.ws_url(key=key))
    frame = await client.recv_frame()
    assert frame.text == error_frame(4001, message)
    close_code, close_reason = await client.wait_closed()
    assert close_code == 4001
    assert close_reason == message.encode()[:123].decode()


async def test_admission_disabled_app_4003(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A disabled app gets pusher:error 4003 and close 4003."""
    client = await clients.raw(shared_server.ws_url(key=DISABLED_APP.key))
    await expect_rejection(client, 4003, "Application disabled")


@pytest.mark.parametrize(
    "path",
    ["/app/", "/app", "/apps/app-key", "/app/app-key/extra", "/"],
)
async def test_admission_bad_path_4005(
    shared_server: RunningServer, clients: ClientOpener, path: str
) -> None:
    """Any path other than /app/{key} gets 4005 Path not found."""
    url = f"ws://{shared_server.host}:{shared_server.port}{path}?protocol=7"
    client = await clients.raw(url)
    await expect_rejection(client, 4005, "Path not found")


async def test_admission_missing_protocol_4008(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A connection without a protocol parameter gets 4008."""
    client = await clients.raw(shared_server.ws_url(query="client=js"))
    await expect_rejection(client, 4008, "No protocol version supplied")


@pytest.mark.parametrize("protocol", ["3", "1", "8", "abc", "", "7.0", "-7"])
async def test_admission_bad_protocol_4007(
    shared_server: RunningServer, clients: ClientOpener, protocol: str
) -> None:
    """An unsupported or non-integer protocol version gets 4007."""
    client = await clients.raw(shared_server.ws_url(query=f"protocol={protocol}"))
    await expect_rejection(client, 4007, "Unsupported protocol version")


async def test_admission_checks_key_before_protocol(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """An unknown key with no protocol reports the key (4001) first."""
    client = await clients.raw(shared_server.ws_url(key="missing", query=""))
    await expect_rejection(client, 4001, "App key missing does not exist")


async def test_admission_connection_quota_4004(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The connection over an app's max_connections gets 4004."""
    first = await clients.established(shared_server.ws_url(key=QUOTA_APP.key))
    second = await clients.raw(shared_server.ws_url(key=QUOTA_APP.key))
    await expect_rejection(second, 4004, "Application is over connection quota")
    pong = await first.ping_barrier()
    assert pong.text == PONG_TEXT


async def test_admission_quota_frees_on_close(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A closed connection frees its place in the app's quota."""
    first = await clients.established(shared_server.ws_url(key=QUOTA_APP.key))
    await first.close()
    admitted = None
    # The server notices the close asynchronously, so retry a bounded number of times.
    for _ in range(50):
        candidate = await clients.raw(shared_server.ws_url(key=QUOTA_APP.key))
        frame = await candidate.recv_frame()
        if frame.event == "pusher:connection_established":
            admitted = frame
            break
        await candidate.wait_closed()
        await asyncio.sleep(0.02)
    assert admitted is not None


async def test_ping_gets_exact_pong(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """pusher:ping gets pusher:pong whose data is an empty object."""
    client = await clients.established(shared_server.ws_url())
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_ping_with_string_data_answered(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A pusher:ping whose data is the string "{}" also gets a pong."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text('{"event":"pusher:ping","data":"{}"}')
    frame = await client.recv_frame()
    assert frame.text == PONG_TEXT


async def test_ping_without_data_answered(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A pusher:ping with no data field still gets a pong."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text('{"event":"pusher:ping"}')
    frame = await client.recv_frame()
    assert frame.text == PONG_TEXT


async def test_pong_from_client_gets_no_reply(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """An unsolicited pusher:pong from the client is accepted silently."""
    client = await clients.established(shared_server.ws_url())
    await client.send_text(PONG_TEXT)
    frame = await client.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_websocket_ping_frame_answered(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A WebSocket-level ping frame gets a WebSocket pong."""
    client = await clients.established(shared_server.ws_url())
    pong_waiter = await client.connection.ping(b"probe")
    latency = await asyncio.wait_for(pong_waiter, 3)
    assert latency >= 0
