"""Helpers for the webhook tests: a webhook receiver on 127.0.0.1 whose responses
each test controls, config text for servers that send webhooks to it, a raw
WebSocket client, and ways to look at a server's log, outbox and CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import select
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher
from websockets.sync.client import ClientConnection, connect

from server_process import ServerProcess, free_port

WAIT_TIMEOUT = 10.0
"""Seconds any single wait may take. A webhook that fails once is retried
within 1 s and a second time within 2 s more, so 10 s covers a few retries."""

HANG_LIMIT = 30.0
"""Seconds a hanging receiver holds a request when the test never releases it."""

Event = dict[str, Any]


@dataclass(frozen=True)
class AppSpec:
    """One app of a test server config, with its webhook URL tables."""

    id: str
    key: str
    secret: str
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """More keys of the `[[apps]]` table, such as `cache_ttl`."""


APP = AppSpec("4711", "hook-key", "hook-secret-must-never-be-logged")
OTHER_APP = AppSpec("4712", "other-key", "other-secret-must-never-be-logged")


def toml_value(value: Any) -> str:
    """Encode a string, number, bool, list or flat table as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        # A JSON string of ASCII text is also a valid TOML basic string.
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }"
    raise TypeError(f"cannot encode {value!r} as TOML")


def webhook_config(
    data_dir: Path,
    apps: list[AppSpec],
    *,
    batch_ms: int = 50,
    delay_ms: int = 400,
    timeout: int = 1,
    retry_window: int = 60,
) -> str:
    """Return a server config with short webhook timings, for `start_server`."""
    lines = [
        "[server]",
        f"data_dir = {toml_value(str(data_dir))}",
        f"webhook_batch_ms = {batch_ms}",
        f"webhook_delay_ms = {delay_ms}",
        f"webhook_timeout = {timeout}",
        f"webhook_retry_window = {retry_window}",
    ]
    for app in apps:
        lines += [
            "",
            "[[apps]]",
            f"id = {toml_value(app.id)}",
            f"key = {toml_value(app.key)}",
            f"secret = {toml_value(app.secret)}",
            "client_events = true",
        ]
        lines += [f"{name} = {toml_value(v)}" for name, v in app.settings.items()]
        for webhook in app.webhooks:
            lines += ["", "[[apps.webhooks]]"]
            lines += [f"{name} = {toml_value(v)}" for name, v in webhook.items()]
    return "\n".join(lines) + "\n"


# The receiver


