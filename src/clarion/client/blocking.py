"""A blocking facade over :class:`~clarion.client.client.Client`.

:class:`BlockingClient` runs an asyncio event loop on a background thread and
forwards each call to it, so scripts and synchronous web apps can use the
client without asyncio. Callbacks run on that background thread; they may call
the facade again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from clarion.client.channels import Channel, Members, PresenceChannel
from clarion.client.client import Client
from clarion.client.events import Callback
from clarion.client.user import User

__all__ = [
    "BlockingChannel",
    "BlockingClient",
    "BlockingConnection",
    "BlockingUser",
]

CALL_TIMEOUT = 10.0
"""Seconds a call may wait for the event loop thread before it times out."""

T = TypeVar("T")


class _LoopThread:
    """An event loop running on a daemon thread until ``stop()``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name="clarion-client", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` on the loop thread and return its result."""
        if threading.current_thread() is self._thread:
            return function(*args)

        async def run() -> T:
            return function(*args)

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout=CALL_TIMEOUT)

    def run(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


class BlockingConnection:
    """``client.connection`` of the blocking facade."""

    def __init__(self, client: Client, runner: _LoopThread) -> None:
        self._connection = client.connection
        self._runner = runner

    @property
    def state(self) -> str:
        return self._connection.state

    @property
    def socket_id(self) -> str | None:
        return self._connection.socket_id

    def bind(self, event_name: str, callback: Callback) -> BlockingConnection:
        self._runner.call(self._connection.bind, event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> BlockingConnection:
        self._runner.call(self._connection.unbind, event_name, callback)
        return self

    def bind_global(self, callback: Callback) -> BlockingConnection:
        self._runner.call(self._connection.bind_global, callback)
        return self

    def unbind_global(self, callback: Callback | None = None) -> BlockingConnection:
        self._runner.call(self._connection.unbind_global, callback)
        return self

    def unbind_all(self) -> BlockingConnection:
        self._runner.call(self._connection.unbind_all)
        return self


class BlockingChannel:
    """A channel of the blocking facade."""

    def __init__(self, channel: Channel, runner: _LoopThread) -> None:
        self._channel = channel
        self._runner = runner

    def __repr__(self) -> str:
        return f"<BlockingChannel {self.name!r} subscribed={self.subscribed}>"

    @property
    def name(self) -> str:
        return self._channel.name

    @property
    def subscribed(self) -> bool:
        return self._channel.subscribed

    @property
    def members(self) -> Members:
        """The roster of a presence channel.

        Raises:
            AttributeError: the channel is not a presence channel.
        """
        if not isinstance(self._channel, PresenceChannel):
            raise AttributeError(f"{self.name} is not a presence channel")
        return self._channel.members

    def bind(self, event_name: str, callback: Callback) -> BlockingChannel:
        self._runner.call(self._channel.bind, event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> BlockingChannel:
        self._runner.call(self._channel.unbind, event_name, callback)
        return self

    def bind_global(self, callback: Callback) -> BlockingChannel:
        self._runner.call(self._channel.bind_global, callback)
        return self

    def unbind_global(self, callback: Callback | None = None) -> BlockingChannel:
        self._runner.call(self._channel.unbind_global, callback)
        return self

    def unbind_all(self) -> BlockingChannel:
        self._runner.call(self._channel.unbind_all)
        return self

    def trigger(self, event: str, data: Any) -> bool:
        """Send a client event; see :meth:`Channel.trigger`."""
        return self._runner.call(self._channel.trigger, event, data)


class BlockingUser:
    """``client.user`` of the blocking facade."""

    def __init__(self, user: User, runner: _LoopThread) -> None:
        self._user = user
        self._runner = runner
        self.watchlist = _BlockingWatchlist(user, runner)

    @property
    def user_data(self) -> dict[str, Any] | None:
        return self._user.user_data

    def bind(self, event_name: str, callback: Callback) -> BlockingUser:
        self._runner.call(self._user.bind, event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> BlockingUser:
        self._runner.call(self._user.unbind, event_name, callback)
        return self


class _BlockingWatchlist:
    def __init__(self, user: User, runner: _LoopThread) -> None:
        self._watchlist = user.watchlist
        self._runner = runner

    def bind(self, event_name: str, callback: Callback) -> _BlockingWatchlist:
        self._runner.call(self._watchlist.bind, event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> _BlockingWatchlist:
        self._runner.call(self._watchlist.unbind, event_name, callback)
        return self


class BlockingClient:
    """The :class:`Client` API without asyncio; takes the same arguments.

    Use it as a context manager, or call ``close()`` when done, which
    disconnects and stops the background thread.
    """

    def __init__(self, key: str, **options: Any) -> None:
        self._runner = _LoopThread()
        try:
            self._client: Client = self._runner.call(lambda: Client(key, **options))
        except BaseException:
            self._runner.stop()
            raise
        self.connection = BlockingConnection(self._client, self._runner)
        self.user = BlockingUser(self._client.user, self._runner)
        self._channels: dict[str, BlockingChannel] = {}

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        self._runner.call(self._client.connect)

    def disconnect(self) -> None:
        self._runner.call(self._client.disconnect)

    def close(self) -> None:
        """Disconnect, wait for the socket to close and stop the thread."""
        if self._runner.loop.is_closed():
            return
        try:
            self._runner.run(self._client.aclose(), CALL_TIMEOUT)
        finally:
            self._runner.stop()

    def wait_for_state(self, state: str, timeout: float) -> bool:
        """Wait until ``connection.state`` is ``state``; return False on timeout."""
        reached = threading.Event()

        def check(*_: Any) -> None:
            if self._client.connection.state == state:
                reached.set()

        def bind() -> None:
            self._client.connection.bind("state_change", check)
            check()

        self._runner.call(bind)
        try:
            return reached.wait(timeout)
        finally:
            self._runner.call(self._client.connection.unbind, "state_change", check)

    def subscribe(self, channel_name: str) -> BlockingChannel:
        channel = self._runner.call(self._client.subscribe, channel_name)
        wrapper = self._channels.get(channel_name)
        if wrapper is None or wrapper._channel is not channel:
            wrapper = BlockingChannel(channel, self._runner)
            self._channels[channel_name] = wrapper
        return wrapper

    def unsubscribe(self, channel_name: str) -> None:
        self._runner.call(self._client.unsubscribe, channel_name)

    def channel(self, channel_name: str) -> BlockingChannel | None:
        channel = self._runner.call(self._client.channel, channel_name)
        if channel is None:
            return None
        wrapper = self._channels.get(channel_name)
        if wrapper is None or wrapper._channel is not channel:
            wrapper = BlockingChannel(channel, self._runner)
            self._channels[channel_name] = wrapper
        return wrapper

    def signin(self) -> None:
        self._runner.call(self._client.signin)

    def bind(self, event_name: str, callback: Callback) -> BlockingClient:
        self._runner.call(self._client.bind, event_name, callback)
        return self

    def bind_global(self, callback: Callback) -> BlockingClient:
        self._runner.call(self._client.bind_global, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> BlockingClient:
        self._runner.call(self._client.unbind, event_name, callback)
        return self

    def send_event(self, event: str, data: Any, channel: str | None = None) -> bool:
        return self._runner.call(self._client.send_event, event, data, channel)
