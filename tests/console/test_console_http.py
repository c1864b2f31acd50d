"""The console's routes over plain HTTP: sign-in, CSRF, JSON, the live log."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pusher
from console_harness import (
    APP_SECRET,
    CONSOLE_CONFIG,
    CONSOLE_TOKEN,
    WAIT_SECONDS,
    ConsoleHttp,
)

from server_process import ServerProcess


def test_console_off_without_token(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Without console_token the console path is an unknown route."""
    server = start_server()
    client = ConsoleHttp(server.host, server.port)

    status, _, _ = client.request("GET", "/console/login")

    assert status == 404


def test_console_short_token_rejected(
    start_server: Callable[..., ServerProcess],
) -> None:
    """The server refuses to start with a console token of under 16 characters."""
    try:
        start_server(env={"CLARION_CONSOLE_TOKEN": "short"})
    except RuntimeError as exc:
        message = str(exc)
    else:
        raise AssertionError("the server started with a 5-character console token")

    assert "console_token" in message


def test_console_api_without_session_rejected(console_http: ConsoleHttp) -> None:
    """JSON routes return 401 and pages redirect to the login page."""
    status, _, _ = console_http.request("GET", "/console/api/apps/1/channels")
    page_status, headers, _ = console_http.request("GET", "/console/apps/1")

    assert status == 401
    assert page_status == 303
    assert headers["location"] == "/console/login"


def test_console_forged_session_rejected(console_http: ConsoleHttp) -> None:
    """A session cookie with a changed expiry or signature is rejected."""
    assert console_http.login() == 303
    expires, _, rest = console_http.cookies["clarion_console_session"].partition(".")
    session_id, _, signature = rest.partition(".")
    # Flip the last character to one it cannot already be.
    changed = "1" if signature[-1] == "0" else "0"
    forged = {
        "later expiry": f"{int(expires) + 1}.{rest}",
        "other session id": f"{expires}.{session_id}x.{signature}",
        "changed signature": f"{expires}.{session_id}.{signature[:-1]}{changed}",
    }
    for case, value in forged.items():
        console_http.cookies["clarion_console_session"] = value
        status, _, _ = console_http.request("GET", "/console/api/apps")
        assert status == 401, case


def test_console_session_cookie_attributes(console_http: ConsoleHttp) -> None:
    """The session cookie is HttpOnly, SameSite=Strict and scoped to the console."""
    nonce = console_http.login_nonce()
    _, headers, _ = console_http.request(
        "POST", "/console/login", {"csrf_token": nonce, "token": CONSOLE_TOKEN}
    )
    cookie = headers["set-cookie"]

    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie


def test_console_login_nonce_must_match(console_http: ConsoleHttp) -> None:
    """A login whose CSRF field differs from its cookie is rejected with 403."""
    console_http.login_nonce()

    status, _, _ = console_http.request(
        "POST", "/console/login", {"csrf_token": "guessed", "token": CONSOLE_TOKEN}
    )

    assert status == 403
    assert "clarion_console_session" not in console_http.cookies


def test_console_trigger_without_csrf_rejected(console_http: ConsoleHttp) -> None:
    """A trigger with a session but no CSRF token is rejected with 403."""
    console_http.login()
    form = {"channel": "csrf-check", "event": "forged", "data": "{}"}

    status, _, body = console_http.request("POST", "/console/api/apps/1/events", form)
    other_status, _, _ = console_http.request(
        "POST", "/console/api/apps/1/events", {**form, "csrf_token": "0" * 64}
    )

    assert status == 403
    assert other_status == 403
    assert json.loads(body)["error"] == "Missing or invalid CSRF token"


def test_console_trigger_validates_like_api(console_http: ConsoleHttp) -> None:
    """The trigger form's input is checked by the HTTP API's rules."""
    console_http.login()
    csrf = console_http.csrf()
    cases = {
        "invalid channel": {"channel": "bad channel!", "event": "e"},
        "missing channel": {"channel": "", "event": "e"},
        "long event name": {"channel": "ok", "event": "e" * 201},
    }
    for case, fields in cases.items():
        status, _, _ = console_http.request(
            "POST",
            "/console/api/apps/1/events",
            {**fields, "data": "{}", "csrf_token": csrf},
            headers={"Accept": "application/json"},
        )
        assert status == 400, case


def test_console_trigger_without_script_redirects(console_http: ConsoleHttp) -> None:
    """A form posted without JavaScript publishes and redirects to the app page."""
    console_http.login()
    form = {
        "channel": "plain-form",
        "event": "e",
        "data": "{}",
        "csrf_token": console_http.csrf(),
    }

    status, headers, _ = console_http.request(
        "POST", "/console/api/apps/1/events", form
    )

    assert status == 303
    assert headers["location"] == "/console/apps/1"


def test_console_never_returns_app_secret(console_http: ConsoleHttp) -> None:
    """No page or JSON route of the console contains the app secret."""
    console_http.login()
    paths = [
        "/console/",
        "/console/apps/1",
        "/console/api/apps",
        "/console/api/apps/1/channels",
        "/console/api/apps/1/stats",
        "/console/static/app.js",
    ]
    for path in paths:
        status, _, body = console_http.request("GET", path)
        assert status == 200, path
        assert APP_SECRET.encode() not in body, path


