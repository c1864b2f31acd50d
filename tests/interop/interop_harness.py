"""Drivers for the interop tests: pusher-js and the Node SDK as child
processes, and the app's auth endpoints, signed by the Python SDK."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher

NODE_DIR = Path(__file__).parent / "node"

# How long any single wait for a record, a process or a request may take.
# Everything here runs on loopback, so a healthy run needs well under 1 s.
WAIT_TIMEOUT = 5.0

# 32 bytes, base64: the end-to-end encryption master key. Only the SDKs and
# the auth endpoint use it, and the server never receives it.
ENCRYPTION_MASTER_KEY_BASE64 = "dGhpcyBpcyAzMiBieXRlcyAxMjM0NTY3ODkwMTIzNDU="

Record = dict[str, Any]


def node_executable() -> str:
    """Return the `node` on PATH, or raise with the setup step that is missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node not found on PATH: install Node.js 18 or later")
    if not (NODE_DIR / "node_modules" / "pusher-js").is_dir():
        raise RuntimeError(f"pusher-js is not installed: run `npm ci` in {NODE_DIR}")
    return node


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Stop a child by its PID: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def pusher_error_code(record: dict[str, Any]) -> int | None:
    """Return the Pusher error code in a pusher-js connection `error` record.

    pusher-js 8.6.0 reports a refused handshake as `{type: "WebSocketError",
    error: {type: "PusherError", data: {code, message}}}` and a close on an
    open connection as `{type: "PusherError", data: {code, message}}`.
    """
    error = record["error"]
    candidates = [error, error.get("error")] if isinstance(error, dict) else []
    for candidate in candidates:
        if not isinstance(candidate, dict) or candidate.get("type") != "PusherError":
            continue
        data = candidate.get("data")
        if isinstance(data, dict):
            return data.get("code")
    return None


