"""HTTP sessions behind the scale-out: `--workers 2` on one port, and two
nodes that share a Redis."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest
from fallback_harness import FALLBACK_CONFIG, HERE, ScriptClient, closed_port
from fallback_wire import Session
from interop_harness import PusherJsClient, stop_process

from server_process import ServerProcess, free_port, launch


class RedisServer:
    """A throwaway redis-server on 127.0.0.1, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.log = (directory / "redis.log").open("wb")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        "redis-server did not listen within 10 s"
                    ) from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def wait_for_workers(server: ServerProcess, workers: int) -> None:
    """Wait until every worker has logged that it listens, for at most 15 s."""
    deadline = time.monotonic() + 15
    while server.log_text().count("Listening on") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} workers did not listen within 15 s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> Iterator[ServerProcess]:
    """`clarion serve --workers 2`: two processes share the port (SO_REUSEPORT)."""
    directory = tmp_path_factory.mktemp("workers")
    process = launch(
        FALLBACK_CONFIG, directory, args=("--workers", "2", "--redis-url", redis.url)
    )
    try:
        wait_for_workers(process, 2)
    except RuntimeError:
        process.stop()
        raise
    yield process
    process.stop()


async def test_workers_accept_every_send(server: ServerProcess) -> None:
    """Every `xhr_send` of a session is accepted, whichever worker gets its
    connection."""
    session = Session(server.port)
    await session.open_polling()
    statuses = [(await session.send_body(b"[]")).status for _ in range(10)]
    assert statuses == [204] * 10


@pytest.mark.parametrize("transport", ["xhr_streaming", "xhr_polling"])
def test_workers_serve_pusher_js(
    connect_http: Callable[..., ScriptClient],
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
    transport: str,
) -> None:
    """pusher-js over HTTP subscribes and receives events from a two-worker
    server without losing its connection."""
    client = connect_http(transport)
    channel = unique("public-")
    client.subscribe(channel)
    for number in range(5):
        sdk.trigger(channel, "my-event", {"number": number})
    received = [client.wait_event(channel, "my-event")["data"] for _ in range(5)]
    assert received == [{"number": number} for number in range(5)]
    assert client.states() == ["connected"]


def test_nodes_relay_client_events(
    redis: RedisServer,
    connect_ws: Callable[..., PusherJsClient],
    auth_endpoint: object,
    clients: list[PusherJsClient],
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    """An HTTP client on one node and a WebSocket client on another exchange
    client events through Redis."""
    node = launch(FALLBACK_CONFIG, tmp_path, args=("--redis-url", redis.url))
    try:
        base_url = auth_endpoint.base_url  # type: ignore[attr-defined]
        http_client = ScriptClient(
            "xhr_polling client on the other node",
            HERE / "pusher_js_http.mjs",
            {
                "key": node.key,
                "httpPort": node.port,
                "wsPort": closed_port(),
                "transports": ["xhr_polling"],
                "authEndpoint": f"{base_url}/pusher/auth",
                "userAuthEndpoint": f"{base_url}/pusher/user-auth",
                "authParams": {},
            },
            tmp_path / "http-client.log",
        )
        clients.append(http_client)
        http_client.wait_connected()
        ws_client = connect_ws()
        channel = unique("private-")
        http_client.subscribe(channel)
        ws_client.subscribe(channel)

        assert http_client.trigger(channel, "client-from-http", {"n": 1}) is True
        from_http = ws_client.wait_event(channel, "client-from-http")
        assert ws_client.trigger(channel, "client-from-ws", {"n": 2}) is True
        from_ws = http_client.wait_event(channel, "client-from-ws")
    finally:
        for client in clients:
            client.request_exit()
        for client in clients:
            client.close()
        clients.clear()
        node.stop()
    assert from_http["data"] == {"n": 1}
    assert from_ws["data"] == {"n": 2}
