"""The client's connection state machine, without I/O.

This module reproduces the connection lifecycle of pusher-js 8.6.0 (its
``ConnectionManager``, the WebSocket-only connection strategy and the handshake)
as a sans-I/O component. The I/O layer feeds it inputs (``connect``,
``socket_opened``, ``text_received``, ``socket_closed``, ``timer_expired`` ...).
After each input it executes, in order, the effects that
:meth:`ConnectionStateMachine.effects_to_run` returns: open or close a socket,
send a frame, start or cancel a timer, emit an event to the application.

Every socket and every timer carries an integer id chosen here. Inputs that
name a socket or timer which the machine no longer tracks are ignored, so an
event that races with a cancellation does no harm. Before executing a queued
``OpenSocket`` or ``StartTimer``, the I/O layer calls :meth:`is_live_socket` or
:meth:`is_live_timer`, because a callback run by an earlier ``EmitEvent`` may
have changed the machine since the effect was queued.

Times are in seconds.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any
from urllib.parse import quote

from clarion.protocol.messages import dumps

__all__ = [
    "PROTOCOL_VERSION",
    "CancelTimer",
    "CloseAction",
    "CloseSocket",
    "ConnectionState",
    "ConnectionStateMachine",
    "Effect",
    "EmitEvent",
    "OpenSocket",
    "SendText",
    "ServerMessage",
    "StartTimer",
    "StateChange",
    "TimerKind",
    "Timing",
    "attempt_timeouts",
    "build_url",
    "close_action",
    "close_error",
    "parse_server_message",
]

PROTOCOL_VERSION = 7

MIN_PING_DELAY = 10.0
"""Lower bound of the ping delay learned from short-lived sockets (pusher-js)."""


class ConnectionState(StrEnum):
    """The states of pusher-js's connection, with its names."""

    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class StateChange:
    """Payload of the ``state_change`` event."""

    previous: str
    current: str


class CloseAction(Enum):
    """The client's reaction to a close code or to a refused handshake."""

    TLS_ONLY = "tls_only"
    """Switch to TLS and reconnect at once (4000)."""
    REFUSED = "refused"
    """Disconnect and stay disconnected (4001-4099, and 4300 or above)."""
    BACKOFF = "backoff"
    """Reconnect after the retry delay (4100-4199, 1002-1004)."""
    RETRY = "retry"
    """Reconnect at once (4200-4299)."""


def close_action(code: int | None) -> CloseAction | None:
    """Map a close code, or the code of a handshake ``pusher:error``, to an action.

    Codes below 4000 other than 1002-1004 map to None, meaning the ordinary
    reconnect path. pusher-js treats 4300 and above as a refusal, although the
    Pusher protocol reserves 4300-4399 for errors that are not close codes.
    """
    if code is None or code < 4000:
        if code is not None and 1002 <= code <= 1004:
            return CloseAction.BACKOFF
        return None
    if code == 4000:
        return CloseAction.TLS_ONLY
    if code < 4100:
        return CloseAction.REFUSED
    if code < 4200:
        return CloseAction.BACKOFF
    if code < 4300:
        return CloseAction.RETRY
    return CloseAction.REFUSED


def close_error(code: int | None, message: str | None) -> dict[str, Any] | None:
    """Return the ``error`` event payload for a close, or None for 1000 and 1001."""
    if code in (1000, 1001):
        return None
    return {"type": "PusherError", "data": {"code": code, "message": message}}


class TimerKind(Enum):
    UNAVAILABLE = "unavailable"
    """``connecting`` becomes ``unavailable`` when it fires."""
    ATTEMPT = "attempt"
    """Ends one connection attempt so that the next one starts."""
    RETRY = "retry"
    """Tears down the connection and connects again (pusher-js ``retryIn``)."""
    ACTIVITY = "activity"
    """Sends ``pusher:ping`` after a quiet period."""
    PONG = "pong"
    """Reconnects when nothing arrived after the ping."""


@dataclass(frozen=True, slots=True)
class OpenSocket:
    socket: int
    url: str


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close the socket (or abandon the attempt) and report nothing more about it."""

    socket: int


@dataclass(frozen=True, slots=True)
class SendText:
    socket: int
    text: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: int
    kind: TimerKind
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: int


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Emit a connection event (``state_change``, ``connected``, ``error`` ...)."""

    name: str
    data: Any = None


