"""Helpers for the client's end-to-end tests: event recording, waiting, a proxy."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

import pusher

from clarion.client import ChannelAuthorizationRequest, UserAuthenticationRequest

MASTER_KEY_BASE64 = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
"""The encryption master key of the test app's backend."""

# Seconds to wait for something the server or the client should do soon.
WAIT_TIMEOUT = 5.0


async def wait_until(
    predicate: Callable[[], object], timeout: float = WAIT_TIMEOUT
) -> None:
    """Poll ``predicate`` every 10 ms until it is true, or fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Recorder:
    """A callback that stores its calls, with an awaitable way to read them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        self._changed.set()

    @property
    def values(self) -> list[Any]:
        """The first argument of each call."""
        return [call[0] if call else None for call in self.calls]

    async def wait_count(self, count: int, timeout: float = WAIT_TIMEOUT) -> None:
        """Wait until at least ``count`` calls were recorded."""
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()

    async def first(self, timeout: float = WAIT_TIMEOUT) -> Any:
        await self.wait_count(1, timeout)
        return self.values[0]


class TcpProxy:
    """A loopback TCP proxy to the server that the test can cut.

    ``drop()`` closes every proxied connection at once without a WebSocket
    close frame, as a network failure would.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))
        pumps = [
            asyncio.create_task(self._pump(client_reader, server_writer)),
            asyncio.create_task(self._pump(server_reader, client_writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for writer in (client_writer, server_writer):
            writer.close()
            self._writers.discard(writer)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def drop(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()


class SdkAuth:
    """Channel authorizer and user authenticator backed by the SDK, as an app's
    backend would be. Records every request."""

    def __init__(self, sdk: pusher.Pusher, user_id: str, user_info: Any = None) -> None:
        self.sdk = sdk
        self.user_id = user_id
        self.user_info = user_info
        self.watchlist: list[str] | None = None
        self.channel_requests: list[ChannelAuthorizationRequest] = []
        self.user_requests: list[UserAuthenticationRequest] = []

    def authorize(self, request: ChannelAuthorizationRequest) -> dict[str, Any]:
        self.channel_requests.append(request)
        custom_data = None
        if request.channel_name.startswith("presence-"):
            custom_data = {"user_id": self.user_id, "user_info": self.user_info}
        return self.sdk.authenticate(
            request.channel_name, request.socket_id, custom_data
        )

    def authenticate(self, request: UserAuthenticationRequest) -> dict[str, Any]:
        self.user_requests.append(request)
        user_data: dict[str, Any] = {"id": self.user_id}
        if self.user_info is not None:
            user_data["user_info"] = self.user_info
        if self.watchlist is not None:
            user_data["watchlist"] = self.watchlist
        return self.sdk.authenticate_user(request.socket_id, user_data)
