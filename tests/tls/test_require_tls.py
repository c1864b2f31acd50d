"""``require_tls``: plain connections to such an app get 4000, connections over
TLS or through a TLS-terminating proxy are taken."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Callable, Iterator

import pytest
import websockets
from tls_helpers import TlsFiles, wss_url

from server_process import ServerProcess, launch

WAIT = 5.0
CONFIG = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
require_tls = true
"""
TLS_ONLY_MESSAGE = "Application only accepts SSL connections, reconnect using wss://"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One plain server for the module: the tests here only open connections."""
    process = launch(CONFIG, tmp_path_factory.mktemp("require-tls"))
    yield process
    process.stop()


async def test_plain_websocket_gets_4000(
    server: ServerProcess,
) -> None:
    async with websockets.connect(server.ws_url) as connection:
        error = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(connection.recv(), WAIT)
    assert error == {
        "event": "pusher:error",
        "data": {"code": 4000, "message": TLS_ONLY_MESSAGE},
    }
    assert connection.close_code == 4000
    assert "rejected with 4000 for app 1" in server.log_text()


@pytest.mark.parametrize("forwarded", ["https", "HTTPS", "https, http"])
async def test_forwarded_https_is_taken(server: ServerProcess, forwarded: str) -> None:
    """A proxy that terminated TLS sets X-Forwarded-Proto: https; behind
    several proxies the first value counts."""
    async with websockets.connect(
        server.ws_url, additional_headers={"X-Forwarded-Proto": forwarded}
    ) as connection:
        message = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert message["event"] == "pusher:connection_established"


async def test_forwarded_http_gets_4000(
    server: ServerProcess,
) -> None:
    async with websockets.connect(
        server.ws_url, additional_headers={"X-Forwarded-Proto": "http, https"}
    ) as connection:
        error = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert error["data"]["code"] == 4000


async def test_wss_is_taken(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    server = start_tls_server(CONFIG)
    async with websockets.connect(
        wss_url(server), ssl=tls_files.client_context()
    ) as connection:
        message = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert message["event"] == "pusher:connection_established"


def test_plain_fallback_session_gets_4000(
    server: ServerProcess,
) -> None:
    client = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    client.request(
        "POST",
        "/pusher/app/app-key/123/plain/xhr?protocol=7",
        headers={"Content-Length": "0"},
    )
    body = client.getresponse().read().decode()
    client.close()
    opened, array, close = body.splitlines()
    assert opened == "o"
    assert json.loads(json.loads(array[1:])[0])["data"]["code"] == 4000
    assert json.loads(close[1:]) == [4000, TLS_ONLY_MESSAGE]


async def test_origin_is_checked_before_tls(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A refused origin gets 4009 even on a plain connection: switching to TLS
    would not help it."""
    server = start_server(CONFIG + 'allowed_origins = ["https://app.example.com"]\n')
    async with websockets.connect(
        server.ws_url, additional_headers={"Origin": "https://evil.example.com"}
    ) as connection:
        error = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert error["data"]["code"] == 4009
