"""clarion.rest's HTTP/1.1 transport against stub servers with canned responses.

Clarion always responds with Content-Length and keep-alive, so the other
framings a proxy or another Pusher-compatible server may use, and the
failures, are served here by a stub on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from clarion.rest import RestClient, RestStatusError, RestTransportError
from server_process import free_port

OK_EMPTY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class StubServer:
    """A server on 127.0.0.1 that sends the next canned response to each request."""

    def __init__(
        self,
        responses: list[bytes],
        *,
        close_after_response: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responses = list(responses)
        self.tls = tls
        self.close_after_response = close_after_response
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_connections = 0
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self.tls
        )

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        """Stop listening, close open connections and wait for their handlers."""
        self._stopping.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in self._writers:
            writer.close()
        await asyncio.wait_for(
            asyncio.gather(*self._handlers, return_exceptions=True), timeout=5
        )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append(head + await reader.readexactly(length))
                if not self.responses:
                    # No response left: stay silent until the test ends.
                    await self._stopping.wait()
                    return
                writer.write(self.responses.pop(0))
                await writer.drain()
                if self.close_after_response:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self.closed_connections += 1


StubFactory = Callable[..., Awaitable["StubServer"]]


@pytest.fixture
async def stub() -> AsyncIterator[StubFactory]:
    """Return a factory of started stub servers, closed when the test ends."""
    started: list[StubServer] = []

    async def start(responses: list[bytes], **options: Any) -> StubServer:
        server = StubServer(responses, **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


def client_for(url: str, timeout: float = 5.0) -> RestClient:
    return RestClient(app_id="1", key="key", secret="secret", url=url, timeout=timeout)


async def test_transport_reuses_keep_alive_connection(
    stub: StubFactory,
) -> None:
    """Sequential requests share one connection while the server keeps it open."""
    server = await stub([OK_EMPTY, OK_EMPTY])
    async with client_for(server.url) as client:
        await client.channel_info("a")
        await client.channel_info("b")
    assert server.connections == 1
    assert len(server.requests) == 2


async def test_transport_honours_connection_close(
    stub: StubFactory,
) -> None:
    """A response with Connection: close is followed by a new connection."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = await stub([closing, OK_EMPTY])
    async with client_for(server.url) as client:
        await client.channel_info("a")
        await client.channel_info("b")
    assert server.connections == 2


async def test_transport_skips_connection_closed_by_server(
    stub: StubFactory,
) -> None:
    """An idle connection the server has closed is replaced, not reused."""
    server = await stub([OK_EMPTY, OK_EMPTY], close_after_response=True)
    async with client_for(server.url) as client:
        await client.channel_info("a")
        idle = client.transport._idle[0]
        async with asyncio.timeout(5):
            while not idle.reader.at_eof():
                await asyncio.sleep(0.01)
        answer = await client.channel_info("b")
    assert answer == {}
    assert server.connections == 2


async def test_transport_reads_chunked_body(stub: StubFactory) -> None:
    """A chunked body, with a chunk extension and a trailer, is joined."""
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'6;name=value\r\n{"occu\r\n'
        b'e\r\npied":false}  \r\n'
        b"0\r\nExpires: never\r\n\r\n"
    )
    server = await stub([response, OK_EMPTY])
    async with client_for(server.url) as client:
        answer = await client.channel_info("a")
        await client.channel_info("b")
    assert answer == {"occupied": False}
    assert server.connections == 1


async def test_transport_reads_body_until_close(
    stub: StubFactory,
) -> None:
    """An HTTP/1.0 body without Content-Length runs until the server closes."""
    # Large enough to arrive in several reads.
    padding = "x" * 500_000
    body = f'{{"occupied":true,"padding":"{padding}"}}'.encode()
    server = await stub([b"HTTP/1.0 200 OK\r\n\r\n" + body], close_after_response=True)
    async with client_for(server.url) as client:
        answer = await client.channel_info("a")
    assert answer == {"occupied": True, "padding": padding}


async def test_transport_skips_interim_response(
    stub: StubFactory,
) -> None:
    """A 100 Continue before the real response is skipped."""
    response = b"HTTP/1.1 100 Continue\r\n\r\n" + OK_EMPTY
    server = await stub([response])
    async with client_for(server.url) as client:
        assert await client.trigger("a", "e", "{}") == {}


