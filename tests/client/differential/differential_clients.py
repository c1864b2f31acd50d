"""The two clients under test, behind one small asyncio interface.

`PusherJsClient` runs pusher-js 8 in a Node child process
(`pusher_js_driver.mjs`); `ClarionClient` runs `clarion.client` in this
process. Both record what happens as dicts of the same shapes:

    {"type": "state", "previous": str, "current": str}
    {"type": "connecting_in", "delay": int}
    {"type": "error", "error": ...}
    {"type": "subscription", "channel": str, "event": str}
    {"type": "signin", "event": "pusher:signin_success"}

Scenarios only call the methods of `RecordingClient`, so they run unchanged
against either client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarion.client import Client, ServerMessage, StateChange

TESTS_DIR = Path(__file__).resolve().parents[2]
NODE_MODULES_DIR = TESTS_DIR / "interop" / "node"
DRIVER = Path(__file__).with_name("pusher_js_driver.mjs")

Record = dict[str, Any]


@dataclass(frozen=True)
class ClientOptions:
    """What both clients are configured with; times are in seconds."""

    key: str
    port: int
    """The proxy's port on 127.0.0.1."""
    auth_url: str
    """Base URL of the auth endpoints: /pusher/auth and /pusher/user-auth."""
    user_id: str
    activity_timeout: float = 3.0
    pong_timeout: float = 1.0
    unavailable_timeout: float = 2.0


def pusher_error_code(error: Any) -> int | None:
    """Return the code of a `PusherError`, bare or inside a `WebSocketError`."""
    if not isinstance(error, dict):
        return None
    inner = error.get("error") if error.get("type") == "WebSocketError" else error
    if not isinstance(inner, dict) or inner.get("type") != "PusherError":
        return None
    data = inner.get("data")
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


class RecordingClient:
    """A client under test and everything it reported, in order."""

    name = "client"

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self.records: list[Record] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()

    # Commands, implemented by each client

    async def start(self) -> None:
        """Create the client without connecting it."""

    async def connect(self) -> None:
        raise NotImplementedError

    async def subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def signin(self) -> None:
        raise NotImplementedError

    async def disconnect(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the client and release everything it holds."""

    # Records

    def add_record(self, record: Record) -> None:
        self.records.append(record)
        self._changed.set()

    def transitions(self) -> list[str]:
        """Return every state change so far as "previous->current"."""
        return [
            f"{record['previous']}->{record['current']}"
            for record in self.records
            if record["type"] == "state"
        ]

    def connection_events(self) -> list[str]:
        """Return state changes, `connecting_in` delays and coded errors, in order.

        An error counts when it carries a Pusher or close code, as
        `{type: "PusherError", data: {code}}` or a `WebSocketError` wrapping
        one. Socket errors without a code are left out: their payload is the
        transport's own (in Node, a ws ErrorEvent), so no two clients share it.
        """
        events = []
        for record in self.records:
            if record["type"] == "state":
                events.append(f"state {record['previous']}->{record['current']}")
            elif record["type"] == "connecting_in":
                events.append(f"connecting_in {record['delay']}")
            elif record["type"] == "error":
                code = pusher_error_code(record["error"])
                if code is not None:
                    events.append(f"error {record['error'].get('type')} {code}")
        return events

    async def wait_for(
        self, description: str, predicate: Callable[[Record], bool], timeout: float
    ) -> Record:
        """Consume and return the oldest unconsumed record that matches.

        Raise AssertionError naming `description` and listing every record
        after `timeout` seconds.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, record in enumerate(self.records):
                        if index not in self._consumed and predicate(record):
                            self._consumed.add(index)
                            return record
                    # Records are only added by other tasks, so none can
                    # arrive between this clear() and the wait.
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {description} within {timeout} s; records:\n  "
                + "\n  ".join(
                    json.dumps(record, default=str) for record in self.records
                )
            ) from None

    async def wait_state(self, state: str, *, timeout: float) -> Record:
        """Consume the next change into `state`."""
        return await self.wait_for(
            f"state {state!r}",
            lambda r: r["type"] == "state" and r["current"] == state,
            timeout,
        )

    async def wait_subscription(self, channel: str, *, timeout: float) -> str:
        """Consume the next subscription result on `channel` and return its event."""
        record = await self.wait_for(
            f"subscription result on {channel}",
            lambda r: r["type"] == "subscription" and r["channel"] == channel,
            timeout,
        )
        return str(record["event"])

    async def wait_signin(self, *, timeout: float) -> Record:
        return await self.wait_for(
            "pusher:signin_success", lambda r: r["type"] == "signin", timeout
        )


