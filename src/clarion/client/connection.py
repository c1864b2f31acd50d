"""The asyncio transport under ``client.connection``.

It runs WebSockets (with the ``websockets`` library) and timers for
:class:`~clarion.protocol.client_state.ConnectionStateMachine`, which makes
every decision, and emits the machine's events to the application.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from clarion.client.events import Callback, EventEmitter
from clarion.protocol.client_state import (
    CancelTimer,
    CloseSocket,
    ConnectionStateMachine,
    EmitEvent,
    OpenSocket,
    SendText,
    StartTimer,
    StateChange,
    Timing,
)

__all__ = ["Connection"]

logger = logging.getLogger("clarion.client")

CLOSE_TIMEOUT = 2.0
"""Seconds to wait for the server's close frame after the client closes."""

MAX_FRAME_SIZE = 2**20
"""Largest frame accepted from the server, in bytes."""


class Connection:
    """The client's connection to the server: ``client.connection``.

    ``state`` is one of ``initialized``, ``connecting``, ``connected``,
    ``unavailable``, ``failed`` and ``disconnected``. Bind callbacks to
    ``state_change`` (a :class:`StateChange`), to each state's name,
    ``connecting_in`` (whole seconds until the next attempt), ``error`` and
    ``message`` (every decoded frame, a ``ServerMessage``).

    ``connect()``, ``disconnect()`` and ``send_event()`` must be called from
    the event loop's thread.
    """

    def __init__(
        self,
        key: str,
        *,
        host: str,
        port: int,
        tls: bool,
        path: str,
        timing: Timing,
        ssl_context: ssl.SSLContext | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        machine_options: dict[str, Any] = {}
        if rng is not None:
            machine_options["rng"] = rng
        self._machine = ConnectionStateMachine(
            host=host,
            port=port,
            key=key,
            tls=tls,
            path=path,
            timing=timing,
            **machine_options,
        )
        self._ssl_context = ssl_context
        self._last_error: BaseException | None = None
        self._state = self._machine.state.value
        self._emitter = EventEmitter()
        # The client's own listeners run before the application's and survive
        # unbind_all().
        self._internal = EventEmitter()
        self._socket_tasks: dict[int, asyncio.Task[None]] = {}
        self._open_sockets: dict[int, ClientConnection] = {}
        self._send_queues: dict[int, asyncio.Queue[str]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()

    # -- Public API ----------------------------------------------------------

    @property
    def state(self) -> str:
        """The current state, as of the last ``state_change`` emitted."""
        return self._state

    @property
    def socket_id(self) -> str | None:
        """The server-assigned id of the latest connection, or None before one."""
        return self._machine.socket_id

    @property
    def last_error(self) -> BaseException | None:
        """The exception of the latest failed connection attempt.

        It is None before the first failure and again once a WebSocket opens,
        and explains why the state stays ``connecting`` or ``unavailable``.
        """
        return self._last_error

    @property
    def activity_timeout(self) -> float:
        """Seconds of silence before a ping on the current connection."""
        return self._machine.activity_timeout

    def bind(self, event_name: str, callback: Callback) -> Connection:
        self._emitter.bind(event_name, callback)
        return self

    def unbind(
        self, event_name: str | None = None, callback: Callback | None = None
    ) -> Connection:
        self._emitter.unbind(event_name, callback)
        return self

    def bind_global(self, callback: Callback) -> Connection:
        self._emitter.bind_global(callback)
        return self

    def unbind_global(self, callback: Callback | None = None) -> Connection:
        self._emitter.unbind_global(callback)
        return self

    def unbind_all(self) -> Connection:
        self._emitter.unbind_all()
        return self

    def connect(self) -> None:
        """Start connecting; does nothing while connected or connecting."""
        self._machine.connect()
        self._run_effects()

    def disconnect(self) -> None:
        """Close the connection and stay ``disconnected`` until ``connect()``."""
        self._machine.disconnect()
        self._run_effects()

    def send_event(self, event: str, data: Any, channel: str | None = None) -> bool:
        """Send a frame; return False when no connection is established."""
        sent = self._machine.send_event(event, data, channel)
        self._run_effects()
        return sent

    async def wait_closed(self, timeout: float = CLOSE_TIMEOUT + 1) -> None:
        """Wait until every socket that the client closed has finished closing."""
        pending = set(self._socket_tasks.values()) | self._closing
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # -- Internal listeners -------------------------------------------------

    def bind_internal(self, event_name: str, callback: Callback) -> None:
        self._internal.bind(event_name, callback)

    # -- Effects --------------------------------------------------------------

    def _run_effects(self) -> None:
        # A callback run by an EmitEvent may call connect() or disconnect(),
        # which runs the newer effects at once. The older effects left in this
        # list are then checked for liveness before they act.
        for effect in self._machine.effects_to_run():
            if isinstance(effect, EmitEvent):
                self._emit(effect.name, effect.data)
            elif isinstance(effect, SendText):
                queue = self._send_queues.get(effect.socket)
                if queue is not None:
                    queue.put_nowait(effect.text)
            elif isinstance(effect, StartTimer):
                if self._machine.is_live_timer(effect.timer):
                    self._start_timer(effect.timer, effect.delay)
            elif isinstance(effect, CancelTimer):
                handle = self._timers.pop(effect.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(effect, OpenSocket):
                if self._machine.is_live_socket(effect.socket):
                    self._open_socket(effect.socket, effect.url)
            elif isinstance(effect, CloseSocket):
                self._close_socket(effect.socket)

    def _emit(self, name: str, data: Any) -> None:
        if name == "state_change" and isinstance(data, StateChange):
            self._state = data.current
            logger.info("Connection state %s -> %s", data.previous, data.current)
        elif name == "error":
            logger.debug("Connection error: %r", data)
        self._internal.emit(name, data)
        self._emitter.emit(name, data)

    def _start_timer(self, timer: int, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[timer] = loop.call_later(delay, self._on_timer, timer)

    def _on_timer(self, timer: int) -> None:
        self._timers.pop(timer, None)
        self._machine.timer_expired(timer)
        self._run_effects()

    # -- Sockets --------------------------------------------------------------

    def _open_socket(self, socket: int, url: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_socket(socket, url))
        self._socket_tasks[socket] = task
        task.add_done_callback(lambda _: self._socket_tasks.pop(socket, None))

    def _close_socket(self, socket: int) -> None:
        websocket = self._open_sockets.pop(socket, None)
        self._send_queues.pop(socket, None)
        if websocket is None:
            task = self._socket_tasks.get(socket)
            if task is not None:
                task.cancel()
            return
        closing = asyncio.get_running_loop().create_task(websocket.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _run_socket(self, socket: int, url: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            websocket = await connect(
                url,
                ssl=self._tls_context() if url.startswith("wss:") else None,
                proxy=None,
                open_timeout=None,
                ping_interval=None,
                close_timeout=CLOSE_TIMEOUT,
                max_size=MAX_FRAME_SIZE,
                compression=None,
                user_agent_header=None,
            )
        except (OSError, WebSocketException) as exc:
            # Refused, unreachable, a TLS failure or an HTTP error: the attempt
            # loop retries, so this is routine.
            logger.info("Connection attempt to %s failed: %s", url, exc)
            self._fail_attempt(socket, exc)
            return
        except Exception as exc:
            # Anything else is a bug or a bad option, such as an SSLContext
            # made for servers. It fails this attempt like any other, so the
            # client keeps retrying instead of waiting forever.
            logger.error("Connection attempt to %s failed", url, exc_info=True)
            self._fail_attempt(socket, exc)
            return
        self._last_error = None
        if not self._machine.is_live_socket(socket):
            await websocket.close()
            return

        opened_at = loop.time()
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._open_sockets[socket] = websocket
        self._send_queues[socket] = queue
        writer = loop.create_task(self._write(websocket, queue))
        self._machine.socket_opened(socket)
        self._run_effects()
        try:
            async for frame in websocket:
                self._machine.text_received(socket, frame)
                self._run_effects()
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
        self._open_sockets.pop(socket, None)
        self._send_queues.pop(socket, None)
        received = websocket.protocol.close_rcvd
        socket_exception = getattr(websocket, "connection_exc", None)
        if received is None and socket_exception is not None:
            # A reset socket, for one: pusher-js reports its error before the
            # close, as a WebSocketError.
            self._machine.socket_error(socket, socket_exception)
            self._run_effects()
        code = received.code if received is not None else 1006
        reason = received.reason if received is not None else ""
        lifetime = loop.time() - opened_at
        self._machine.socket_closed(
            socket, code, reason, was_clean=received is not None, lifetime=lifetime
        )
        self._run_effects()

    def _fail_attempt(self, socket: int, error: BaseException) -> None:
        self._last_error = error
        self._machine.socket_failed(socket)
        self._run_effects()

    def _tls_context(self) -> ssl.SSLContext:
        # The default context trusts the system's CAs, or those that
        # SSL_CERT_FILE and SSL_CERT_DIR name. It is made on first use.
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _write(
        self, websocket: ClientConnection, queue: asyncio.Queue[str]
    ) -> None:
        try:
            while True:
                await websocket.send(await queue.get())
        except ConnectionClosed:
            pass
