"""Helpers for the cluster tests: redis-server child processes, Clarion nodes
that share one Redis, WebSocket peers that keep every frame, markers that make
"exactly once" checks exact, and a webhook receiver.

Every process here is started by the tests and stopped by its PID.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clarion_e2e import (
    ApiClient,
    ApiResponse,
    Frame,
    WireClient,
    channel_auth,
    compact,
    open_established,
    signin_auth,
)
from websockets.exceptions import ConnectionClosed

from server_process import ServerProcess, free_port, launch

WAIT_TIMEOUT = 5.0
"""Seconds that one wait for a frame, a process or an HTTP state may take.
Everything runs on loopback, so a healthy run needs far less."""

HEARTBEAT_INTERVAL = 2.0
"""Seconds between two heartbeats of a node, as the Redis adapter sets it."""

REMOVAL_SLACK = 4.0
"""Seconds allowed beyond ``node_timeout`` for removing a dead node: its last
heartbeat may be up to one interval old when it dies, and the survivors look
for dead nodes once per interval."""

APP_ID = "101"
APP_KEY = "cluster-key"
APP_SECRET = "cluster-secret"

COUNTS_APP_ID = "102"
COUNTS_APP_KEY = "counts-key"
COUNTS_APP_SECRET = "counts-secret"
"""An app with ``subscription_count_events``, kept apart so that count frames
never reach the peers of the other tests."""

LIMITS_APP_ID = "103"
LIMITS_APP_KEY = "limits-key"
LIMITS_APP_SECRET = "limits-secret"
MAX_PRESENCE_MEMBERS = 2
"""The presence member limit of the limits app."""

SECRETS = {
    APP_KEY: APP_SECRET,
    COUNTS_APP_KEY: COUNTS_APP_SECRET,
    LIMITS_APP_KEY: LIMITS_APP_SECRET,
}
"""App key to app secret, for signing channel auth and sign-ins."""

CREDENTIALS = {
    APP_ID: (APP_KEY, APP_SECRET),
    COUNTS_APP_ID: (COUNTS_APP_KEY, COUNTS_APP_SECRET),
    LIMITS_APP_ID: (LIMITS_APP_KEY, LIMITS_APP_SECRET),
}
"""App id to its key and secret, for the HTTP API."""


def unique(prefix: str) -> str:
    """Return ``prefix`` followed by a random suffix, for channel and user names."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# redis-server


