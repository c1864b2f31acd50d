"""The app's auth endpoints for the differential tests, on 127.0.0.1.

`POST /pusher/auth` authorizes private, presence and private-encrypted
channels, and `POST /pusher/user-auth` signs users in, with the form fields
that pusher-js sends (`socket_id`, `channel_name`) plus `user_id`, which the
clients add as an extra parameter. Bodies come from `clarion.protocol.backend`,
so the same signing code serves both clients under test. Every request is
kept in `requests`, so tests can check that a reconnect fetched fresh auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from typing import Any

from clarion.protocol.backend import authenticate_user, authorize_channel

ENCRYPTION_MASTER_KEY = b"differential-test-master-key-32b"
REQUEST_TIMEOUT = 5.0


class AuthEndpoint:
    """A small HTTP/1.1 server that serves one request per connection."""

    def __init__(self, key: str, secret: str) -> None:
        self.key = key
        self.secret = secret
        self.requests: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def respond(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Return the status and JSON body for one auth request."""
        self.requests.append({"path": path, **form})
        socket_id = form.get("socket_id", "")
        user_id = form.get("user_id")
        try:
            if path == "/pusher/auth":
                channel = form.get("channel_name", "")
                user = None
                if channel.startswith("presence-"):
                    user = {"user_id": user_id, "user_info": {"name": user_id}}
                body = authorize_channel(
                    key=self.key,
                    secret=self.secret,
                    socket_id=socket_id,
                    channel=channel,
                    user=user,
                    encryption_master_key=ENCRYPTION_MASTER_KEY,
                )
                return 200, body
            if path == "/pusher/user-auth":
                user = {"id": user_id, "user_info": {"name": user_id}}
                return 200, authenticate_user(
                    key=self.key, secret=self.secret, socket_id=socket_id, user=user
                )
        except ValueError as exc:
            return 403, {"error": str(exc)}
        return 404, {"error": f"no auth endpoint at {path}"}

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                raw = (await reader.readexactly(length)).decode()
            form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
            if method == "POST":
                status, body = self.respond(path, form)
            else:
                status, body = 405, {"error": "use POST"}
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
