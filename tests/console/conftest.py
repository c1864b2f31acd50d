"""Fixtures for the console tests: a server with the console on, headless
Chromium and Firefox, a pusher-js client and the Python SDK, all on 127.0.0.1."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pusher
import pytest

TESTS = Path(__file__).resolve().parent.parent
# The pusher-js driver, and the redis-server and node helpers of the cluster
# tests, live with other test folders.
for folder in ("interop", "server", "cluster"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from cluster_harness import RedisServer, launch_node, node_config  # noqa: E402
from console_harness import (  # noqa: E402
    APP_SECRET,
    BROWSERS,
    CLUSTER_NODE_TIMEOUT,
    CONSOLE_CONFIG,
    CONSOLE_TOKEN,
    Browser,
    ConsoleHttp,
    screenshot_folder,
)
from interop_harness import AuthEndpoint, PusherJsClient  # noqa: E402

from server_process import ServerProcess, launch  # noqa: E402


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the console at /console and one app with client events,
    shared by the tests of a module, which therefore use their own channels."""
    directory = tmp_path_factory.mktemp("console-server")
    server = launch(
        CONSOLE_CONFIG, directory, env={"CLARION_CONSOLE_TOKEN": CONSOLE_TOKEN}
    )
    server.secret = APP_SECRET
    yield server
    server.stop()


@pytest.fixture
def console_http(console_server: ServerProcess) -> ConsoleHttp:
    return ConsoleHttp(console_server.host, console_server.port)


@pytest.fixture(scope="module", params=sorted(BROWSERS))
def browser_name(request: pytest.FixtureRequest) -> str:
    """Each browser that the console must work in, one after the other."""
    return str(request.param)


@pytest.fixture(scope="module")
def shared_browser(
    console_server: ServerProcess,
    browser_name: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Browser]:
    """A headless browser with a fresh profile, limited to the module's server."""
    directory = tmp_path_factory.mktemp(browser_name)
    profile = directory / "profile"
    profile.mkdir()
    opened = Browser(
        console_server.http_url, profile, directory / "browser.log", browser_name
    )
    yield opened
    opened.close()


@pytest.fixture
def browser(shared_browser: Browser) -> Iterator[Browser]:
    """The module's browser with no cookies and a blank page, so not logged in.

    The test fails when its pages raised an uncaught JavaScript error.
    """
    shared_browser.call("reset")
    yield shared_browser
    errors = shared_browser.call("errors")["errors"]
    assert not errors, f"uncaught errors in the console pages: {errors}"


@pytest.fixture
def screenshot(
    browser: Browser, browser_name: str, tmp_path: Path
) -> Callable[[str], Path]:
    """Return a function that saves a full-page screenshot as console-NAME.png
    in Chromium and console-NAME-firefox.png in Firefox.

    The files go to CLARION_SCREENSHOT_DIR when set (docs/images for the
    docs), else to the test's temporary directory.
    """
    folder = screenshot_folder(tmp_path)
    suffix = "" if browser_name == "chromium" else f"-{browser_name}"

    def save(name: str) -> Path:
        path = folder / f"console-{name}{suffix}.png"
        browser.call("screenshot", path=str(path))
        return path

    return save


@pytest.fixture
def python_sdk(console_server: ServerProcess) -> Iterator[pusher.Pusher]:
    sdk = pusher.Pusher(
        app_id=console_server.app_id,
        key=console_server.key,
        secret=console_server.secret,
        host=console_server.host,
        port=console_server.port,
        ssl=False,
    )
    yield sdk
    for client in (sdk._pusher_client, sdk._authentication_client):
        client.http.session.close()


@pytest.fixture
def connect_client(
    console_server: ServerProcess, python_sdk: pusher.Pusher, tmp_path: Path
) -> Iterator[Callable[..., PusherJsClient]]:
    """Return a factory of connected pusher-js clients; ``user_id`` names the
    user that the auth endpoint signs presence subscriptions for."""
    endpoint = AuthEndpoint(python_sdk)
    clients: list[PusherJsClient] = []
    numbers = itertools.count(1)

    def connect(user_id: str | None = None) -> PusherJsClient:
        number = next(numbers)
        params = {}
        if user_id is not None:
            params = {"user_id": user_id, "user_name": user_id.capitalize()}
        options = {
            "port": console_server.port,
            "key": console_server.key,
            "authEndpoint": f"{endpoint.base_url}/pusher/auth",
            "userAuthEndpoint": f"{endpoint.base_url}/pusher/user-auth",
            "authParams": params,
            "customUserAuthenticator": False,
        }
        client = PusherJsClient(
            f"client {number}", options, tmp_path / f"pusher-js-{number}.log"
        )
        clients.append(client)
        client.wait_connected()
        return client

    yield connect
    for client in clients:
        client.request_exit()
    for client in clients:
        client.close()
    endpoint.close()


@pytest.fixture
def console_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped when the test ends."""
    redis = RedisServer(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def console_cluster(
    tmp_path: Path, console_redis: RedisServer
) -> Iterator[list[ServerProcess]]:
    """Two nodes with the console on that share ``console_redis``, with the
    cluster tests' apps (``cluster_harness.APP_ID`` and others)."""
    config = node_config(
        tmp_path / "data",
        node_timeout=CLUSTER_NODE_TIMEOUT,
        server={"console_token": CONSOLE_TOKEN},
    )
    nodes: list[ServerProcess] = []
    try:
        for _ in range(2):
            nodes.append(launch_node(config, tmp_path, console_redis.url))
        yield nodes
    finally:
        for node in nodes:
            node.stop()