@dataclass
class ReceivedRequest:
    """One POST that reached the receiver, and the receiver's response."""

    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    verified: bool
    """Whether X-Pusher-Key names a known app and X-Pusher-Signature is the
    HMAC-SHA256 of exactly `body` with that app's secret."""
    status: int | None = None
    """Response status, or None while the request is held or after a hang-up."""
    received_at: float = field(default_factory=time.time)
    """Unix time when the body had arrived."""

    @property
    def key(self) -> str:
        return self.headers.get("x-pusher-key", "")

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def events(self) -> list[Event]:
        return list(self.payload["events"])

    @property
    def delivered(self) -> bool:
        return self.verified and self.status is not None and 200 <= self.status < 300


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records webhook requests and responds as
    the test sets: 200, an error status for the next N requests, after a
    delay, not at all (hang), or not listening at all (down).

    A request whose key is unknown or whose signature is wrong gets 401, as a
    real app would respond, and `unverified()` lists it.
    """

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        """App key to app secret."""
        self.port = free_port()
        self.requests: list[ReceivedRequest] = []
        self.held_count = 0
        """Requests held by `hang` right now whose sender still waits."""
        self.max_held_count = 0
        self._failures_left = 0
        self._failure_status = 500
        self._delay = 0.0
        self._hang = False
        self._release = threading.Event()
        self._changed = threading.Condition()
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/webhooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # Behaviour

    def start(self) -> None:
        """Listen on the receiver's port (again, after `stop`)."""
        if self._http is not None:
            return
        self._http = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        # Held requests must not keep `stop` from closing the socket.
        self._http.daemon_threads = True
        self._http.block_on_close = False
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"webhook receiver {self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, so that connections to the port are refused."""
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        assert self._thread is not None
        self._thread.join(timeout=WAIT_TIMEOUT)
        self._http = None

    def close(self) -> None:
        self.release()
        self.stop()

    def fail_next(self, count: int, status: int = 500) -> None:
        """Respond to the next `count` requests with `status`, then 200 again."""
        with self._changed:
            self._failures_left = count
            self._failure_status = status

    def respond_after(self, seconds: float) -> None:
        """Wait `seconds` before responding to each request."""
        self._delay = seconds

    def hang(self) -> None:
        """Hold each new request without a response until `release` (or for
        HANG_LIMIT seconds, or until the sender hangs up), then hang up."""
        self._release.clear()
        self._hang = True

    def release(self) -> None:
        """Hang up on held requests and respond to new ones normally again."""
        self._hang = False
        self._release.set()

    # Looking at what arrived

    def delivered(self) -> list[ReceivedRequest]:
        """Return the verified requests that got a 2xx response, in arrival order."""
        with self._changed:
            return [request for request in self.requests if request.delivered]

    def unverified(self) -> list[ReceivedRequest]:
        with self._changed:
            return [request for request in self.requests if not request.verified]

    def events(self, name: str | None = None) -> list[Event]:
        """Return the events of every delivered request, optionally of one type."""
        return [
            event
            for request in self.delivered()
            for event in request.events
            if name is None or event["name"] == name
        ]

    def wait_until(
        self,
        description: str,
        condition: Callable[[], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> None:
        """Wait until `condition` is true. After `timeout` seconds, raise
        AssertionError naming `description` and listing every request received."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout} s waiting until {description}\n"
                        + self.describe()
                    )
                # Wake at least every 0.1 s for conditions on state kept elsewhere.
                self._changed.wait(min(remaining, 0.1))

    def wait_for_event(
        self,
        description: str,
        predicate: Callable[[Event], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> Event:
        """Return the first delivered event matching `predicate`, waiting for it."""
        found: list[Event] = []

        def arrived() -> bool:
            found[:] = [event for event in self.events() if predicate(event)]
            return bool(found)

        self.wait_until(f"webhook event {description} arrives", arrived, timeout)
        return found[0]

    def wait_for_request(
        self,
        description: str,
        predicate: Callable[[ReceivedRequest], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> ReceivedRequest:
        """Return the first request (delivered or not) matching `predicate`."""
        found: list[ReceivedRequest] = []

        def arrived() -> bool:
            found[:] = [request for request in self.requests if predicate(request)]
            return bool(found)

        self.wait_until(f"a request with {description} arrives", arrived, timeout)
        return found[0]

    def describe(self) -> str:
        with self._changed:
            lines = [
                f"{request.status} {request.path} key={request.key} "
                f"verified={request.verified} {request.body.decode(errors='replace')}"
                for request in self.requests
            ]
        return "requests received:\n  " + "\n  ".join(lines or ["(none)"])

    # Serving

    def _receive(
        self,
        path: str,
        headers: dict[str, str],
        body: bytes,
        peer_closed: Callable[[], bool],
    ) -> tuple[ReceivedRequest, int | None]:
        """Record one request and return it with the status to respond with, or
        None to hang up without a response. `peer_closed` returns whether the
        sender hung up."""
        secret = self.secrets.get(headers.get("x-pusher-key", ""))
        signature = headers.get("x-pusher-signature", "")
        verified = secret is not None and hmac.compare_digest(
            hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), signature
        )
        request = ReceivedRequest(path, headers, body, verified)
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            if self._hang:
                self.held_count += 1
                self.max_held_count = max(self.max_held_count, self.held_count)
                hold = True
            else:
                hold = False
                status = 200 if verified else 401
                if verified and self._failures_left > 0:
                    self._failures_left -= 1
                    status = self._failure_status
        if hold:
            deadline = time.monotonic() + HANG_LIMIT
            while (
                not self._release.wait(0.05)
                and time.monotonic() < deadline
                and not peer_closed()
            ):
                pass
            with self._changed:
                self.held_count -= 1
                self._changed.notify_all()
            return request, None
        if self._delay:
            time.sleep(self._delay)
        return request, status

    def _responded(self, request: ReceivedRequest, status: int) -> None:
        with self._changed:
            request.status = status
            self._changed.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                request, status = receiver._receive(
                    self.path, headers, body, self._peer_closed
                )
                if status is None:
                    self.close_connection = True
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    # The server gave up waiting and closed the connection, so
                    # the request keeps no status.
                    return
                receiver._responded(request, status)

            def _peer_closed(self) -> bool:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# Servers, logs and the outbox


def wait_for_log(
    server: ServerProcess,
    pattern: str,
    *,
    count: int = 1,
    timeout: float = WAIT_TIMEOUT,
) -> list[str]:
    """Wait until `count` lines of the server log match the regex `pattern` and
    return the matching lines."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.log_text().splitlines() if regex.search(line)]
        if len(lines) >= count:
            return lines
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {count} log line(s) "
                f"matching {pattern!r}\nserver log:\n{server.log_text()[-4000:]}"
            )
        time.sleep(0.05)


def kill_server(server: ServerProcess) -> None:
    """Kill the server with SIGKILL, by its PID, and wait for it to exit."""
    server.process.kill()
    server.process.wait(timeout=WAIT_TIMEOUT)


def outbox_rows(data_dir: Path, table: str = "webhook_outbox") -> int:
    """Return how many rows the outbox file's `table` has right now."""
    uri = f"file:{data_dir / 'webhooks.sqlite3'}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `clarion ARGS` in a child process and return its outcome."""
    return subprocess.run(
        [sys.executable, "-m", "clarion", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# Clients


class RawClient:
    """A Pusher protocol client on a plain WebSocket, for public channels."""

    def __init__(self, server: ServerProcess, app: AppSpec) -> None:
        url = f"ws://{server.host}:{server.port}/app/{app.key}?protocol=7&client=test"
        # websockets 17.1 and later want connect() used as a context manager.
        self._exit_stack = ExitStack()
        self.connection: ClientConnection = self._exit_stack.enter_context(
            connect(url, open_timeout=WAIT_TIMEOUT)
        )
        established = self.receive()
        assert established["event"] == "pusher:connection_established", established
        self.socket_id = json.loads(established["data"])["socket_id"]

    def receive(self, timeout: float = WAIT_TIMEOUT) -> dict[str, Any]:
        return dict(json.loads(self.connection.recv(timeout=timeout)))

    def wait_for(
        self, event: str, channel: str, timeout: float = WAIT_TIMEOUT
    ) -> dict[str, Any]:
        """Return the next message named `event` on `channel`, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event} on {channel} within {timeout} s")
            message = self.receive(remaining)
            if message.get("event") == event and message.get("channel") == channel:
                return message

    def send_subscribe(self, channel: str) -> None:
        message = {"event": "pusher:subscribe", "data": {"channel": channel}}
        self.connection.send(json.dumps(message))

    def subscribe(self, *channels: str) -> None:
        """Subscribe to every channel at once, then wait for each confirmation."""
        for channel in channels:
            self.send_subscribe(channel)
        for channel in channels:
            self.wait_for("pusher_internal:subscription_succeeded", channel)

    def unsubscribe(self, channel: str) -> None:
        message = {"event": "pusher:unsubscribe", "data": {"channel": channel}}
        self.connection.send(json.dumps(message))

    def close(self) -> None:
        self._exit_stack.close()


def build_sdk(server: ServerProcess, app: AppSpec = APP) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=app.id,
        key=app.key,
        secret=app.secret,
        host=server.host,
        port=server.port,
        ssl=False,
    )


def close_sdk(sdk: pusher.Pusher) -> None:
    """Close the SDK's pooled HTTP connections (it has no public close)."""
    for client in (sdk._pusher_client, sdk._authentication_client):
        client.http.session.close()


# Looking at events


def is_event(
    name: str, channel: str | None = None, **fields: Any
) -> Callable[[Event], bool]:
    """Return a predicate for a webhook event with this name, channel and fields."""

    def matches(event: Event) -> bool:
        if event["name"] != name:
            return False
        if channel is not None and event.get("channel") != channel:
            return False
        return all(event.get(key) == value for key, value in fields.items())

    return matches


def count_events(
    receiver: WebhookReceiver, name: str, channel: str | None = None, **fields: Any
) -> int:
    """Return how many delivered events match `is_event(name, channel, **fields)`."""
    return len([e for e in receiver.events() if is_event(name, channel, **fields)(e)])
