"""TLS on the main port: wss:// and https:// with a certificate made in the
test, for a Python WebSocket client, the official Python SDK and pusher-js."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pusher
import pytest
import websockets
from interop_harness import PusherJsClient
from pusher.requests import RequestsBackend
from tls_helpers import TlsFiles, wss_url

from clarion.protocol.backend import ApiRequestBuilder, BatchEvent
from server_process import ServerProcess, free_port

WAIT = 5.0


class CaBundleBackend(RequestsBackend):
    """The SDK's requests backend, verifying against the test CA.

    pusher-http-python 3.3 sets ``verify`` to its own CA bundle when ``ssl``
    is true, over any ``verify`` option or ``REQUESTS_CA_BUNDLE``, so a
    private CA needs the SDK's ``backend`` option.
    """

    def __init__(self, client: Any, ca_bundle: str, **options: Any) -> None:
        super().__init__(client, **options)
        self.options["verify"] = ca_bundle


def https_sdk(server: ServerProcess, tls_files: TlsFiles) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        host=server.host,
        port=server.port,
        ssl=True,
        backend=CaBundleBackend,
        ca_bundle=str(tls_files.ca_file),
    )


async def subscribe(connection: Any, channel: str) -> str:
    """Read ``pusher:connection_established``, subscribe, and return the
    socket id once the subscription succeeded."""
    established = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert established["event"] == "pusher:connection_established"
    socket_id = json.loads(established["data"])["socket_id"]
    await connection.send(
        json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}})
    )
    reply = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
    assert reply["event"] == "pusher_internal:subscription_succeeded"
    return str(socket_id)


async def test_wss_receives_sdk_event_over_https(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """A wss:// client gets an event that the Python SDK triggered over https://."""
    server = start_tls_server()
    sdk = https_sdk(server, tls_files)
    async with websockets.connect(
        wss_url(server), ssl=tls_files.client_context()
    ) as connection:
        await subscribe(connection, "news")
        result = await asyncio.to_thread(
            sdk.trigger, "news", "headline", {"text": "over TLS"}
        )
        assert result == {}
        event = json.loads(await asyncio.wait_for(connection.recv(), WAIT))
        channels = await asyncio.to_thread(sdk.channels_info)
    assert event["event"] == "headline"
    assert event["channel"] == "news"
    assert json.loads(event["data"]) == {"text": "over TLS"}
    assert "news" in channels["channels"]