Effect = OpenSocket | CloseSocket | SendText | StartTimer | CancelTimer | EmitEvent


@dataclass(frozen=True, slots=True)
class Timing:
    """The connection's timers, with pusher-js 8.6.0's defaults."""

    activity_timeout: float = 120.0
    """Seconds without a received frame before pinging; the server's announced
    value applies when it is lower."""
    pong_timeout: float = 30.0
    """Seconds to wait for any frame after a ping before reconnecting."""
    unavailable_timeout: float = 10.0
    """Seconds in ``connecting`` before the state becomes ``unavailable``."""
    attempt_timeout: float = 15.0
    """Seconds the first connection attempt may take; each next attempt of the
    same connect gets twice as long, up to ``max_attempt_timeout``."""
    max_attempt_timeout: float = 60.0
    retry_delay: float = 1.0
    """Seconds before reconnecting after a lost connection or a back-off code."""
    jitter: float = 0.0
    """Fraction by which every delay is stretched at random, from 0 (exact
    pusher-js timing) to 1. An immediate retry then waits a random time of up to
    ``jitter * retry_delay``, so a fleet of clients does not reconnect at once."""

    def __post_init__(self) -> None:
        for name in (
            "activity_timeout",
            "pong_timeout",
            "unavailable_timeout",
            "attempt_timeout",
            "max_attempt_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if not self.retry_delay >= 0:
            raise ValueError("retry_delay must be zero or a positive number of seconds")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter}")


def attempt_timeouts(initial: float, maximum: float) -> Iterator[float]:
    """Yield the time limit of each connection attempt: doubling, then capped."""
    timeout = min(initial, maximum)
    while True:
        yield timeout
        timeout = min(timeout * 2, maximum)


def build_url(host: str, port: int, key: str, *, tls: bool, path: str = "") -> str:
    """Return the WebSocket URL of the app's endpoint, ``/app/{key}``."""
    scheme = "wss" if tls else "ws"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    query = f"protocol={PROTOCOL_VERSION}&client=clarion-python&flash=false"
    return f"{scheme}://{host}:{port}{path}/app/{quote(key, safe='')}?{query}"


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One decoded frame from the server.

    ``data`` is decoded as pusher-js decodes it: a string that contains JSON
    becomes the decoded value, and any other string stays as it is.
    """

    event: str
    channel: str | None = None
    data: Any = None
    user_id: str | None = None


def parse_server_message(text: str | bytes) -> ServerMessage:
    """Decode a frame.

    Raises:
        ValueError: the frame is not a JSON object with a string ``event``.
    """
    try:
        message = json.loads(text)
    except RecursionError:
        raise ValueError("frame is nested too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise ValueError("frame is not a JSON object with a string event")
    data = message.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            pass
    channel = message.get("channel")
    user_id = message.get("user_id")
    return ServerMessage(
        event=message["event"],
        channel=channel if isinstance(channel, str) else None,
        data=data,
        user_id=str(user_id) if user_id else None,
    )


class _Runner(Enum):
    """Whether the connection strategy (the loop of attempts) runs."""

    IDLE = "idle"
    RUNNING = "running"
    STALLED = "stalled"
    """Stopped after an invalid handshake, still blocking ``connect()``, as
    pusher-js's runner does until ``disconnect()``."""


@dataclass
class _Attempt:
    socket: int
    opened: bool = False
    ping_delay: float | None = None


