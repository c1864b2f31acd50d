"""CORS for the HTTP API, read off real HTTP responses: preflights, the
headers of successful and failed requests, and the fallback's own CORS
untouched."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from clarion.protocol.backend import ApiRequest, ApiRequestBuilder
from server_process import ServerProcess, launch

WAIT = 5.0

APP = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
"""

LISTED_CONFIG = (
    """
[server]
cors_origins = ["https://dash.example.com", "https://*.tools.example.com"]
"""
    + APP
)
OFF_CONFIG = "[server]\ncors_origins = []\n" + APP

Answer = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, ServerProcess]]:
    """Servers with the default (``*``), a list of origins, and CORS off."""
    directory = tmp_path_factory.mktemp("cors")
    started = {
        "default": launch(APP, directory),
        "listed": launch(LISTED_CONFIG, directory),
        "off": launch(OFF_CONFIG, directory),
    }
    yield started
    for server in started.values():
        server.stop()


def send(
    server: ServerProcess,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> Answer:
    client = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    try:
        client.request(method, target, body=body or None, headers=headers or {})
        response = client.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        client.close()


def send_signed(
    server: ServerProcess, request: ApiRequest, origin: str | None
) -> Answer:
    headers = {"Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    return send(server, request.method, request.target, headers, request.body)


def preflight(server: ServerProcess, origin: str, path: str) -> Answer:
    return send(
        server,
        "OPTIONS",
        path,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-pusher-library",
        },
    )


BUILDER = ApiRequestBuilder(app_id="1", key="app-key", secret="app-secret")


def test_default_preflight_allows_any_origin(
    servers: dict[str, ServerProcess],
) -> None:
    status, headers, body = preflight(
        servers["default"], "https://any.test", "/apps/1/events"
    )
    assert status == 204
    assert body == b""
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "content-type, x-pusher-library"
    assert headers["Access-Control-Max-Age"] == "7200"
    assert "Access-Control-Allow-Credentials" not in headers


def test_default_responses_carry_star(servers: dict[str, ServerProcess]) -> None:
    """Successes and errors alike carry the header, so a page reads both."""
    server = servers["default"]
    status, headers, _ = send_signed(server, BUILDER.channels(), "https://any.test")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"

    unsigned = send(server, "GET", "/apps/1/channels", {"Origin": "https://any.test"})
    assert unsigned[0] == 401
    assert unsigned[1]["Access-Control-Allow-Origin"] == "*"
    assert "error" in json.loads(unsigned[2])

    missing = send(server, "GET", "/apps/99/channels", {"Origin": "https://a.test"})
    assert missing[0] == 404
    assert missing[1]["Access-Control-Allow-Origin"] == "*"

    wrong_method = send(server, "DELETE", "/apps/1/events")
    assert wrong_method[0] == 405
    assert wrong_method[1]["Allow"] == "POST"
    assert wrong_method[1]["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    "origin", ["https://dash.example.com", "https://eu.tools.example.com"]
)
def test_listed_origin_is_echoed(
    servers: dict[str, ServerProcess], origin: str
) -> None:
    server = servers["listed"]
    status, headers, _ = preflight(server, origin, "/apps/1/events")
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == origin
    assert headers["Vary"] == "Origin"

    status, headers, body = send_signed(
        server, BUILDER.trigger(["c"], "e", "x"), origin
    )
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] == origin
    assert headers["Vary"] == "Origin"


def test_unlisted_origin_gets_no_allow_origin(
    servers: dict[str, ServerProcess],
) -> None:
    """A preflight from another origin gets 403, and an actual request is
    served (it is signed) without the header that would let a page read it."""
    server = servers["listed"]
    status, headers, body = preflight(server, "https://evil.test", "/apps/1/events")
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    assert "cors_origins" in json.loads(body)["error"]

    status, headers, _ = send_signed(server, BUILDER.channels(), "https://evil.test")
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers
    assert headers["Vary"] == "Origin"


def test_cors_off_sends_no_headers(servers: dict[str, ServerProcess]) -> None:
    server = servers["off"]
    status, headers, _ = preflight(server, "https://any.test", "/apps/1/events")
    assert status == 405
    assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = send_signed(server, BUILDER.channels(), "https://any.test")
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers


def test_fallback_keeps_its_own_cors(servers: dict[str, ServerProcess]) -> None:
    """The /pusher fallback echoes the page's origin whatever cors_origins contains."""
    server = servers["off"]
    status, headers, _ = preflight(
        server, "https://page.test", "/pusher/app/app-key/1/abc/xhr_send"
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "https://page.test"
    assert headers["Access-Control-Allow-Credentials"] == "true"


def test_health_endpoints_get_no_cors(servers: dict[str, ServerProcess]) -> None:
    status, headers, _ = send(servers["default"], "GET", "/up", {"Origin": "x://y"})
    assert status == 200
    assert "Access-Control-Allow-Origin" not in headers


def declare_large_body(server: ServerProcess, path: str, origin: str) -> bytes:
    """Send only the headers of a POST whose declared body is over
    max_body_bytes, and return the raw response the listener writes."""
    with socket.create_connection((server.host, server.port), timeout=WAIT) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\nOrigin: {origin}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n".encode()
        )
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    return received


def test_body_over_limit_answer_carries_cors(
    servers: dict[str, ServerProcess],
) -> None:
    """The 413 that the listener writes before the API sees the request still
    lets a listed page read it; other paths get no CORS headers."""
    server = servers["listed"]
    origin = "https://dash.example.com"

    for target in (
        "/apps/1/events?auth_key=app-key",
        f"http://{server.host}:{server.port}/apps/1/events",
    ):
        answer = declare_large_body(server, target, origin)
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        assert head.startswith("http/1.1 413"), target
        assert f"access-control-allow-origin: {origin}" in head, target

    other = declare_large_body(server, "/up", origin)
    other_head = other.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert other_head.startswith("http/1.1 413")
    assert "access-control-allow-origin" not in other_head
