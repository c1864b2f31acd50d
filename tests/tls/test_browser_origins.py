"""Origins as a browser sends them: headless Chromium on pages of 127.0.0.1
ports (each port is an origin) reads HTTP API responses through CORS, and
pusher-js's web build over wss:// is refused from a page the app does not
allow."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from interop_harness import NODE_DIR, node_executable
from tls_helpers import TlsFiles

from clarion.protocol.backend import ApiRequestBuilder
from server_process import ServerProcess, launch

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
PUSHER_WEB_BUILD = NODE_DIR / "node_modules/pusher-js/dist/web/pusher.js"
BROWSER_TIMEOUT = 60.0
"""Seconds for one Chromium run: start, load the page, run the check, close."""

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>Clarion origin test</title>
<script src="/pusher.js"></script>
"""

FETCH_SCRIPT = """async ({url, method, body}) => {
  try {
    const response = await fetch(url, {
      method,
      body: body || undefined,
      headers: body ? {'Content-Type': 'application/json'} : {},
    });
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {failed: `${error.name}: ${error.message}`};
  }
}"""

# Connects once, and returns the states and error codes that pusher-js reports
# until it is connected or has given up (10 s at most).
PUSHER_SCRIPT = """async ({key, port}) => {
  const records = [];
  const pusher = new Pusher(key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: true,
    enabledTransports: ['ws'],
    disableStats: true,
  });
  return await new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      // Copied first: disconnecting adds a state change of its own.
      const seen = records.slice();
      pusher.disconnect();
      resolve(seen);
    };
    pusher.connection.bind('error', (error) => {
      const data = error && (error.data || (error.error && error.error.data));
      records.push({error: data ? data.code : null});
    });
    pusher.connection.bind('state_change', ({current}) => {
      records.push({state: current});
      if (['connected', 'disconnected', 'failed', 'unavailable'].includes(current)) {
        finish();
      }
    });
    setTimeout(finish, 10000);
  });
}"""


class PageServer:
    """Serves a blank page with pusher-js's web build on its own origin."""

    def __init__(self) -> None:
        files = {
            "/": (PAGE, "text/html; charset=utf-8"),
            "/pusher.js": (PUSHER_WEB_BUILD.read_bytes(), "text/javascript"),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in files:
                    self.send_error(404)
                    return
                body, content_type = files[self.path]
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
def pages() -> Iterator[tuple[PageServer, PageServer]]:
    """Two page servers: two origins."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    first, second = PageServer(), PageServer()
    yield first, second
    first.close()
    second.close()


def run_in_browser(
    page: PageServer,
    script: str,
    argument: dict[str, Any],
    directory: Path,
    *,
    ignore_https_errors: bool = False,
) -> Any:
    """Run ``script`` in a fresh Chromium on ``page`` and return its result."""
    profile = directory / f"chromium-{len(list(directory.glob('chromium-*')))}"
    profile.mkdir()
    options = {
        "pageUrl": f"{page.origin}/",
        "userDataDir": str(profile),
        "script": script,
        "argument": argument,
        "ignoreHttpsErrors": ignore_https_errors,
    }
    completed = subprocess.run(
        [node_executable(), str(HERE / "browser_check.mjs"), json.dumps(options)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
    )
    records = [json.loads(line) for line in completed.stdout.splitlines()]
    assert completed.returncode == 0, completed.stderr
    assert [r for r in records if r.get("type") == "blocked_request"] == []
    outcome = records[0]
    assert "error" not in outcome, f"{outcome['error']}\n{completed.stderr}"
    return outcome["result"]


BUILDER = ApiRequestBuilder(app_id="1", key="app-key", secret="app-secret")


def api_call(server: ServerProcess, request: Any) -> dict[str, Any]:
    return {
        "url": f"{server.http_url}{request.target}",
        "method": request.method,
        "body": request.body.decode(),
    }


def test_chromium_reads_api_across_origins(
    start_server: Any, pages: tuple[PageServer, PageServer], tmp_path: Path
) -> None:
    """With the default ``*``, a page of another origin posts a signed event
    (a preflighted request) and reads the response, and reads a 401 too."""
    server = start_server()
    page, _ = pages
    triggered = run_in_browser(
        page,
        FETCH_SCRIPT,
        api_call(server, BUILDER.trigger(["browser"], "e", "x")),
        tmp_path,
    )
    assert triggered == {"status": 200, "body": {}}
    unsigned = run_in_browser(
        page,
        FETCH_SCRIPT,
        {"url": f"{server.http_url}/apps/1/channels", "method": "GET", "body": ""},
        tmp_path,
    )
    assert unsigned["status"] == 401
    assert "error" in unsigned["body"]


def test_chromium_blocked_from_unlisted_origin(
    start_server: Any, pages: tuple[PageServer, PageServer], tmp_path: Path
) -> None:
    """With a list, the listed page reads the response and another page cannot."""
    listed, unlisted = pages
    server = start_server(
        f'[server]\ncors_origins = ["{listed.origin}"]\n'
        '[[apps]]\nid = "1"\nkey = "app-key"\nsecret = "app-secret"\n'
    )
    request = api_call(server, BUILDER.trigger(["browser"], "e", "x"))
    assert run_in_browser(listed, FETCH_SCRIPT, request, tmp_path) == {
        "status": 200,
        "body": {},
    }
    blocked = run_in_browser(unlisted, FETCH_SCRIPT, request, tmp_path)
    assert blocked == {"failed": "TypeError: Failed to fetch"}


def test_pusher_js_refused_from_disallowed_origin(
    tmp_path: Path, tls_files: TlsFiles, pages: tuple[PageServer, PageServer]
) -> None:
    """pusher-js over wss:// connects from an allowed page and gets 4009 from
    another one, then stops."""
    allowed, other = pages
    server = launch(
        '[[apps]]\nid = "1"\nkey = "app-key"\nsecret = "app-secret"\n'
        f'allowed_origins = ["{allowed.origin}"]\n',
        tmp_path,
        args=(
            "--tls-cert-file",
            str(tls_files.cert_file),
            "--tls-key-file",
            str(tls_files.key_file),
        ),
    )
    try:
        argument = {"key": "app-key", "port": server.port}
        connected = run_in_browser(
            allowed, PUSHER_SCRIPT, argument, tmp_path, ignore_https_errors=True
        )
        refused = run_in_browser(
            other, PUSHER_SCRIPT, argument, tmp_path, ignore_https_errors=True
        )
    finally:
        server.stop()
    assert connected[-1] == {"state": "connected"}
    assert {"error": 4009} in refused
    assert {"state": "connected"} not in refused
    assert refused[-1] == {"state": "disconnected"}
    assert f"Origin {other.origin} is not allowed" in server.log_text()
