"""The console across two nodes that share a Redis: the live log, the
connection totals and chart, and logout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pusher
import pytest
import redis
from cluster_harness import APP_ID, APP_KEY, APP_SECRET, RedisServer, kill_node
from console_harness import (
    CLUSTER_NODE_TIMEOUT,
    WAIT_SECONDS,
    Browser,
    ConsoleHttp,
    screenshot_folder,
)
from test_console_http import open_stream, read_sse_to_end, read_sse_until
from websockets.sync.client import ClientConnection, connect

from clarion.server.console.sessions import REFRESH_SECONDS
from server_process import ServerProcess

STATS = f"/console/api/apps/{APP_ID}/stats"
TOTALS_SECONDS = 2 * WAIT_SECONDS
"""Maximum wait for the totals to reach a value: nodes sample once a second,
and a busy machine can delay a sample."""


def open_clients(node: ServerProcess, count: int, stack: ExitStack) -> None:
    """Open ``count`` Pusher connections to ``node``, closed with ``stack``."""
    url = f"ws://{node.host}:{node.port}/app/{APP_KEY}?protocol=7&client=console"
    for _ in range(count):
        client: ClientConnection = stack.enter_context(connect(url))
        established = json.loads(client.recv(timeout=WAIT_SECONDS))
        assert established["event"] == "pusher:connection_established"


def wait_stats(
    console: ConsoleHttp, accept: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Poll the stats route until ``accept`` takes the response; return it.

    Nodes write their samples once a second, so the totals lag by up to two
    seconds; ``timeout`` bounds the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = console.request("GET", STATS)
        assert status == 200, body
        stats: dict[str, Any] = json.loads(body)
        if accept(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"stats not as expected in {timeout} s: {stats}")
        time.sleep(0.2)


def latest(stats: dict[str, Any]) -> list[Any]:
    samples: list[list[Any]] = stats["samples"]
    return samples[-1] if samples else [0, 0, 0, 0, 0]


@pytest.fixture
def clients() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_console_stream_shows_other_node(console_cluster: list[ServerProcess]) -> None:
    """A live log on one node shows an event triggered on the other."""
    watched, other = console_cluster
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    sdk = pusher.Pusher(
        app_id=APP_ID,
        key=APP_KEY,
        secret=APP_SECRET,
        host=other.host,
        port=other.port,
        ssl=False,
    )
    _, _, stats = console.request("GET", STATS)
    watched_node = json.loads(stats)["node"]
    with open_stream(watched, console.cookies, APP_ID) as sock:
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


def test_console_counts_connections_of_every_node(
    console_cluster: list[ServerProcess], clients: ExitStack
) -> None:
    """The stats, channels and apps routes of one node count the connections
    of both nodes, and the node's own share separately."""
    watched, other = console_cluster
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    open_clients(watched, 1, clients)
    open_clients(other, 2, clients)

    stats = wait_stats(console, lambda s: latest(s)[1] == 3, TOTALS_SECONDS)

    assert stats["scope"] == "cluster"
    assert stats["cluster_error"] is None
    assert latest(stats)[4] == 2
    _, _, body = console.request("GET", "/console/api/apps")
    (app,) = [app for app in json.loads(body)["apps"] if app["id"] == APP_ID]
    assert app["connections"] == 3
    assert app["process_connections"] == 1
    _, _, body = console.request("GET", f"/console/api/apps/{APP_ID}/channels")
    channels = json.loads(body)
    assert channels["connections"] == 3
    assert channels["process_connections"] == 1


def test_console_totals_drop_stopped_node(
    console_cluster: list[ServerProcess], clients: ExitStack
) -> None:
    """A node that stops leaves the totals at its next sample."""
    watched, other = console_cluster
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    open_clients(watched, 1, clients)
    open_clients(other, 1, clients)
    wait_stats(console, lambda s: latest(s)[1] == 2, TOTALS_SECONDS)

    other.stop()

    stats = wait_stats(console, lambda s: latest(s)[4] == 1, TOTALS_SECONDS)
    assert latest(stats)[1] == 1


def test_console_totals_drop_killed_node(
    console_cluster: list[ServerProcess], clients: ExitStack
) -> None:
    """A node killed without a chance to clean up leaves the totals once its
    sample expires after ``node_timeout``."""
    watched, other = console_cluster
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    open_clients(watched, 1, clients)
    open_clients(other, 2, clients)
    wait_stats(console, lambda s: latest(s)[1] == 3, TOTALS_SECONDS)

    kill_node(other)

    stats = wait_stats(
        console, lambda s: latest(s)[4] == 1, CLUSTER_NODE_TIMEOUT + WAIT_SECONDS
    )
    assert latest(stats)[1] == 1