class PusherJsClient:
    """One pusher-js client in a `node client.mjs` child process.

    Commands go to the child's stdin as JSON lines. Every record the child
    prints is kept in `records`, in arrival order. `wait_for` consumes a
    record, so waiting twice for the same kind of event needs two events.
    """

    def __init__(self, name: str, options: dict[str, Any], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.records: list[Record] = []
        self.socket_id: str | None = None
        self._exit_requested = False
        self._consumed: set[int] = set()
        self._changed = threading.Condition()
        self._stderr = log_path.open("wb")
        self.process = subprocess.Popen(
            [node_executable(), str(NODE_DIR / "client.mjs"), json.dumps(options)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(
            target=self._read_records, name=f"pusher-js {name}", daemon=True
        )
        self._reader.start()

    def _read_records(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"type": "unparsed_output", "line": line}
            with self._changed:
                self.records.append(record)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    # Commands

    def send(self, op: str, **fields: Any) -> None:
        """Write one command line to the child."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def wait_connected(self) -> str:
        """Wait for the `connected` state, then store and return the socket id."""
        record = self.wait_state("connected")
        self.socket_id = str(record["socket_id"])
        return self.socket_id

    def subscribe(self, channel: str, *, bind: tuple[str, ...] = ()) -> Record:
        """Subscribe and return the `pusher:subscription_succeeded` record.

        Events named in `bind` are reported with their metadata argument.
        Raise AssertionError with the error if the subscription fails.
        """
        self.send("subscribe", channel=channel, bind=list(bind))
        record = self.wait_for(
            f"subscription result on {channel}",
            lambda r: (
                r["type"] == "event"
                and r["channel"] == channel
                and r["event"]
                in ("pusher:subscription_succeeded", "pusher:subscription_error")
            ),
        )
        assert record["event"] == "pusher:subscription_succeeded", (
            f"{self.name}: subscribing to {channel} failed: {record['data']}"
        )
        return record

    def trigger(self, channel: str, event: str, data: Any) -> bool:
        """Send a client event and return whether pusher-js wrote the frame."""
        self.send("trigger", channel=channel, event=event, data=data)
        record = self.wait_for(
            f"result of triggering {event} on {channel}",
            lambda r: (
                r["type"] == "triggered"
                or (r["type"] == "command_error" and r["op"] == "trigger")
            ),
        )
        assert record["type"] == "triggered", f"{self.name}: {record['error']}"
        return bool(record["sent"])

    def members(self, channel: str) -> Record:
        """Return pusher-js's presence roster: count, me and members."""
        self.send("members", channel=channel)
        return self.wait_for(
            f"roster of {channel}",
            lambda r: r["type"] == "members" and r["channel"] == channel,
        )

    def channel_state(self, channel: str) -> Record:
        """Return pusher-js's `subscribed` and `subscriptionCount` of a channel."""
        self.send("channel_state", channel=channel)
        return self.wait_for(
            f"state of {channel}",
            lambda r: r["type"] == "channel_state" and r["channel"] == channel,
        )

    def sign_in(self, user_id: str) -> Record:
        """Call `pusher.signin()` and return the `pusher:signin_success` frame.

        Wait until pusher-js is also subscribed to `#server-to-user-{user_id}`,
        so that events sent to the user from then on reach it.
        """
        self.send("signin")
        success = self.wait_for(
            "pusher:signin_success",
            lambda r: r["type"] == "message" and r["event"] == "pusher:signin_success",
        )
        self.wait_for(
            f"subscription to #server-to-user-{user_id}",
            lambda r: (
                r["type"] == "message"
                and r["event"] == "pusher_internal:subscription_succeeded"
                and r.get("channel") == f"#server-to-user-{user_id}"
            ),
        )
        return success

    def disconnect(self) -> None:
        """Call `pusher.disconnect()` and wait for the `disconnected` state."""
        self.send("disconnect")
        self.wait_state("disconnected")

    def request_exit(self) -> None:
        """Ask the child once to disconnect and exit, without waiting for it."""
        if self._exit_requested or self.process.poll() is not None:
            return
        self._exit_requested = True
        try:
            self.send("exit")
        except BrokenPipeError:
            pass

    def close(self) -> None:
        """Ask the child to exit, then stop it by PID if it has not in 5 s."""
        self.request_exit()
        try:
            self.process.wait(timeout=WAIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        stop_process(self.process)
        self._reader.join(timeout=WAIT_TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is None:
                continue
            try:
                stream.close()
            except BrokenPipeError:
                # The child exited with a command still buffered for it. The
                # stream is closed all the same.
                pass
        self._stderr.close()

    # Waiting and looking

    def wait_for(
        self,
        description: str,
        predicate: Callable[[Record], bool],
        timeout: float = WAIT_TIMEOUT,
    ) -> Record:
        """Consume and return the oldest unconsumed record that matches.

        Raise AssertionError naming `description` and listing every record
        received if none arrives within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index, record in enumerate(self.records):
                    if index not in self._consumed and predicate(record):
                        self._consumed.add(index)
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.process.poll() is not None and not self._reader.is_alive()
                ):
                    break
                self._changed.wait(remaining)
        raise AssertionError(
            f"{self.name}: timed out after {timeout} s waiting for {description}\n"
            + self.describe()
        )

    def wait_state(self, state: str) -> Record:
        return self.wait_for(
            f"state {state!r}",
            lambda r: r["type"] == "state" and r["current"] == state,
        )

    def wait_event(self, channel: str, event: str) -> Record:
        """Consume and return the next `event` that arrived on `channel`."""
        return self.wait_for(
            f"event {event!r} on {channel}",
            lambda r: (
                r["type"] == "event" and r["channel"] == channel and r["event"] == event
            ),
        )

    def wait_user_event(self, event: str) -> Record:
        """Consume and return the next `pusher.user` event named `event`."""
        return self.wait_for(
            f"user event {event!r}",
            lambda r: r["type"] == "user_event" and r["event"] == event,
        )

    def wait_watchlist_event(self, event: str) -> Record:
        """Consume and return the next `pusher.user.watchlist` event `event`."""
        return self.wait_for(
            f"watchlist event {event!r}",
            lambda r: r["type"] == "watchlist_event" and r["event"] == event,
        )

    def wait_error(self, code: int) -> Record:
        """Consume and return the next connection `error` with Pusher `code`."""
        return self.wait_for(
            f"connection error with code {code}",
            lambda r: r["type"] == "error" and pusher_error_code(r) == code,
        )

    def watchlist_events(self) -> list[Record]:
        """Return every watchlist event received so far, consumed or not."""
        with self._changed:
            return [r for r in self.records if r["type"] == "watchlist_event"]

    def messages(self, event: str) -> list[Record]:
        """Return every protocol frame named `event` received so far."""
        with self._changed:
            return [
                r
                for r in self.records
                if r["type"] == "message" and r.get("event") == event
            ]

    def events(self, channel: str, event: str) -> list[Record]:
        """Return every `event` on `channel` received so far, consumed or not."""
        with self._changed:
            return [
                r
                for r in self.records
                if r["type"] == "event"
                and r["channel"] == channel
                and r["event"] == event
            ]

    def error_codes(self) -> list[int | None]:
        """Return the Pusher error code of each connection `error` so far."""
        with self._changed:
            return [pusher_error_code(r) for r in self.records if r["type"] == "error"]

    def states(self) -> list[str]:
        """Return the sequence of connection states entered so far."""
        with self._changed:
            return [r["current"] for r in self.records if r["type"] == "state"]

    def describe(self) -> str:
        """Return the records and the pusher-js log, for failure messages."""
        with self._changed:
            lines = [json.dumps(record) for record in self.records]
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        return (
            f"records of {self.name}:\n  "
            + "\n  ".join(lines or ["(none)"])
            + f"\npusher-js log of {self.name}:\n{log[-4000:]}"
        )


class AuthEndpoint:
    """The app's auth endpoints on 127.0.0.1, signing with the Python SDK.

    `POST /pusher/auth` authorizes channels and `POST /pusher/user-auth`
    authenticates users, as pusher-js's `ajax` transport calls them. The form
    fields `user_id` and `user_name` (sent by the client as extra params)
    identify the user. A presence or sign-in request without `user_id` gets
    403, as a real app would reject an anonymous user.

    More form fields shape the sign-in reply:
      `watchlist`: comma-separated user ids to put in the user data.
      `user_info_padding`: a count of characters to add to `user_info`.
      `forge`: `other_user` returns a valid signature of the user's own data
      next to user data that names the user `admin`. `secret` signs with a
      wrong secret.
    """

    def __init__(self, sdk: pusher.Pusher) -> None:
        self.sdk = sdk
        self.requests: list[dict[str, str]] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        # A short poll interval keeps `shutdown()` from waiting 0.5 s per test.
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="auth endpoint",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=WAIT_TIMEOUT)

    def respond(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Return the status and JSON body for one auth request."""
        self.requests.append({"path": path, **form})
        user_id = form.get("user_id")
        user_info = {"name": form.get("user_name", user_id)}
        if path == "/pusher/auth":
            channel = form["channel_name"]
            if channel.startswith("presence-"):
                if not user_id:
                    return 403, {"error": "presence channels need a user_id"}
                custom_data = {"user_id": user_id, "user_info": user_info}
                body = self.sdk.authenticate(channel, form["socket_id"], custom_data)
            else:
                body = self.sdk.authenticate(channel, form["socket_id"])
            # pusher 3.3.4 returns shared_secret as bytes, which json cannot encode.
            if isinstance(body.get("shared_secret"), bytes):
                body["shared_secret"] = body["shared_secret"].decode("ascii")
            return 200, body
        if path == "/pusher/user-auth":
            if not user_id:
                return 403, {"error": "sign-in needs a user_id"}
            return 200, self._sign_in(form, user_id, user_info)
        return 404, {"error": f"no auth endpoint at {path}"}

    def _sign_in(
        self, form: dict[str, str], user_id: str, user_info: dict[str, Any]
    ) -> dict[str, Any]:
        padding = int(form.get("user_info_padding", "0"))
        if padding:
            user_info["padding"] = "x" * padding
        user_data: dict[str, Any] = {"id": user_id, "user_info": user_info}
        if form.get("watchlist"):
            user_data["watchlist"] = form["watchlist"].split(",")
        socket_id = form["socket_id"]
        body = self.sdk.authenticate_user(socket_id, user_data)
        forge = form.get("forge")
        if forge == "other_user":
            body["user_data"] = json.dumps(dict(user_data, id="admin"))
        elif forge == "secret":
            key = body["auth"].split(":")[0]
            signed = f"{socket_id}::user::{body['user_data']}".encode()
            signature = hmac.new(b"not-the-app-secret", signed, hashlib.sha256)
            body["auth"] = f"{key}:{signature.hexdigest()}"
        return body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode("utf-8")
                form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                status, body = endpoint.respond(self.path, form)
                payload = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                # The endpoint records requests itself. Keep stderr clean.
                pass

        return Handler


def run_node_sdk(
    config: dict[str, Any], call: dict[str, Any], *, clock_skew_seconds: int = 0
) -> Record:
    """Make one call with the Node server SDK and return its outcome record.

    The record is `{"ok": True, "status", "body"}` on a 2xx response, else
    `{"ok": False, "error": {"name", "message", "status", "body"}}`.
    """
    request = {"config": config, "call": call, "clockSkewSeconds": clock_skew_seconds}
    completed = subprocess.run(
        [node_executable(), str(NODE_DIR / "server_sdk.mjs"), json.dumps(request)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=15,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise AssertionError(
            f"node server_sdk.mjs exited with {completed.returncode}\n"
            f"stdout: {completed.stdout}\nstderr: {completed.stderr}"
        )
    outcome: Record = json.loads(lines[-1])
    return outcome


def wait_until(
    description: str, condition: Callable[[], bool], timeout: float = WAIT_TIMEOUT
) -> None:
    """Poll `condition` every 50 ms until it is true.

    Raise AssertionError naming `description` after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting until {description}"
            )
        time.sleep(0.05)
