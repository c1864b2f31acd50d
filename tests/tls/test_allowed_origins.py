"""Allowed origins per app: WebSocket upgrades and HTTP fallback sessions from
other origins are refused with 4009, over real sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator

import pytest
import websockets

from server_process import ServerProcess, launch

WAIT = 5.0

CONFIG = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
allowed_origins = [
    "https://app.example.com",
    "https://*.example.org",
    "localhost",
]

[[apps]]
id = "2"
key = "open-key"
secret = "open-secret"
"""

ALLOWED = [
    "https://app.example.com",
    "https://app.example.com:443",
    "https://eu.example.org",
    "https://a.b.example.org",
    "http://localhost:3000",
    "https://localhost",
]
REFUSED = [
    "https://evil.example.com",
    "http://app.example.com",
    "https://app.example.com:8443",
    "https://example.org",
    "http://eu.example.org",
    "https://example.org.evil.test",
    "null",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: every test here only opens connections."""
    process = launch(CONFIG, tmp_path_factory.mktemp("origins"))
    yield process
    process.stop()


def url(server: ServerProcess, key: str = "app-key") -> str:
    return f"ws://{server.host}:{server.port}/app/{key}?protocol=7&client=test"


async def first_message(server: ServerProcess, origin: str | None, key: str) -> dict:
    headers = {"Origin": origin} if origin is not None else {}
    async with websockets.connect(
        url(server, key), additional_headers=headers
    ) as connection:
        return json.loads(await asyncio.wait_for(connection.recv(), WAIT))


@pytest.mark.parametrize("origin", ALLOWED)
async def test_allowed_origin_connects(server: ServerProcess, origin: str) -> None:
    """An exact origin, a default port, a subdomain and a host pattern connect."""
    message = await first_message(server, origin, "app-key")
    assert message["event"] == "pusher:connection_established"


async def test_request_without_origin_connects(server: ServerProcess) -> None:
    """A client that sends no Origin header, as server-side clients do, connects."""
    message = await first_message(server, None, "app-key")
    assert message["event"] == "pusher:connection_established"


async def test_app_without_list_allows_any_origin(server: ServerProcess) -> None:
    """An app with no allowed_origins takes any origin."""
    message = await first_message(server, "https://anywhere.test", "open-key")
    assert message["event"] == "pusher:connection_established"


@pytest.mark.parametrize("origin", REFUSED)
async def test_refused_origin_gets_4009(server: ServerProcess, origin: str) -> None:
    """Another origin gets pusher:error 4009, then a close with 4009."""
    async with websockets.connect(
        url(server), additional_headers={"Origin": origin}
    ) as connection:
        error = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(connection.recv(), WAIT)
    assert error["event"] == "pusher:error"
    assert error["data"]["code"] == 4009
    assert origin in error["data"]["message"]
    assert connection.close_code == 4009
    assert connection.close_reason == error["data"]["message"]


async def test_refusal_is_logged_with_app_id(server: ServerProcess) -> None:
    """The log line of a refused origin names the app and the code."""
    async with websockets.connect(
        url(server), additional_headers={"Origin": "https://logged.example.com"}
    ) as connection:
        await asyncio.wait_for(connection.recv(), WAIT)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(connection.recv(), WAIT)
    lines = [
        line
        for line in server.log_text().splitlines()
        if "https://logged.example.com" in line
    ]
    assert len(lines) == 1
    assert "rejected with 4009 for app 1" in lines[0]


def open_fallback_session(
    server: ServerProcess, origin: str | None, session: str
) -> tuple[int, dict[str, str], str]:
    """Send the first xhr poll of an HTTP fallback session."""
    client = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    headers = {"Content-Length": "0"}
    if origin is not None:
        headers["Origin"] = origin
    try:
        client.request(
            "POST",
            f"/pusher/app/app-key/123/{session}/xhr?protocol=7&client=test",
            headers=headers,
        )
        response = client.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        client.close()


@pytest.mark.parametrize("origin", ["https://eu.example.org", None])
def test_fallback_session_from_allowed_origin_opens(
    server: ServerProcess, origin: str | None
) -> None:
    """The xhr fallback opens a session for an allowed origin or none."""
    status, _, body = open_fallback_session(server, origin, f"open{bool(origin)}")
    assert status == 200
    frames = body.splitlines()
    assert frames[0] == "o"
    assert "pusher:connection_established" in frames[1]


def test_fallback_session_from_refused_origin_gets_4009(
    server: ServerProcess,
) -> None:
    """The xhr fallback refuses another origin with pusher:error 4009 and a
    close frame, readable by the page through the CORS headers."""
    status, headers, body = open_fallback_session(
        server, "https://evil.example.com", "refused"
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://evil.example.com"
    opened, array, close = body.splitlines()
    assert opened == "o"
    error = json.loads(json.loads(array[1:])[0])
    assert error["event"] == "pusher:error"
    assert error["data"]["code"] == 4009
    code, reason = json.loads(close[1:])
    assert code == 4009
    assert reason == error["data"]["message"]
    assert "HTTP session for app key app-key (app 1) rejected with 4009" in (
        server.log_text()
    )