def test_console_logout_revokes_cookie_on_every_node(
    console_cluster: list[ServerProcess],
) -> None:
    """After logout on one node, a copy of the cookie is rejected on both."""
    first, second = console_cluster
    console = ConsoleHttp(first.host, first.port)
    console.login()
    copies = [ConsoleHttp(node.host, node.port) for node in console_cluster]
    for copy in copies:
        copy.cookies = dict(console.cookies)
        assert copy.request("GET", "/console/api/apps")[0] == 200
    with open_stream(second, console.cookies, APP_ID) as sock:
        read_sse_until(sock, b"event: recent", WAIT_SECONDS)

        status, _, _ = console.request(
            "POST", "/console/logout", {"csrf_token": console.csrf()}
        )

        assert status == 303
        for copy in copies:
            assert copy.request("GET", "/console/api/apps")[0] == 401
        # The other node checks its open live logs' sessions every 5 s.
        read_sse_to_end(sock, 5 + WAIT_SECONDS)


def test_console_page_shows_cluster_total(
    console_cluster: list[ServerProcess],
    clients: ExitStack,
    browser_name: str,
    tmp_path: Path,
) -> None:
    """The app page on one node shows the open connections of both nodes."""
    watched, other = console_cluster
    open_clients(watched, 2, clients)
    open_clients(other, 2, clients)
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(watched.http_url, profile, tmp_path / "browser.log", browser_name)
    try:
        browser.login()
        browser.goto(f"/console/apps/{APP_ID}")

        browser.wait_text("#open-count", "4", TOTALS_SECONDS)
        browser.wait_text(
            "#chart-scope", "whole cluster: 2 server processes", TOTALS_SECONDS
        )
        if browser_name == "chromium":
            path = screenshot_folder(tmp_path) / "console-cluster.png"
            browser.call("screenshot", path=str(path))
        browser.goto("/console/")
        browser.wait_text("caption", "every node")
        # The cluster's first app is APP_ID.
        assert browser.text("tbody tr:first-child td:nth-child(4)") == "4"
        assert browser.call("errors")["errors"] == []
    finally:
        browser.close()


REVOKED_READ_LOG_TEXT = "revoked console session(s) from Redis"
"""Text of the log line that a node writes once it has read the revoked set."""


def wait_log(node: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in node.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in the log: {node.log_text()[-3000:]}")
        time.sleep(0.05)


def session_id(console: ConsoleHttp) -> str:
    return console.cookies["clarion_console_session"].split(".")[1]


def test_console_serves_from_memory_without_redis(
    console_cluster: list[ServerProcess],
    console_redis: RedisServer,
    clients: ExitStack,
) -> None:
    """While Redis is down a node keeps its console up: valid sessions pass,
    sessions revoked before or during the outage are rejected, and the counts
    are the node's own. A restarted, empty Redis gets both revoked sessions
    back, so the other node rejects them too."""
    watched, other = console_cluster
    console = ConsoleHttp(watched.host, watched.port)
    console.login()
    before, during = (ConsoleHttp(watched.host, watched.port) for _ in range(2))
    before.login()
    during.login()
    copies = {}
    for victim in (before, during):
        copies[session_id(victim)] = copy = ConsoleHttp(watched.host, watched.port)
        copy.cookies = dict(victim.cookies)
    before.request("POST", "/console/logout", {"csrf_token": before.csrf()})
    during_csrf = during.csrf()
    open_clients(watched, 1, clients)
    open_clients(other, 1, clients)
    wait_stats(console, lambda s: latest(s)[1] == 2, TOTALS_SECONDS)
    wait_log(watched, REVOKED_READ_LOG_TEXT)

    console_redis.kill()

    status, _, _ = during.request(
        "POST", "/console/logout", {"csrf_token": during_csrf}
    )
    assert status == 303
    assert console.request("GET", "/console/api/apps")[0] == 200
    for copy in copies.values():
        assert copy.request("GET", "/console/api/apps")[0] == 401
    stats = wait_stats(
        console, lambda s: s["cluster_error"] is not None, TOTALS_SECONDS
    )
    assert latest(stats)[1] == 1
    assert latest(stats)[4] == 1

    console_redis.start()

    client = redis.Redis.from_url(console_redis.url)
    try:
        deadline = time.monotonic() + 2 * REFRESH_SECONDS + WAIT_SECONDS
        for revoked_id in copies:
            while client.zscore("clarion:console:revoked", revoked_id) is None:
                assert time.monotonic() < deadline, f"{revoked_id} not written back"
                time.sleep(0.1)
    finally:
        client.close()
    for copy in copies.values():
        elsewhere = ConsoleHttp(other.host, other.port)
        elsewhere.cookies = dict(copy.cookies)
        assert elsewhere.request("GET", "/console/api/apps")[0] == 401
