"""The console's live log across two nodes that share a Redis."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pusher
import pytest
from console_harness import APP_SECRET, CONSOLE_TOKEN, WAIT_SECONDS, ConsoleHttp
from test_console_http import open_stream, read_sse_until

from server_process import ServerProcess, free_port, launch


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A fresh redis-server on a free port without persistence, stopped by PID."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server not found: run scripts/test.sh")
    port = free_port()
    with (tmp_path / "redis.log").open("wb") as log:
        process = subprocess.Popen(
            [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
            + ["--appendonly", "no", "--dir", str(tmp_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not listen") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=5)


@pytest.fixture
def two_nodes(redis_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    config = f"""
[server]
redis_url = "{redis_url}"
data_dir = "{tmp_path / "data"}"

[[apps]]
id = "1"
key = "app-key"
secret = "{APP_SECRET}"
"""
    nodes: list[ServerProcess] = []
    try:
        for _ in range(2):
            node = launch(
                config, tmp_path, env={"CLARION_CONSOLE_TOKEN": CONSOLE_TOKEN}
            )
            node.secret = APP_SECRET
            nodes.append(node)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_console_stream_shows_other_node(two_nodes: list[ServerProcess]) -> None:
    """A live log on one node shows an event triggered on the other."""
    watched, other = two_nodes
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    sdk = pusher.Pusher(
        app_id="1",
        key="app-key",
        secret=APP_SECRET,
        host=other.host,
        port=other.port,
        ssl=False,
    )
    _, _, stats = console.request("GET", "/console/api/apps/1/stats")
    watched_node = json.loads(stats)["node"]
    with open_stream(watched, console.cookies) as sock:
        read_sse_until(sock, b"event: recent", WAIT_SECONDS)
        # Nodes publish their events once they see a live log open somewhere,
        # which they check every 2 s, so trigger until one event arrives.
        attempts = 0
        while True:
            attempts += 1
            sdk.trigger("clustered", f"cluster-check-{attempts}", {})
            try:
                received = read_sse_until(sock, b"cluster-check", 0.5)
                break
            except AssertionError:
                assert attempts < 20, "no event from the other node within 10 s"
    for client in (sdk._pusher_client, sdk._authentication_client):
        client.http.session.close()

    record = json.loads(received.split(b"data: ")[-1].split(b"\n")[0])
    assert record[0]["kind"] == "api_event"
    assert record[0]["node"] != watched_node