async def test_transport_sends_signed_request(stub: StubFactory) -> None:
    """The request line carries the signed query and the body its length."""
    server = await stub([OK_EMPTY])
    async with client_for(server.url) as client:
        await client.trigger("news", "e", "{}")
    request = server.requests[0]
    request_line, _, rest = request.partition(b"\r\n")
    assert request_line.startswith(b"POST /apps/1/events?auth_key=key&")
    assert request_line.endswith(b" HTTP/1.1")
    assert b"&auth_signature=" in request_line
    assert b"\r\nContent-Type: application/json\r\n" in b"\r\n" + rest
    assert rest.endswith(b'\r\n\r\n{"name":"e","channels":["news"],"data":"{}"}')


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """Write a key and a certificate for 127.0.0.1; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = directory / "key.pem"
    certificate_path = directory / "certificate.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, certificate_path


async def test_transport_speaks_https(stub: StubFactory, tmp_path: Path) -> None:
    """An https:// URL runs the request over TLS, checked with the given context."""
    key_path, certificate_path = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate_path, key_path)
    server = await stub([OK_EMPTY], tls=server_context)
    client_context = ssl.create_default_context(cafile=certificate_path)
    async with RestClient(
        app_id="1",
        key="key",
        secret="secret",
        url=server.url,
        ssl_context=client_context,
    ) as client:
        answer = await client.channel_info("a")
    assert server.url.startswith("https://")
    assert answer == {}


async def test_transport_rejects_untrusted_certificate(
    stub: StubFactory, tmp_path: Path
) -> None:
    """A certificate the default context does not trust fails the request."""
    key_path, certificate_path = self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate_path, key_path)
    server = await stub([OK_EMPTY], tls=server_context)
    async with client_for(server.url) as client:
        with pytest.raises(RestTransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.channel_info("a")


async def test_status_error_keeps_plain_text(stub: StubFactory) -> None:
    """A plain-text error body, as Pusher sends, becomes the error message."""
    response = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 14\r\n\r\nOver quota now"
    server = await stub([response])
    async with client_for(server.url) as client:
        with pytest.raises(RestStatusError) as raised:
            await client.trigger("a", "e", "{}")
    assert raised.value.status == 403
    assert raised.value.error == "Over quota now"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(b"HTTP/1.1 OK\r\n\r\n", "Invalid HTTP status line", id="status"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n",
            "Invalid HTTP response header",
            id="header",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "Invalid Content-Length",
            id="length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnot js",
            "before a complete response",
            id="short-body",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json",
            "not JSON",
            id="not-json",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
            "not an object",
            id="not-object",
        ),
    ],
)
async def test_transport_rejects_bad_response(
    stub: StubFactory, response: bytes, message: str
) -> None:
    """A response that is not valid HTTP/1.1 or not a JSON object raises."""
    server = await stub([response], close_after_response=True)
    async with client_for(server.url) as client:
        with pytest.raises(RestTransportError, match=message):
            await client.channel_info("a")


async def test_transport_times_out(stub: StubFactory) -> None:
    """A server that never responds raises RestTransportError after the timeout."""
    server = await stub([])
    async with client_for(server.url, timeout=0.3) as client:
        with pytest.raises(RestTransportError, match="timed out after 0.3 s"):
            await client.channel_info("a")


async def test_transport_reports_refused_connection() -> None:
    """Nothing listening on the port raises RestTransportError naming it."""
    port = free_port()
    async with client_for(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(RestTransportError, match=f"cannot connect to .*:{port}"):
            await client.channels()


async def test_closed_client_rejects_requests(stub: StubFactory) -> None:
    """A request after aclose() raises RestTransportError."""
    server = await stub([OK_EMPTY])
    client = client_for(server.url)
    await client.aclose()
    with pytest.raises(RestTransportError, match="closed"):
        await client.channels()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1",
        "127.0.0.1:6001",
        "http://127.0.0.1:6001/pusher",
        "http://127.0.0.1:6001/?x=1",
        "http://user:pass@127.0.0.1:6001",
    ],
)
def test_client_rejects_invalid_url(url: str) -> None:
    """A URL that is not http(s)://HOST[:PORT] raises ValueError."""
    with pytest.raises(ValueError, match="Invalid server URL"):
        client_for(url)


def test_client_repr_hides_secret() -> None:
    """The client's repr names the app and server but not the secret."""
    client = RestClient(app_id="1", key="key", secret="s3cret-value")
    assert "s3cret-value" not in repr(client)
    assert "http://127.0.0.1:6001" in repr(client)