async def test_wss_fan_out_keeps_order(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """Bursts written with one call per event-loop pass arrive whole and in
    order on every TLS connection."""
    server = start_tls_server()
    builder = ApiRequestBuilder(
        app_id=server.app_id, key=server.key, secret=server.secret
    )
    context = tls_files.client_context()
    subscribers = [
        await websockets.connect(wss_url(server), ssl=context) for _ in range(10)
    ]
    try:
        for connection in subscribers:
            await subscribe(connection, "ticks")
        for batch in range(5):
            events = [
                BatchEvent("ticks", "tick", str(batch * 10 + index))
                for index in range(10)
            ]
            status, _ = await asyncio.to_thread(
                https_request, server, tls_files, builder.trigger_batch(events)
            )
            assert status == 200
        for connection in subscribers:
            received = [
                json.loads(await asyncio.wait_for(connection.recv(), WAIT))["data"]
                for _ in range(50)
            ]
            assert received == [str(number) for number in range(50)]
    finally:
        for connection in subscribers:
            await connection.close()


def https_request(
    server: ServerProcess, tls_files: TlsFiles, request: Any
) -> tuple[int, bytes]:
    client = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    try:
        client.request(
            request.method,
            request.target,
            body=request.body or None,
            headers={"Content-Type": "application/json"},
        )
        response = client.getresponse()
        return response.status, response.read()
    finally:
        client.close()


async def test_plain_websocket_to_tls_port_fails_cleanly(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """A ws:// client gets no connection, and the server keeps serving wss://."""
    server = start_tls_server()
    with pytest.raises((websockets.exceptions.InvalidMessage, ConnectionError)):
        async with websockets.connect(server.ws_url, open_timeout=WAIT):
            pass
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        plain = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
        try:
            plain.request("GET", "/up")
            plain.getresponse().read()
        finally:
            plain.close()

    assert server.is_running()
    async with websockets.connect(
        wss_url(server), ssl=tls_files.client_context()
    ) as connection:
        await subscribe(connection, "still-serving")
    log = server.log_text()
    assert "Traceback" not in log
    assert " ERROR " not in log


def test_https_serves_health_and_rejects_untrusted_client(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """/up responds over https://, and a client that does not trust the CA fails
    the handshake."""
    server = start_tls_server()
    client = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    client.request("GET", "/up")
    response = client.getresponse()
    assert response.status == 200
    assert response.read() == b"OK"
    client.close()

    untrusted = ssl.create_default_context()
    with socket.create_connection((server.host, server.port), timeout=WAIT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusted.wrap_socket(raw, server_hostname="127.0.0.1")
    assert server.is_running()


@pytest.mark.interop
def test_pusher_js_connects_over_wss(
    start_tls_server: Callable[..., ServerProcess],
    tls_files: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pusher-js with forceTLS connects over wss:// and gets an event."""
    server = start_tls_server()
    # The node child inherits this variable and trusts the test CA with it.
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(tls_files.ca_file))
    client = PusherJsClient(
        "wss",
        {
            "port": server.port,
            "key": server.key,
            "authEndpoint": "http://127.0.0.1:9/unused",
            "userAuthEndpoint": "http://127.0.0.1:9/unused",
            "forceTLS": True,
        },
        tmp_path / "pusher-js.log",
    )
    try:
        client.wait_connected()
        client.subscribe("tls-news")
        https_sdk(server, tls_files).trigger("tls-news", "update", {"n": 1})
        event = client.wait_event("tls-news", "update")
        assert event["data"] == {"n": 1}
    finally:
        client.close()
    assert "WebSocket" in server.log_text()


# Start-up errors


def run_serve(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clarion", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_missing_cert_file_stops_start(tmp_path: Path, tls_files: TlsFiles) -> None:
    """A missing certificate file exits 2 with a message naming the setting."""
    missing = tmp_path / "missing.pem"
    result = run_serve(
        "--tls-cert-file", str(missing), "--tls-key-file", str(tls_files.key_file)
    )
    assert result.returncode == 2
    assert "tls_cert_file" in result.stderr
    assert "CLARION_TLS_CERT_FILE" in result.stderr
    assert str(missing) in result.stderr
    assert "No such file" in result.stderr


@pytest.mark.parametrize(
    ("case", "setting"),
    [
        ("cert_not_pem", "tls_cert_file"),
        ("cert_corrupt", "tls_cert_file"),
        ("key_corrupt", "tls_key_file"),
        ("key_of_other_cert", "tls_key_file"),
        ("key_missing", "tls_key_file"),
    ],
)
def test_invalid_tls_file_stops_start(
    tmp_path: Path, tls_files: TlsFiles, case: str, setting: str
) -> None:
    """Each kind of bad file exits 2 with a message naming the setting at fault."""
    cert, key = tls_files.cert_file, tls_files.key_file
    if case == "cert_not_pem":
        cert = tmp_path / "cert.txt"
        cert.write_text("not a certificate\n")
    elif case == "cert_corrupt":
        cert = tmp_path / "cert.pem"
        cert.write_text(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
    elif case == "key_corrupt":
        key = tmp_path / "key.pem"
        key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    elif case == "key_of_other_cert":
        import trustme

        key = tmp_path / "other-key.pem"
        trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))
    elif case == "key_missing":
        key = tmp_path / "no-key.pem"
    result = run_serve("--tls-cert-file", str(cert), "--tls-key-file", str(key))
    assert result.returncode == 2, result.stderr
    assert setting in result.stderr
    assert f"CLARION_{setting.upper()}" in result.stderr


def test_bad_tls_file_stops_workers_supervisor(tmp_path: Path) -> None:
    """With --workers, a bad file stops the supervisor before any worker starts."""
    missing = tmp_path / "missing.pem"
    result = run_serve(
        "--workers",
        "2",
        "--redis-url",
        "redis://127.0.0.1:9",
        "--tls-cert-file",
        str(missing),
    )
    assert result.returncode == 2
    assert "tls_cert_file" in result.stderr
    assert "Started 2 workers" not in result.stderr


def test_key_without_cert_is_invalid(tls_files: TlsFiles) -> None:
    """tls_key_file alone is a configuration error."""
    result = run_serve("--tls-key-file", str(tls_files.key_file))
    assert result.returncode == 2
    assert "tls_cert_file" in result.stderr
    assert "tls_key_file" in result.stderr


def test_encrypted_key_is_rejected(tmp_path: Path, tls_files: TlsFiles) -> None:
    """An encrypted key is refused with the reason instead of a password prompt."""
    from cryptography.hazmat.primitives import serialization

    plain = serialization.load_pem_private_key(tls_files.key_file.read_bytes(), None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        plain.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    result = run_serve(
        "--tls-cert-file", str(tls_files.cert_file), "--tls-key-file", str(encrypted)
    )
    assert result.returncode == 2
    assert "encrypted" in result.stderr
    assert "tls_key_file" in result.stderr


def test_combined_pem_file_serves(
    start_server: Callable[..., ServerProcess], tls_files: TlsFiles, tmp_path: Path
) -> None:
    """A single file with the certificate chain and the key is enough."""
    combined = tmp_path / "combined.pem"
    combined.write_bytes(
        tls_files.cert_file.read_bytes() + tls_files.key_file.read_bytes()
    )
    server = start_server(args=("--tls-cert-file", str(combined)))
    client = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    client.request("GET", "/up")
    assert client.getresponse().status == 200
    client.close()
    assert "with TLS" in server.log_text()


async def test_slow_wss_reader_is_dropped(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """A TLS client that stops reading is dropped once its queue passes the
    limit, as over plain TCP, and other clients keep receiving."""
    server = start_tls_server()
    builder = ApiRequestBuilder(
        app_id=server.app_id, key=server.key, secret=server.secret
    )
    context = tls_files.client_context()
    # websockets stops reading from the socket once max_queue messages wait.
    slow = await websockets.connect(wss_url(server), ssl=context, max_queue=1)
    healthy = await websockets.connect(wss_url(server), ssl=context)
    slow_socket_id = await subscribe(slow, "flood")
    await subscribe(healthy, "news")
    payload = "x" * 9000
    flood = builder.trigger_batch(
        [BatchEvent("flood", "chunk", payload) for _ in range(10)]
    )
    client = http.client.HTTPSConnection(
        server.host, server.port, context=context, timeout=WAIT
    )
    dropped = f"Dropping connection {slow_socket_id}"

    try:
        # At most 2,000 requests of 90 kB: far more than the 4 MiB limit plus
        # the kernel's socket buffers on loopback.
        for _ in range(2000):
            await asyncio.to_thread(send_keep_alive, client, flood)
            if dropped in server.log_text():
                break
        assert dropped in server.log_text()

        await asyncio.to_thread(
            send_keep_alive, client, builder.trigger(["news"], "after", "ok")
        )
        event = json.loads(await asyncio.wait_for(healthy.recv(), WAIT))
        assert event["event"] == "after"
    finally:
        client.close()
        await healthy.close()
        slow.transport.abort()
    assert server.is_running()


def send_keep_alive(client: http.client.HTTPSConnection, request: Any) -> None:
    client.request(
        request.method,
        request.target,
        body=request.body,
        headers={"Content-Type": "application/json"},
    )
    response = client.getresponse()
    response.read()
    assert response.status == 200


async def test_silent_tls_connection_is_closed(
    start_tls_server: Callable[..., ServerProcess],
) -> None:
    """A peer that never starts the TLS handshake is dropped after
    http_idle_timeout, as a silent HTTP connection is."""
    server = start_tls_server(
        '[server]\nhttp_idle_timeout = 1\n[[apps]]\nid = "1"\nkey = "app-key"\n'
        'secret = "app-secret"\n'
    )
    reader, writer = await asyncio.open_connection(server.host, server.port)
    received = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    assert received == b""
    assert server.is_running()


async def test_clarion_client_over_wss(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """Clarion's own client with tls=True connects and gets an event."""
    from clarion.client import Client

    server = start_tls_server()
    subscribed = asyncio.Event()
    received: asyncio.Queue[Any] = asyncio.Queue()
    client = Client(
        server.key,
        host=server.host,
        port=server.port,
        tls=True,
        ssl_context=tls_files.client_context(),
    )
    channel = client.subscribe("client-tls")
    channel.bind("pusher:subscription_succeeded", lambda data: subscribed.set())
    channel.bind("greeting", received.put_nowait)
    client.connect()
    try:
        await asyncio.wait_for(subscribed.wait(), WAIT)
        await asyncio.to_thread(
            https_sdk(server, tls_files).trigger, "client-tls", "greeting", "hi"
        )
        assert await asyncio.wait_for(received.get(), WAIT) == "hi"
    finally:
        await client.aclose()


def test_fallback_stream_over_https(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """pusher-js's xhr_streaming transport works over https://: the chunked
    stream opens, and an event triggered afterwards arrives on it."""
    server = start_tls_server()
    stream = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    stream.request(
        "POST",
        "/pusher/app/app-key/1/tlsstream/xhr_streaming?protocol=7",
        headers={"Content-Length": "0", "Origin": "https://page.test"},
    )
    response = stream.getresponse()
    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") == "https://page.test"
    assert response.readline() == b"h" * 2048 + b"\n"
    assert response.readline() == b"o\n"
    established = json.loads(json.loads(response.readline()[1:])[0])
    assert established["event"] == "pusher:connection_established"

    send = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    subscribe_frame = json.dumps(
        {"event": "pusher:subscribe", "data": {"channel": "streamed"}}
    )
    send.request(
        "POST",
        "/pusher/app/app-key/1/tlsstream/xhr_send",
        body=json.dumps([subscribe_frame]),
    )
    assert send.getresponse().status == 204
    send.close()
    succeeded = json.loads(json.loads(response.readline()[1:])[0])
    assert succeeded["event"] == "pusher_internal:subscription_succeeded"

    https_sdk(server, tls_files).trigger("streamed", "update", {"n": 2})
    event = json.loads(json.loads(response.readline()[1:])[0])
    stream.close()
    assert event["event"] == "update"
    assert json.loads(event["data"]) == {"n": 2}


def test_console_cookie_secure_over_https(
    start_tls_server: Callable[..., ServerProcess], tls_files: TlsFiles
) -> None:
    """The debug console over https:// limits its cookies to HTTPS."""
    server = start_tls_server(
        '[server]\nconsole_token = "a-console-token-of-32-characters"\n'
        '[[apps]]\nid = "1"\nkey = "app-key"\nsecret = "app-secret"\n'
    )
    client = http.client.HTTPSConnection(
        server.host, server.port, context=tls_files.client_context(), timeout=WAIT
    )
    try:
        client.request("GET", "/console/login")
        response = client.getresponse()
        response.read()
    finally:
        client.close()
    assert response.status == 200
    cookie = response.getheader("Set-Cookie")
    assert cookie is not None
    assert "; Secure" in cookie
    assert "HttpOnly" in cookie