def test_console_pages_send_security_headers(console_http: ConsoleHttp) -> None:
    """Pages forbid framing and load scripts and styles only from the server."""
    _, headers, _ = console_http.request("GET", "/console/login")
    policy = headers["content-security-policy"]

    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"


def test_console_members_need_presence_channel(console_http: ConsoleHttp) -> None:
    """Members of a channel that is not a presence channel are a 400."""
    console_http.login()

    status, _, _ = console_http.request(
        "GET", "/console/api/apps/1/members?channel=public"
    )

    assert status == 400


def test_console_stats_sample_every_second(console_http: ConsoleHttp) -> None:
    """The stats route returns about one sample per second since the start."""
    console_http.login()
    time.sleep(1.2)

    _, _, body = console_http.request("GET", "/console/api/apps/1/stats")
    stats = json.loads(body)

    assert stats["interval"] == 1.0
    assert len(stats["samples"]) >= 2
    assert stats["scope"] == "process"
    assert stats["cluster_error"] is None
    time_, connections, opened, events, nodes = stats["samples"][-1]
    assert connections >= 0
    assert nodes == 1


def read_sse_until(sock: socket.socket, text: bytes, timeout: float) -> bytes:
    """Read from a live log stream until ``text`` arrives or ``timeout`` passes."""
    received = b""
    deadline = time.monotonic() + timeout
    while text not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {text!r} within {timeout} s; got {received!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"stream closed before {text!r}; got {received!r}")
        received += chunk
    return received


def read_sse_to_end(sock: socket.socket, timeout: float) -> bytes:
    """Read from a live log stream until the server closes it."""
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"stream still open after {timeout} s: {received!r}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return received
        received += chunk


def open_stream(
    server: ServerProcess, cookies: dict[str, str], app_id: str = "1"
) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=WAIT_SECONDS)
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    sock.sendall(
        (
            f"GET /console/api/apps/{app_id}/stream HTTP/1.1\r\n"
            f"Host: {server.host}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
    )
    return sock


def test_console_stream_sends_api_events(
    console_server: ServerProcess,
    console_http: ConsoleHttp,
    python_sdk: pusher.Pusher,
) -> None:
    """The live log stream carries an event triggered through the HTTP API."""
    console_http.login()
    with open_stream(console_server, console_http.cookies) as sock:
        head = read_sse_until(sock, b"event: recent", WAIT_SECONDS)
        python_sdk.trigger("streamed", "stream-check", {"n": 1})
        received = read_sse_until(sock, b"stream-check", WAIT_SECONDS)

    assert b"Content-Type: text/event-stream" in head
    assert b'"kind": "api_event"' in received


def test_console_logout_revokes_copied_cookie(console_server: ServerProcess) -> None:
    """A copy of the session cookie taken before logout is rejected after it."""
    console = ConsoleHttp(console_server.host, console_server.port)
    console.login()
    copied = ConsoleHttp(console_server.host, console_server.port)
    copied.cookies = dict(console.cookies)
    assert copied.request("GET", "/console/api/apps")[0] == 200

    status, headers, _ = console.request(
        "POST", "/console/logout", {"csrf_token": console.csrf()}
    )

    assert status == 303
    assert headers["location"] == "/console/login"
    assert "clarion_console_session" not in console.cookies
    assert copied.request("GET", "/console/api/apps")[0] == 401
    status, headers, _ = copied.request("GET", "/console/")
    assert status == 303
    assert headers["location"] == "/console/login"


def test_console_logout_ends_open_stream(console_server: ServerProcess) -> None:
    """Logging out closes the live log that the session had open."""
    console = ConsoleHttp(console_server.host, console_server.port)
    console.login()
    csrf = console.csrf()
    with open_stream(console_server, console.cookies) as sock:
        read_sse_until(sock, b"event: recent", WAIT_SECONDS)

        status, _, _ = console.request("POST", "/console/logout", {"csrf_token": csrf})

        assert status == 303
        read_sse_to_end(sock, WAIT_SECONDS)


def test_console_new_login_after_logout(console_http: ConsoleHttp) -> None:
    """Logging in again after a logout gives a new, working session."""
    console_http.login()
    old_cookie = console_http.cookies["clarion_console_session"]
    console_http.request("POST", "/console/logout", {"csrf_token": console_http.csrf()})

    assert console_http.login() == 303

    assert console_http.cookies["clarion_console_session"] != old_cookie
    assert console_http.request("GET", "/console/api/apps")[0] == 200


def test_console_token_change_ends_sessions(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A server restarted with another admin token rejects the old cookie,
    while one restarted with the same token accepts it."""
    env = {"CLARION_CONSOLE_TOKEN": CONSOLE_TOKEN}
    first = start_server(CONSOLE_CONFIG, env=env)
    console = ConsoleHttp(first.host, first.port)
    console.login()
    first.stop()

    same_token = start_server(CONSOLE_CONFIG, env=env)
    other_token = start_server(
        CONSOLE_CONFIG, env={"CLARION_CONSOLE_TOKEN": "another-console-token-0123"}
    )

    for server, expected in ((same_token, 200), (other_token, 401)):
        copied = ConsoleHttp(server.host, server.port)
        copied.cookies = dict(console.cookies)
        assert copied.request("GET", "/console/api/apps")[0] == expected
