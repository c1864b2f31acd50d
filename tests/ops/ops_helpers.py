"""Helpers for the operations tests: scraping and parsing /metrics, plain HTTP
requests, a redis-server child process and a webhook receiver, all on
127.0.0.1. Every process here is started by the tests and stopped by its PID.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from server_process import free_port

WAIT_TIMEOUT = 10.0
"""Seconds that one wait for a server state may take. Everything runs on
loopback; the slowest wait, for Redis to be seen as lost, needs a heartbeat
interval (2 s) and one retry."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Sample name and labels to value, as parsed from one scrape."""


@dataclass
class HttpReply:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    port: int, path: str, method: str = "GET", body: bytes | None = None
) -> HttpReply:
    """Send one request to 127.0.0.1:``port`` and return the reply."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        payload = response.read()
        return HttpReply(
            response.status, payload, response.getheader("Content-Type", "")
        )
    finally:
        connection.close()


def scrape(port: int) -> Samples:
    """GET /metrics and parse it with prometheus_client's text parser."""
    reply = http_request(port, "/metrics")
    if reply.status != 200:
        raise AssertionError(f"/metrics returned {reply.status}: {reply.body!r}")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """Return one sample's value, or None when the scrape did not have it."""
    return samples.get((name, frozenset(labels.items())))


# redis-server


@dataclass
class RedisProcess:
    """A redis-server child process on 127.0.0.1 with no persistence."""

    directory: Path
    password: str | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server not found on PATH: install the redis-server package "
                "(scripts/test.sh does this)"
            )
        command = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        if self.password:
            command += ["--requirepass", self.password]
        log_path = self.directory / f"redis-{self.port}.log"
        with log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + WAIT_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.process.returncode}: "
                    + log_path.read_text(errors="replace")
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on port {self.port}")

    def stop(self) -> None:
        """Stop redis-server by its PID: SIGTERM, then SIGKILL after 5 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


# Webhook receiver


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that returns 200 to POST /ok and 500 to any
    other path, and counts the requests per path."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        lock = threading.Lock()
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                with lock:
                    requests[self.path] = requests.get(self.path, 0) + 1
                self.send_response(200 if self.path == "/ok" else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def lines_of(text: str) -> Iterator[str]:
    """Yield the non-empty lines of a log."""
    for line in text.splitlines():
        if line.strip():
            yield line
