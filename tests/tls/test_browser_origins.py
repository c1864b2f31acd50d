"""Origins as a browser sends them: headless Chromium on pages of 127.0.0.1
ports (each port is an origin) reads HTTP API responses through CORS, and
pusher-js's web build over wss:// is refused from a page the app does not
allow."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
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


Step = tuple[PageServer, str, dict[str, Any]]
"""A page to open, the script to run in it, and the script's argument."""


def run_in_browser(
    steps: list[Step], directory: Path, *, ignore_https_errors: bool = False
) -> list[Any]:
    """Run each step in a new tab of one fresh Chromium; return the results."""
    profile = directory / "chromium-profile"
    profile.mkdir()
    options = {
        "userDataDir": str(profile),
        "steps": [
            {"pageUrl": f"{page.origin}/", "script": script, "argument": argument}
            for page, script, argument in steps
        ],
        "ignoreHttpsErrors": ignore_https_errors,
    }
    completed = subprocess.run(
        [node_executable(), str(HERE / "browser_check.mjs"), json.dumps(options)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [r for r in records if r.get("type") == "blocked_request"] == []
    outcomes = records[: len(steps)]
    assert len(outcomes) == len(steps), completed.stderr
    for outcome in outcomes:
        assert "error" not in outcome, f"{outcome['error']}\n{completed.stderr}"
    return [outcome["result"] for outcome in outcomes]


BUILDER = ApiRequestBuilder(app_id="1", key="app-key", secret="app-secret")


def api_call(server: ServerProcess, request: Any) -> dict[str, Any]:
    return {
        "url": f"{server.http_url}{request.target}",
        "method": request.method,
        "body": request.body.decode(),
    }


@dataclass
class BrowserRun:
    """What one Chromium run saw from two page origins: ``listed`` is the one
    the servers allow, ``other`` the one they do not."""

    listed: PageServer
    other: PageServer
    origins_server: ServerProcess
    """The TLS server whose app allows only ``listed``."""
    results: dict[str, Any]


@pytest.fixture(scope="module")
def browser_run(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[BrowserRun]:
    """Start the servers, then run every check in one Chromium, because the
    browser's start takes most of the time."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package")
    directory = tmp_path_factory.mktemp("browser")
    listed, other = PageServer(), PageServer()
    app = '[[apps]]\nid = "1"\nkey = "app-key"\nsecret = "app-secret"\n'
    servers = []
    try:
        open_cors = launch(app, directory)
        servers.append(open_cors)
        listed_cors = launch(
            f'[server]\ncors_origins = ["{listed.origin}"]\n' + app, directory
        )
        servers.append(listed_cors)
        origins = launch(
            app + f'allowed_origins = ["{listed.origin}"]\n',
            directory,
            args=(
                "--tls-cert-file",
                str(tls_files.cert_file),
                "--tls-key-file",
                str(tls_files.key_file),
            ),
        )
        servers.append(origins)

        trigger = BUILDER.trigger(["browser"], "e", "x")
        unsigned = {
            "url": f"{open_cors.http_url}/apps/1/channels",
            "method": "GET",
            "body": "",
        }
        connect = {"key": "app-key", "port": origins.port}
        steps: dict[str, Step] = {
            "open_trigger": (other, FETCH_SCRIPT, api_call(open_cors, trigger)),
            "open_unsigned": (other, FETCH_SCRIPT, unsigned),
            "listed_read": (listed, FETCH_SCRIPT, api_call(listed_cors, trigger)),
            "listed_blocked": (other, FETCH_SCRIPT, api_call(listed_cors, trigger)),
            "pusher_allowed": (listed, PUSHER_SCRIPT, connect),
            "pusher_refused": (other, PUSHER_SCRIPT, connect),
        }
        results = run_in_browser(
            list(steps.values()), directory, ignore_https_errors=True
        )
        yield BrowserRun(listed, other, origins, dict(zip(steps, results, strict=True)))
    finally:
        for server in servers:
            server.stop()
        listed.close()
        other.close()


def test_chromium_reads_api_across_origins(browser_run: BrowserRun) -> None:
    """With the default ``*``, a page of another origin posts a signed event
    (a preflighted request) and reads the response, and reads a 401 too."""
    assert browser_run.results["open_trigger"] == {"status": 200, "body": {}}
    unsigned = browser_run.results["open_unsigned"]
    assert unsigned["status"] == 401
    assert "error" in unsigned["body"]


def test_chromium_blocked_from_unlisted_origin(browser_run: BrowserRun) -> None:
    """With a list, the listed page reads the response and another page cannot."""
    assert browser_run.results["listed_read"] == {"status": 200, "body": {}}
    assert browser_run.results["listed_blocked"] == {
        "failed": "TypeError: Failed to fetch"
    }


def test_pusher_js_refused_from_disallowed_origin(browser_run: BrowserRun) -> None:
    """pusher-js over wss:// connects from an allowed page and gets 4009 from
    another one, then stops."""
    connected = browser_run.results["pusher_allowed"]
    refused = browser_run.results["pusher_refused"]
    assert connected[-1] == {"state": "connected"}
    assert {"error": 4009} in refused
    assert {"state": "connected"} not in refused
    assert refused[-1] == {"state": "disconnected"}
    log = browser_run.origins_server.log_text()
    assert f"Origin {browser_run.other.origin} is not allowed" in log