@dataclass
class ConnectionStateMachine:
    """pusher-js's connection lifecycle for one client, as a sans-I/O machine.

    ``supported`` False makes ``connect()`` end in ``failed``, the state pusher-js
    enters when no transport can work in its environment. ``rng`` supplies the
    jitter, a float in [0, 1).
    """

    host: str
    port: int
    key: str
    tls: bool = False
    path: str = ""
    timing: Timing = field(default_factory=Timing)
    supported: bool = True
    rng: Callable[[], float] = random.random

    state: ConnectionState = field(default=ConnectionState.INITIALIZED, init=False)
    socket_id: str | None = field(default=None, init=False)
    connection_socket: int | None = field(default=None, init=False)
    """The socket of the established connection, or None."""

    _effects: list[Effect] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=0, init=False, repr=False)
    _live_timers: dict[int, TimerKind] = field(
        default_factory=dict, init=False, repr=False
    )
    _runner: _Runner = field(default=_Runner.IDLE, init=False, repr=False)
    _attempt: _Attempt | None = field(default=None, init=False, repr=False)
    _attempt_timeouts: Iterator[float] | None = field(
        default=None, init=False, repr=False
    )
    _activity_timeout: float = field(default=0.0, init=False, repr=False)
    _ping_delay: float | None = field(default=None, init=False, repr=False)

    # -- Inputs from the application -------------------------------------

    def connect(self) -> None:
        """Start connecting, unless a connection or an attempt already exists."""
        if self.connection_socket is not None or self._runner is not _Runner.IDLE:
            return
        if not self.supported:
            self._update_state(ConnectionState.FAILED)
            return
        self._update_state(ConnectionState.CONNECTING)
        self._start_connecting()
        # A connect() during a scheduled retry may find the last attempt's
        # timer still armed; keep one, started now.
        self._cancel_timers(TimerKind.UNAVAILABLE)
        self._start_timer(TimerKind.UNAVAILABLE, self.timing.unavailable_timeout)

    def disconnect(self) -> None:
        """Close everything and enter ``disconnected``; nothing reconnects."""
        self._disconnect_internally()
        self._update_state(ConnectionState.DISCONNECTED)

    def send_event(self, event: str, data: Any, channel: str | None = None) -> bool:
        """Queue a frame on the established connection; return whether one exists."""
        if self.connection_socket is None:
            return False
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        self._effects.append(SendText(self.connection_socket, dumps(frame)))
        return True

    # -- Inputs from the I/O layer ---------------------------------------

    def socket_opened(self, socket: int) -> None:
        """Record that the WebSocket opening handshake of ``socket`` completed."""
        if self._attempt is not None and self._attempt.socket == socket:
            self._attempt.opened = True

    def socket_failed(self, socket: int) -> None:
        """Record that ``socket`` could not open (refused, unreachable, HTTP error).

        The attempt ends, and the next one starts when the attempt timer fires.
        """
        if self._attempt is not None and self._attempt.socket == socket:
            self._attempt = None

    def text_received(self, socket: int, text: str | bytes) -> None:
        """Handle a frame received on ``socket``."""
        if self._attempt is not None and self._attempt.socket == socket:
            if self._attempt.opened:
                self._receive_handshake(text)
        elif socket == self.connection_socket:
            self._receive_message(text)

    def socket_error(self, socket: int, error: object) -> None:
        """Emit an error of the established connection, which a close follows."""
        if socket == self.connection_socket:
            self._emit("error", {"type": "WebSocketError", "error": error})

    def socket_closed(
        self,
        socket: int,
        code: int | None,
        reason: str = "",
        *,
        was_clean: bool = True,
        lifetime: float | None = None,
    ) -> None:
        """Handle the close of ``socket``, open for ``lifetime`` seconds.

        A close before the opening handshake completed is ``socket_failed``.
        """
        if self._attempt is not None and self._attempt.socket == socket:
            if not self._attempt.opened:
                self._attempt = None
                return
            self._learn_ping_delay(code, was_clean, lifetime)
            self._finish_handshake(
                close_action(code) or CloseAction.BACKOFF, close_error(code, reason)
            )
        elif socket == self.connection_socket:
            self._learn_ping_delay(code, was_clean, lifetime)
            self._close_connection(code, reason)

    def timer_expired(self, timer: int) -> None:
        kind = self._live_timers.pop(timer, None)
        if kind is None:
            return
        if kind is TimerKind.UNAVAILABLE:
            self._update_state(ConnectionState.UNAVAILABLE)
        elif kind is TimerKind.ATTEMPT:
            self._next_attempt()
        elif kind is TimerKind.RETRY:
            self._disconnect_internally()
            self.connect()
        elif kind is TimerKind.ACTIVITY:
            self._send_activity_check()
        elif kind is TimerKind.PONG:
            self._retry_in(0.0)

    # -- Outputs ----------------------------------------------------------

    def effects_to_run(self) -> list[Effect]:
        """Return the effects queued since the last call, oldest first."""
        effects, self._effects = self._effects, []
        return effects

    def is_live_socket(self, socket: int) -> bool:
        """Return whether ``socket`` is still the current attempt or connection."""
        attempt = self._attempt
        return socket == self.connection_socket or (
            attempt is not None and attempt.socket == socket
        )

    def is_live_timer(self, timer: int) -> bool:
        return timer in self._live_timers

    @property
    def activity_timeout(self) -> float:
        """Seconds of silence before a ping on the current connection."""
        return self._activity_timeout

    # -- The attempt loop -------------------------------------------------

    def _start_connecting(self) -> None:
        self._runner = _Runner.RUNNING
        self._attempt_timeouts = attempt_timeouts(
            self.timing.attempt_timeout, self.timing.max_attempt_timeout
        )
        self._open_attempt()

    def _open_attempt(self) -> None:
        assert self._attempt_timeouts is not None
        socket = self._new_id()
        self._attempt = _Attempt(socket, ping_delay=self._ping_delay)
        url = build_url(self.host, self.port, self.key, tls=self.tls, path=self.path)
        self._effects.append(OpenSocket(socket, url))
        timeout = self._jittered(next(self._attempt_timeouts))
        self._start_timer(TimerKind.ATTEMPT, timeout)

    def _next_attempt(self) -> None:
        # pusher-js waits out each attempt's timer even when the socket failed
        # early, then tries again with twice the time limit.
        self._drop_attempt()
        self._open_attempt()

    def _drop_attempt(self) -> None:
        if self._attempt is not None:
            self._effects.append(CloseSocket(self._attempt.socket))
            self._attempt = None

    def _abort_connecting(self) -> None:
        self._cancel_timers(TimerKind.ATTEMPT)
        self._drop_attempt()
        self._runner = _Runner.IDLE

    def _receive_handshake(self, text: str | bytes) -> None:
        try:
            message = parse_server_message(text)
        except ValueError as exc:
            self._stall_handshake(
                {"type": "MessageParseError", "error": str(exc), "data": text}
            )
            return
        data = message.data if isinstance(message.data, dict) else {}
        if message.event == "pusher:connection_established":
            activity_timeout = _positive_number(data.get("activity_timeout"))
            if activity_timeout is None:
                self._stall_handshake("No activity timeout specified in handshake")
                return
            self._handshake_connected(str(data.get("socket_id")), activity_timeout)
        elif message.event == "pusher:error":
            code = data.get("code")
            code = code if isinstance(code, int) else None
            error = close_error(code, data.get("message"))
            # NOTE: pusher-js 8.6.0 throws inside its callback when a handshake
            # error carries no close code it maps; backing off is our choice.
            self._finish_handshake(close_action(code) or CloseAction.BACKOFF, error)
        else:
            self._stall_handshake("Invalid handshake")

    def _stall_handshake(self, error: object) -> None:
        # Like pusher-js, report the error and stop trying without scheduling a
        # retry: the client stays connecting (or unavailable) until disconnect().
        self._cancel_timers(TimerKind.ATTEMPT)
        self._drop_attempt()
        self._runner = _Runner.STALLED
        self._emit("error", {"type": "HandshakeError", "error": error})

    def _handshake_connected(self, socket_id: str, activity_timeout: float) -> None:
        assert self._attempt is not None
        attempt = self._attempt
        self._attempt = None
        self._abort_connecting()
        limits = [self.timing.activity_timeout, float(activity_timeout)]
        if attempt.ping_delay is not None:
            limits.append(attempt.ping_delay)
        self._activity_timeout = min(limits)
        self._cancel_timers(TimerKind.UNAVAILABLE)
        self.connection_socket = attempt.socket
        self._reset_activity_check()
        self.socket_id = socket_id
        self._update_state(ConnectionState.CONNECTED, {"socket_id": socket_id})

    def _finish_handshake(self, action: CloseAction, error: object) -> None:
        self._abort_connecting()
        self._run_action(action, error)

    # -- The established connection ---------------------------------------

    def _receive_message(self, text: str | bytes) -> None:
        try:
            message = parse_server_message(text)
        except ValueError as exc:
            self._emit(
                "error", {"type": "MessageParseError", "error": str(exc), "data": text}
            )
            return
        if message.event == "pusher:error":
            self._emit("error", {"type": "PusherError", "data": message.data})
        elif message.event == "pusher:ping":
            self.send_event("pusher:pong", {})
        self._reset_activity_check()
        self._emit("message", message)

    def _close_connection(self, code: int | None, reason: str) -> None:
        if code:
            error = close_error(code, reason)
            if error is not None:
                self._emit("error", error)
            action = close_action(code)
            if action is not None:
                self._run_action(action, error)
        # A refusal has already abandoned the connection and disconnected.
        if self.connection_socket is None:
            return
        self._abandon_connection()
        if self.state in (ConnectionState.CONNECTING, ConnectionState.CONNECTED):
            self._retry_in(self.timing.retry_delay)

    def _run_action(self, action: CloseAction, error: object) -> None:
        if error is not None:
            self._emit("error", {"type": "WebSocketError", "error": error})
        if action is CloseAction.TLS_ONLY:
            self.tls = True
            self._retry_in(0.0)
        elif action is CloseAction.REFUSED:
            self.disconnect()
        elif action is CloseAction.BACKOFF:
            self._retry_in(self.timing.retry_delay)
        else:
            self._retry_in(0.0)

    def _reset_activity_check(self) -> None:
        self._stop_activity_check()
        if self.connection_socket is not None:
            self._start_timer(TimerKind.ACTIVITY, self._activity_timeout)

    def _send_activity_check(self) -> None:
        self._stop_activity_check()
        self.send_event("pusher:ping", {})
        self._start_timer(TimerKind.PONG, self.timing.pong_timeout)

    def _stop_activity_check(self) -> None:
        self._cancel_timers(TimerKind.ACTIVITY, TimerKind.PONG)

    def _abandon_connection(self) -> int | None:
        socket = self.connection_socket
        if socket is not None:
            self._stop_activity_check()
            self.connection_socket = None
        return socket

    def _learn_ping_delay(
        self, code: int | None, was_clean: bool, lifetime: float | None
    ) -> None:
        # pusher-js shortens the ping delay of later connections when a socket
        # dies uncleanly well before two activity timeouts: something on the way
        # (a proxy, a NAT) probably drops idle connections.
        if code in (1002, 1003) or was_clean or lifetime is None:
            return
        if lifetime < 2 * self.timing.activity_timeout:
            self._ping_delay = max(lifetime / 2, MIN_PING_DELAY)

    # -- Retry, disconnect and state --------------------------------------

    def _retry_in(self, delay: float) -> None:
        if delay > 0:
            self._emit("connecting_in", math.floor(delay + 0.5))
        # pusher-js may schedule a second retry before the first fires (a
        # close code's action, then the generic close handling). The first to
        # fire tears down and reconnects, and the others are cancelled.
        self._start_timer(TimerKind.RETRY, self._jittered(delay))

    def _disconnect_internally(self) -> None:
        # NOTE: pusher-js 8.6.0 cancels only the latest pending retry here, so a
        # disconnect() right after a 4100-4199 close can still reconnect there.
        # This machine cancels every pending retry.
        self._abort_connecting()
        self._cancel_timers(TimerKind.RETRY, TimerKind.UNAVAILABLE)
        socket = self._abandon_connection()
        if socket is not None:
            self._effects.append(CloseSocket(socket))

    def _update_state(self, state: ConnectionState, data: Any = None) -> None:
        previous = self.state
        self.state = state
        if previous is not state:
            self._emit("state_change", StateChange(previous.value, state.value))
            self._emit(state.value, data)

    def _emit(self, name: str, data: Any = None) -> None:
        self._effects.append(EmitEvent(name, data))

    # -- Timers -------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _start_timer(self, kind: TimerKind, delay: float) -> None:
        timer = self._new_id()
        self._live_timers[timer] = kind
        self._effects.append(StartTimer(timer, kind, delay))

    def _cancel_timers(self, *kinds: TimerKind) -> None:
        for timer, kind in list(self._live_timers.items()):
            if kind in kinds:
                del self._live_timers[timer]
                self._effects.append(CancelTimer(timer))

    def _jittered(self, delay: float) -> float:
        jitter = self.timing.jitter
        if jitter == 0:
            return delay
        if delay == 0:
            return jitter * self.timing.retry_delay * self.rng()
        return delay * (1 + jitter * self.rng())


def _positive_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)
