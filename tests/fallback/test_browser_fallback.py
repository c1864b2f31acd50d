"""pusher-js's web build in headless Chromium, with its WebSocket port closed:
it falls back to HTTP across origins (CORS preflights included) and still
receives events."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher
import pytest
from fallback_harness import HERE, ScriptClient, closed_port
from interop_harness import NODE_DIR

from server_process import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
PUSHER_WEB_BUILD = NODE_DIR / "node_modules/pusher-js/dist/web/pusher.js"

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>Clarion HTTP fallback test</title>
<script src="/pusher.js"></script>
<script src="/page.js"></script>
"""

CONNECT_TIMEOUT = 20.0
"""Seconds for the browser to start and connect: pusher-js tries xhr_streaming
5 s after `connect()` when WebSockets fail, and xhr_polling at 9 s."""


class PageServer:
    """Serves the test page and pusher-js's web build on 127.0.0.1."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        files = {
            "/": (PAGE, "text/html; charset=utf-8"),
            "/pusher.js": (PUSHER_WEB_BUILD.read_bytes(), "text/javascript"),
            "/page.js": ((HERE / "browser_page.js").read_bytes(), "text/javascript"),
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                server.paths.append(path)
                if path not in files:
                    self.send_error(404)
                    return
                body, content_type = files[path]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="page server",
            daemon=True,
        )
        self._thread.start()

    @property
    def origin(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture
def open_browser(
    server: ServerProcess,
    page_server: PageServer,
    tmp_path: Path,
    clients: list[Any],
) -> Callable[[], ScriptClient]:
    """Return a function that opens the test page in a fresh headless Chromium."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")

    def open_page() -> ScriptClient:
        options = {"key": server.key, "httpPort": server.port, "wsPort": closed_port()}
        fragment = urllib.parse.quote(json.dumps(options))
        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        driver_options = {
            "pageUrl": f"{page_server.origin}/#{fragment}",
            "userDataDir": str(profile),
        }
        browser = ScriptClient(
            "chromium",
            HERE / "browser_driver.mjs",
            driver_options,
            tmp_path / "chromium.log",
        )
        clients.append(browser)
        return browser

    return open_page


def test_browser_falls_back_to_http(
    open_browser: Callable[[], ScriptClient],
    page_server: PageServer,
    server: ServerProcess,
    sdk: pusher.Pusher,
    unique: Callable[[str], str],
) -> None:
    """With its WebSocket port closed, the web build connects over xhr_streaming
    from another origin and receives events triggered with the SDK."""
    browser = open_browser()
    connected = browser.wait_for(
        "state 'connected'",
        lambda r: r["type"] == "state" and r["current"] == "connected",
        timeout=CONNECT_TIMEOUT,
    )
    assert connected["transport"] == "xhr_streaming"
    assert page_server.origin != server.http_url

    channel = unique("public-")
    browser.subscribe(channel)
    sdk.trigger(channel, "my-event", {"hello": "browser"})
    event = browser.wait_event(channel, "my-event")
    assert event["data"] == {"hello": "browser"}
    assert browser.records_of("page_error") == []
    assert browser.records_of("blocked_request") == []
    assert set(page_server.paths) <= {"/", "/pusher.js", "/page.js", "/favicon.ico"}
