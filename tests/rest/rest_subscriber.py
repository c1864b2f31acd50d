"""A minimal WebSocket subscriber that shows what the HTTP API delivered.

It speaks the Pusher protocol directly with `websockets`, so these tests
depend on the server and on `clarion.rest`, not on `clarion.client`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

# Seconds to wait for a frame the server is expected to send.
RECEIVE_TIMEOUT = 5.0


class Subscriber:
    """One WebSocket connection to the server, past its handshake."""

    def __init__(self, connection: ClientConnection, socket_id: str) -> None:
        self.connection = connection
        self.socket_id = socket_id

    @classmethod
    async def open(cls, ws_url: str) -> Subscriber:
        connection = await connect(ws_url, open_timeout=RECEIVE_TIMEOUT)
        subscriber = cls(connection, "")
        established = await subscriber.next_message("pusher:connection_established")
        subscriber.socket_id = json.loads(established["data"])["socket_id"]
        return subscriber

    async def close(self) -> None:
        await self.connection.close()

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.connection.send(json.dumps({"event": event, "data": data}))

    async def subscribe(self, channel: str, auth: dict[str, str] | None = None) -> None:
        """Subscribe with the body an auth endpoint returned, if any."""
        await self.send("pusher:subscribe", {"channel": channel, **(auth or {})})
        message = await self.next_message(
            "pusher_internal:subscription_succeeded", "pusher:subscription_error"
        )
        assert message["event"] == "pusher_internal:subscription_succeeded", message

    async def sign_in(self, auth: dict[str, str]) -> None:
        """Send `pusher:signin` with the body a user auth endpoint returned."""
        await self.send("pusher:signin", auth)
        await self.next_message("pusher:signin_success")

    async def next_message(self, *events: str) -> dict[str, Any]:
        """Return the next frame named one of `events`, skipping other frames."""
        async with asyncio.timeout(RECEIVE_TIMEOUT):
            while True:
                message: dict[str, Any] = json.loads(await self.connection.recv())
                if message.get("event") in events:
                    return message
