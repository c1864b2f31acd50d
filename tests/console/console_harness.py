"""Drivers for the console tests: headless Chromium through playwright-core,
headless Firefox through puppeteer-core, and a plain HTTP client that keeps
the console's cookies."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

TESTS = Path(__file__).resolve().parent.parent
NODE_MODULES = TESTS / "interop" / "node" / "node_modules"
BROWSER_SCRIPT = Path(__file__).parent / "browser.mjs"
BROWSERS = {"chromium": "/usr/bin/chromium", "firefox": "/usr/bin/firefox-esr"}
"""Browser name to the executable of its Debian package."""
DRIVERS = {"chromium": "playwright-core", "firefox": "puppeteer-core"}
"""Browser name to the npm package that drives it."""

CONSOLE_TOKEN = "console-test-token-0123456789"
APP_SECRET = "console-app-secret"
CONSOLE_CONFIG = f"""
[server]
activity_timeout = 120

[[apps]]
id = "1"
key = "app-key"
secret = "{APP_SECRET}"
client_events = true
"""

WAIT_SECONDS = 5.0
"""Maximum wait for one browser step, in seconds; everything runs on loopback."""

LAUNCH_SECONDS = 60.0
"""Maximum wait for a browser to start, in seconds. Firefox ESR takes about
10 s with a fresh profile on a busy 2-core machine."""

CLUSTER_NODE_TIMEOUT = 2
"""``node_timeout`` of the console's cluster nodes, in seconds, kept short so
that a killed node leaves the totals soon."""


def screenshot_folder(default: Path) -> Path:
    """Return CLARION_SCREENSHOT_DIR (docs/images for the docs) when set, else
    ``default``; create the folder."""
    folder = Path(os.environ.get("CLARION_SCREENSHOT_DIR") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_browser_setup(browser: str) -> str:
    """Return the `node` on PATH, or raise with the missing setup step."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found on PATH: run scripts/test.sh")
    driver = DRIVERS[browser]
    if not (NODE_MODULES / driver).is_dir():
        raise RuntimeError(
            f"{driver} is not installed: run `npm ci` in {NODE_MODULES.parent}"
        )
    executable = BROWSERS[browser]
    if not os.access(executable, os.X_OK):
        package = Path(executable).name
        raise RuntimeError(
            f"{executable} not found: install Debian's {package} package "
            "(scripts/test.sh does this)"
        )
    return node


class Browser:
    """One headless browser page in a `node browser.mjs` child process;
    ``browser`` is a key of ``BROWSERS``."""

    def __init__(
        self,
        origin: str,
        user_data_dir: Path,
        log_path: Path,
        browser: str = "chromium",
    ) -> None:
        node = check_browser_setup(browser)
        options = {
            "nodeModules": str(NODE_MODULES),
            "browser": browser,
            "executablePath": BROWSERS[browser],
            "userDataDir": str(user_data_dir),
            "origin": origin,
        }
        self.origin = origin
        self._stderr = log_path.open("wb")
        self.process = subprocess.Popen(
            [node, str(BROWSER_SCRIPT), json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self._replies.put(json.loads(line))

    def call(
        self, op: str, timeout: float = WAIT_SECONDS, **fields: Any
    ) -> dict[str, Any]:
        """Run one command; raise AssertionError with the browser's error."""
        assert self.process.stdin is not None
        self._next_id += 1
        command = {
            "id": self._next_id,
            "op": op,
            "timeout": int(timeout * 1000),
            **fields,
        }
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        # Launching the browser comes before the first reply, so allow more
        # for it.
        allowed = timeout + (LAUNCH_SECONDS if self._next_id == 1 else 15)
        try:
            reply = self._replies.get(timeout=allowed)
        except queue.Empty:
            raise AssertionError(
                f"browser gave no reply to {command} within {allowed} s"
            ) from None
        assert reply["id"] == command["id"], f"reply out of order: {reply}"
        if not reply["ok"]:
            raise AssertionError(f"browser step {command} failed: {reply['error']}")
        return reply

    def goto(self, path: str) -> int:
        return int(self.call("goto", url=self.origin + path)["status"])

    def wait_text(
        self, selector: str, text: str, timeout: float = WAIT_SECONDS
    ) -> None:
        self.call("wait_text", selector=selector, text=text, timeout=timeout)

    def count(self, selector: str) -> int:
        return int(self.call("count", selector=selector)["count"])

    def text(self, selector: str) -> str:
        return str(self.call("text", selector=selector)["text"])

    def login(self, token: str = CONSOLE_TOKEN) -> int:
        """Fill and send the login form; return the final page's status."""
        self.goto("/console/login")
        self.call("fill", selector="#token", value=token)
        return int(self.call("submit", selector="form button[type=submit]")["status"])

    def close(self) -> None:
        """Ask the child to exit, then stop it by PID if it has not in 5 s."""
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


class ConsoleHttp:
    """A plain HTTP client of the console that keeps its cookies."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return status, headers (lower-case names) and body."""
        connection = http.client.HTTPConnection(
            self.host, self.port, timeout=WAIT_SECONDS
        )
        try:
            sent = dict(headers or {})
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            body = None
            if form is not None:
                body = urlencode(form)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                cookie_value = rest.split(";", 1)[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = cookie_value
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, received, data
        finally:
            connection.close()

    def login_nonce(self) -> str:
        _, _, body = self.request("GET", "/console/login")
        return csrf_field(body)

    def login(self, token: str = CONSOLE_TOKEN) -> int:
        nonce = self.login_nonce()
        status, _, _ = self.request(
            "POST", "/console/login", {"csrf_token": nonce, "token": token}
        )
        return status

    def csrf(self) -> str:
        """Return the CSRF token of the current session, read from the apps page."""
        status, _, body = self.request("GET", "/console/")
        assert status == 200, f"apps page returned {status}"
        return csrf_field(body)


def csrf_field(page: bytes) -> str:
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, "no csrf_token field in the page"
    return match.group(1).decode()