class PusherJsClient(RecordingClient):
    """pusher-js 8 in a `node pusher_js_driver.mjs` child process."""

    name = "pusher-js"

    def __init__(self, options: ClientOptions, log_path: Path) -> None:
        super().__init__(options)
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node not found on PATH: install Node.js 18 or later")
        if not (NODE_MODULES_DIR / "node_modules" / "pusher-js").is_dir():
            raise RuntimeError(
                f"pusher-js is not installed: run `npm ci` in {NODE_MODULES_DIR}"
            )
        driver_options = {
            "nodeModules": str(NODE_MODULES_DIR),
            "key": self.options.key,
            "port": self.options.port,
            "authEndpoint": f"{self.options.auth_url}/pusher/auth",
            "userAuthEndpoint": f"{self.options.auth_url}/pusher/user-auth",
            "authParams": {"user_id": self.options.user_id},
            "activityTimeout": round(self.options.activity_timeout * 1000),
            "pongTimeout": round(self.options.pong_timeout * 1000),
            "unavailableTimeout": round(self.options.unavailable_timeout * 1000),
        }
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                node,
                str(DRIVER),
                json.dumps(driver_options),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self._reader = asyncio.create_task(self._read_records())

    async def _read_records(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"type": "unparsed_output", "line": line.decode()}
            self.add_record(record)

    async def _send(self, op: str, **fields: Any) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await self._process.stdin.drain()

    async def connect(self) -> None:
        await self._send("connect")

    async def subscribe(self, channel: str) -> None:
        await self._send("subscribe", channel=channel)

    async def signin(self) -> None:
        await self._send("signin")

    async def disconnect(self) -> None:
        await self._send("disconnect")

    async def close(self) -> None:
        """Ask the child to exit; stop it by its PID if it has not within 5 s."""
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self._send("exit")
            try:
                await asyncio.wait_for(process.wait(), timeout=5)
            except TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await asyncio.wait_for(process.wait(), timeout=5)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout=5)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class ClarionClient(RecordingClient):
    """`clarion.client` in this process, configured like the pusher-js client."""

    name = "clarion.client"

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
        self._client: Client | None = None

    async def start(self) -> None:
        options = self.options
        client = Client(
            options.key,
            host="127.0.0.1",
            port=options.port,
            activity_timeout=options.activity_timeout,
            pong_timeout=options.pong_timeout,
            unavailable_timeout=options.unavailable_timeout,
            channel_authorizer=f"{options.auth_url}/pusher/auth",
            user_authenticator=f"{options.auth_url}/pusher/user-auth",
            auth_params={"user_id": options.user_id},
        )
        connection = client.connection
        connection.bind("state_change", self._on_state_change)
        connection.bind("connecting_in", self._on_connecting_in)
        connection.bind("error", self._on_error)
        connection.bind("message", self._on_message)
        self._client = client

    def _on_state_change(self, change: StateChange) -> None:
        self.add_record(
            {"type": "state", "previous": change.previous, "current": change.current}
        )

    def _on_connecting_in(self, delay: int) -> None:
        self.add_record({"type": "connecting_in", "delay": delay})

    def _on_error(self, error: Any) -> None:
        self.add_record({"type": "error", "error": error})

    def _on_message(self, message: ServerMessage) -> None:
        if message.event == "pusher:signin_success":
            self.add_record({"type": "signin", "event": message.event})

    @property
    def client(self) -> Client:
        assert self._client is not None, "start() the client first"
        return self._client

    async def connect(self) -> None:
        self.client.connect()

    async def subscribe(self, channel: str) -> None:
        subscribed = self.client.subscribe(channel)
        for event in ("pusher:subscription_succeeded", "pusher:subscription_error"):
            subscribed.bind(event, self._subscription_recorder(channel, event))

    def _subscription_recorder(self, channel: str, event: str) -> Callable[[], None]:
        # clarion.client passes a callback as many arguments as it takes, so
        # this one takes none.
        record = {"type": "subscription", "channel": channel, "event": event}
        return lambda: self.add_record(record)

    async def signin(self) -> None:
        self.client.signin()

    async def disconnect(self) -> None:
        self.client.disconnect()

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.wait_for(self._client.aclose(), timeout=5)