def redis_executable() -> str:
    """Return the `redis-server` on PATH, or raise with the missing setup step."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(
            "redis-server not found on PATH: install the redis-server package "
            "(scripts/test.sh does this)"
        )
    return executable


@dataclass
class RedisServer:
    """A redis-server child process on 127.0.0.1 with no persistence.

    Calling ``start`` again after ``kill`` starts a fresh, empty server on the
    same port, which is what a Redis without persistence looks like after a
    crash.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    tls_files: dict[str, Path] | None = None
    """``cert``, ``key`` and ``ca`` files; the server then speaks only TLS."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL that the nodes use, with the password and CA file if any."""
        credentials = f":{self.password}@" if self.password else ""
        if self.tls_files is None:
            return f"redis://{credentials}127.0.0.1:{self.port}/0"
        ca_file = self.tls_files["ca"]
        return f"rediss://{credentials}127.0.0.1:{self.port}/0?ssl_ca_certs={ca_file}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"redis-{self.port}.log"

    def start(self) -> None:
        """Start redis-server and wait until it accepts connections."""
        command = [
            redis_executable(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        if self.tls_files is None:
            command += ["--port", str(self.port)]
        else:
            command += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls_files["cert"]),
                "--tls-key-file",
                str(self.tls_files["key"]),
                "--tls-ca-cert-file",
                str(self.tls_files["ca"]),
                "--tls-auth-clients",
                "no",
            ]
        if self.password:
            command += ["--requirepass", self.password]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode}\n"
                    + self.log_path.read_text(errors="replace")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on port {self.port}")

    def kill(self) -> None:
        """Kill redis-server with SIGKILL, as a crash would."""
        self._signal_and_wait(signal.SIGKILL)

    def pause(self) -> None:
        """Pause redis-server with SIGSTOP: connections stay open, but Redis
        sends no replies until ``resume``."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop redis-server by its PID: SIGTERM, then SIGKILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=WAIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._signal_and_wait(signal.SIGKILL)

    def _signal_and_wait(self, signum: int) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)
        self.process.wait(timeout=WAIT_TIMEOUT)


# Clarion nodes


def toml_string(value: str) -> str:
    """Encode ASCII text as a TOML basic string (JSON's quoting is valid TOML)."""
    return json.dumps(value)


def node_config(
    data_dir: Path,
    *,
    node_timeout: int = 10,
    server: dict[str, Any] | None = None,
    webhook_url: str | None = None,
) -> str:
    """Return a node config with the test apps and no ``redis_url``.

    ``server`` adds keys to ``[server]``. With ``webhook_url``, the main app
    sends every webhook event type there.
    """
    lines = [
        "[server]",
        "activity_timeout = 120",
        f"data_dir = {toml_string(str(data_dir))}",
        f"node_timeout = {node_timeout}",
    ]
    for name, value in (server or {}).items():
        encoded = toml_string(value) if isinstance(value, str) else str(value)
        lines.append(f"{name} = {encoded}")
    lines += [
        "",
        "[[apps]]",
        f"id = {toml_string(APP_ID)}",
        f"key = {toml_string(APP_KEY)}",
        f"secret = {toml_string(APP_SECRET)}",
        "client_events = true",
    ]
    if webhook_url is not None:
        event_types = [
            "channel_occupied",
            "channel_vacated",
            "member_added",
            "member_removed",
            "client_event",
            "cache_miss",
            "user_online",
            "user_offline",
        ]
        lines += [
            "",
            "[[apps.webhooks]]",
            f"url = {toml_string(webhook_url)}",
            f"event_types = {json.dumps(event_types)}",
        ]
    lines += [
        "",
        "[[apps]]",
        f"id = {toml_string(COUNTS_APP_ID)}",
        f"key = {toml_string(COUNTS_APP_KEY)}",
        f"secret = {toml_string(COUNTS_APP_SECRET)}",
        "subscription_count_events = true",
        "",
        "[[apps]]",
        f"id = {toml_string(LIMITS_APP_ID)}",
        f"key = {toml_string(LIMITS_APP_KEY)}",
        f"secret = {toml_string(LIMITS_APP_SECRET)}",
        f"max_presence_members = {MAX_PRESENCE_MEMBERS}",
    ]
    return "\n".join(lines) + "\n"


def with_redis_url(config: str, redis_url: str) -> str:
    """Return ``config`` with ``redis_url`` added at the top of ``[server]``."""
    header = "[server]\n"
    if header not in config:
        raise ValueError("the node config needs a [server] table for redis_url")
    return config.replace(header, f"{header}redis_url = {toml_string(redis_url)}\n", 1)


JOINED_LOG_TEXT = " is reachable"
"""Text of the log line that a node writes after its first heartbeat."""


def launch_node(
    config: str,
    directory: Path,
    redis_url: str | None,
    *,
    wait_joined: bool = True,
) -> ServerProcess:
    """Start one node with ``config``, joined to ``redis_url`` when given.

    With ``wait_joined``, return only once the node has written its first
    heartbeat to Redis. NOTE: before that, a node serves every request from
    its local state only, as during a Redis outage. That startup window is a
    known bug with a test of its own, so the other tests wait it out.
    """
    if redis_url is not None:
        config = with_redis_url(config, redis_url)
    node = launch(config, directory)
    node.app_id, node.key, node.secret = APP_ID, APP_KEY, APP_SECRET
    if redis_url is not None and wait_joined:
        wait_joined_redis(node)
    return node


def wait_joined_redis(node: ServerProcess, processes: int = 1) -> None:
    """Wait until ``processes`` server processes logging to the node's log
    (its workers, for a supervisor) have each reached Redis once."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while node.log_text().count(JOINED_LOG_TEXT) < processes:
        if time.monotonic() >= deadline:
            node.stop()
            raise RuntimeError(
                f"server on port {node.port} did not reach Redis within "
                f"{WAIT_TIMEOUT} s\n{node.log_text()}"
            )
        time.sleep(0.02)


@dataclass
class Cluster:
    """Clarion nodes that share one Redis, or a single node without Redis.

    ``node(i)`` wraps around, so a test written for two nodes runs unchanged
    against one: its peers then all land on the same process.
    """

    nodes: list[ServerProcess]
    redis: RedisServer | None

    def node(self, index: int) -> ServerProcess:
        return self.nodes[index % len(self.nodes)]

    def api(self, index: int, *, app: str = APP_ID) -> ApiClient:
        """Return a signing HTTP client for an app of node ``index``."""
        node = self.node(index)
        key, secret = CREDENTIALS[app]
        return ApiClient(node.host, node.port, app, key, secret)

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self) -> str:
        """Return every node's log, for failure messages."""
        return "\n".join(
            f"--- node on port {node.port} ---\n{node.log_text()[-6000:]}"
            for node in self.nodes
        )


def kill_node(node: ServerProcess) -> None:
    """Kill a node with SIGKILL, so that it cannot remove its share from Redis."""
    os.kill(node.process.pid, signal.SIGKILL)
    node.process.wait(timeout=WAIT_TIMEOUT)


# WebSocket peers


class Peer:
    """A WebSocket client of one node that keeps every frame it receives.

    ``wait_for`` consumes the oldest unconsumed matching frame, so waiting twice
    for the same kind of frame needs two of them. ``frames`` keeps every frame,
    consumed or not, so counts include them all.
    """

    def __init__(
        self, name: str, wire: WireClient, node: ServerProcess, key: str = APP_KEY
    ) -> None:
        self.name = name
        self.wire = wire
        self.node = node
        self.key = key
        self.secret = SECRETS[key]
        self.frames: list[Frame] = []
        self._consumed: set[int] = set()

    @property
    def socket_id(self) -> str:
        assert self.wire.socket_id is not None
        return self.wire.socket_id

    async def wait_for(
        self,
        description: str,
        predicate: Callable[[Frame], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> Frame:
        """Return the oldest unconsumed frame matching ``predicate``, reading more
        frames until one arrives; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.frames):
                if index not in self._consumed and predicate(self.frames[index]):
                    self._consumed.add(index)
                    return self.frames[index]
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(self.wire.connection.recv(), remaining)
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                raise AssertionError(
                    f"{self.name}: socket closed ({exc}) while waiting for "
                    f"{description}\n{self.describe()}"
                ) from None
            self.frames.append(Frame(str(message)))
        raise AssertionError(
            f"{self.name}: no {description} within {timeout} s\n{self.describe()}"
        )

    async def wait_event(
        self, channel: str, event: str, timeout: float = WAIT_TIMEOUT
    ) -> Frame:
        return await self.wait_for(
            f"event {event!r} on {channel}",
            lambda f: f.event == event and f.message.get("channel") == channel,
            timeout,
        )

    def events(self, channel: str, event: str) -> list[Frame]:
        """Return every ``event`` on ``channel`` received so far."""
        return [
            frame
            for frame in self.frames
            if frame.event == event and frame.message.get("channel") == channel
        ]

    def count(self, channel: str, event: str) -> int:
        return len(self.events(channel, event))

    async def subscribe(
        self,
        channel: str,
        *,
        auth: str | None = None,
        channel_data: str | None = None,
        expect_error: bool = False,
    ) -> Frame:
        """Subscribe and return ``subscription_succeeded``, or with
        ``expect_error`` the ``subscription_error``; fail on the other one."""
        data: dict[str, str] = {"channel": channel}
        if auth is not None:
            data["auth"] = auth
        if channel_data is not None:
            data["channel_data"] = channel_data
        await self.wire.send_json({"event": "pusher:subscribe", "data": data})
        reply = await self.wait_for(
            f"subscription result on {channel}",
            lambda f: (
                f.message.get("channel") == channel
                and f.event
                in (
                    "pusher_internal:subscription_succeeded",
                    "pusher:subscription_error",
                )
            ),
        )
        expected = (
            "pusher:subscription_error"
            if expect_error
            else "pusher_internal:subscription_succeeded"
        )
        assert reply.event == expected, (
            f"{self.name}: subscribing to {channel} gave {reply.text}"
        )
        return reply

    async def subscribe_private(self, channel: str) -> Frame:
        auth = channel_auth(self.key, self.secret, self.socket_id, channel)
        return await self.subscribe(channel, auth=auth)

    async def join_presence(
        self,
        channel: str,
        user_id: str,
        user_info: Any = None,
        *,
        expect_error: bool = False,
    ) -> Frame:
        """Join a presence channel as ``user_id`` and return the reply."""
        channel_data = compact({"user_id": user_id, "user_info": user_info or {}})
        auth = channel_auth(
            self.key, self.secret, self.socket_id, channel, channel_data
        )
        return await self.subscribe(
            channel, auth=auth, channel_data=channel_data, expect_error=expect_error
        )

    async def sign_in(self, user_id: str, watchlist: Sequence[str] = ()) -> Frame:
        """Send ``pusher:signin`` as ``user_id`` and return ``signin_success``."""
        user: dict[str, Any] = {"id": user_id, "user_info": {"name": user_id}}
        if watchlist:
            user["watchlist"] = list(watchlist)
        user_data = compact(user)
        auth = signin_auth(self.key, self.secret, self.socket_id, user_data)
        await self.wire.send_json(
            {"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}
        )
        return await self.wait_for(
            "pusher:signin_success", lambda f: f.event == "pusher:signin_success"
        )

    async def trigger_client_event(self, channel: str, event: str, data: Any) -> None:
        await self.wire.send_json({"event": event, "channel": channel, "data": data})

    async def barrier(self) -> None:
        """Send ``pusher:ping`` and wait for the pong.

        The node handles one connection's messages in order, so once the pong
        arrives, everything this peer sent before it has been handled,
        including the cluster messages that handling published.
        """
        await self.wire.send_text('{"event":"pusher:ping","data":{}}')
        await self.wait_for("pusher:pong", lambda f: f.event == "pusher:pong")

    async def wait_closed(self, timeout: float = WAIT_TIMEOUT) -> int | None:
        """Wait until the node closes the socket and return the close code."""
        code, _reason = await self.wire.wait_closed(timeout)
        return code

    async def close(self) -> None:
        await self.wire.close()

    def describe(self) -> str:
        lines = [frame.text for frame in self.frames[-40:]]
        return f"frames of {self.name} (last 40):\n  " + "\n  ".join(
            lines or ["(none)"]
        )


class Peers:
    """Opens peers on nodes and closes all of them at the end of a test."""

    def __init__(self) -> None:
        self.opened: list[Peer] = []

    async def open(
        self, node: ServerProcess, name: str | None = None, *, key: str = APP_KEY
    ) -> Peer:
        url = f"ws://{node.host}:{node.port}/app/{key}?protocol=7&client=cluster-test"
        wire = await open_established(url)
        peer = Peer(name or f"peer {len(self.opened) + 1}", wire, node, key)
        self.opened.append(peer)
        return peer

    async def close_all(self) -> None:
        for peer in self.opened:
            await peer.close()


async def send_marker(api: ApiClient, channel: str, peers: Sequence[Peer]) -> None:
    """Trigger a unique ``marker`` event on ``channel`` and wait until every peer
    has it.

    A node writes each connection's frames in order, and Redis passes
    publications to the other nodes in the order it executed them. So once a
    peer has the marker, its ``frames`` also contain every event that the
    marker's node published before it, and a count taken then is final.
    """
    marker = unique("marker-")
    response = await api.trigger({"name": "marker", "channel": channel, "data": marker})
    assert response.status == 200, f"marker trigger failed: {response.body!r}"
    for peer in peers:
        await peer.wait_for(
            f"marker {marker} on {channel}",
            lambda f: f.event == "marker" and f.data == marker,
        )


async def trigger(
    api: ApiClient, channel: str, event: str, data: str, socket_id: str | None = None
) -> ApiResponse:
    payload = {"name": event, "channel": channel, "data": data}
    if socket_id is not None:
        payload["socket_id"] = socket_id
    response = await api.trigger(payload)
    assert response.status == 200, (
        f"trigger failed: {response.status} {response.body!r}"
    )
    return response


async def read_json(
    api: ApiClient, suffix: str, query: dict[str, str] | None = None
) -> Any:
    """GET an HTTP API path of the app and return its JSON; fail on non-200."""
    response = await api.get_json(suffix, query)
    assert response.status == 200, (
        f"GET {suffix} {query} on port {api.port}: {response.status} {response.body!r}"
    )
    return response.json()


async def wait_until_http(
    description: str,
    read: Callable[[], Any],
    expected: Any,
    timeout: float = WAIT_TIMEOUT,
) -> Any:
    """Poll the coroutine function ``read`` every 0.1 s until it returns
    ``expected`` or ``timeout`` passes.

    Returns the last value either way, so the caller's assert shows what the
    node reported.
    """
    deadline = time.monotonic() + timeout
    value = await read()
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await read()
    return value


def frame_data(frame: Frame) -> Any:
    """Decode a frame's ``data``, which the protocol sends as a JSON string."""
    data = frame.data
    return json.loads(data) if isinstance(data, str) else data


# Webhooks


@dataclass
class WebhookRequest:
    body: bytes
    key: str
    signature: str
    status: int
    """HTTP status of the receiver's response."""

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["events"])


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POST and responds with 200,
    or with ``failure_status`` while that is set."""

    def __init__(self) -> None:
        self.requests: list[WebhookRequest] = []
        self.failure_status: int | None = None
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="webhook receiver",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}/webhooks"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=WAIT_TIMEOUT)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Return every event delivered so far (in a request that got 200),
        optionally of one type."""
        with self._lock:
            requests = [r for r in self.requests if r.status == 200]
        return [
            event
            for request in requests
            for event in request.events
            if name is None or event["name"] == name
        ]

    def failed_count(self) -> int:
        """Return how many requests got ``failure_status``."""
        with self._lock:
            return sum(1 for r in self.requests if r.status != 200)

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[Any]:
        return [event for event in self.events() if predicate(event)]

    def bad_signatures(self) -> list[WebhookRequest]:
        """Return requests not signed with the app's key and secret."""
        with self._lock:
            requests = list(self.requests)
        return [
            request
            for request in requests
            if request.key != APP_KEY
            or request.signature
            != hmac.new(APP_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        ]

    async def wait_for(
        self,
        description: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
    ) -> None:
        """Wait until an event matching ``predicate`` has arrived."""
        deadline = time.monotonic() + timeout
        while not self.matching(predicate):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no webhook with {description} within {timeout} s; received: "
                    f"{self.events()}"
                )
            await asyncio.sleep(0.05)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status = receiver.failure_status or 200
                request = WebhookRequest(
                    body,
                    self.headers.get("X-Pusher-Key", ""),
                    self.headers.get("X-Pusher-Signature", ""),
                    status,
                )
                with receiver._lock:
                    receiver.requests.append(request)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                # The receiver keeps the requests itself; keep stderr clean.
                pass

        return Handler


async def wait_for_condition(
    description: str, condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT
) -> None:
    """Poll ``condition`` every 50 ms; fail naming ``description`` on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {description}"
            )
        await asyncio.sleep(0.05)
