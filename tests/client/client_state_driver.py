"""Run a ConnectionStateMachine on a simulated clock and record its effects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from clarion.protocol.client_state import (
    CancelTimer,
    CloseSocket,
    ConnectionStateMachine,
    EmitEvent,
    OpenSocket,
    SendText,
    StartTimer,
    StateChange,
    TimerKind,
    Timing,
)

FAST_TIMING = Timing(
    activity_timeout=3.0,
    pong_timeout=1.0,
    unavailable_timeout=2.0,
    attempt_timeout=15.0,
    max_attempt_timeout=60.0,
    retry_delay=1.0,
)

NO_SOCKET = -1

# Bound on timer firings per advance(), so a machine bug cannot spin forever.
MAX_FIRINGS = 10_000


def established(socket_id: str = "1.1", activity_timeout: Any = 120) -> str:
    data = json.dumps({"socket_id": socket_id, "activity_timeout": activity_timeout})
    return json.dumps({"event": "pusher:connection_established", "data": data})


def pusher_error(code: int | None, message: str = "refused") -> str:
    return json.dumps(
        {"event": "pusher:error", "data": {"code": code, "message": message}}
    )


@dataclass
class Driver:
    """Executes a machine's effects against a fake clock and fake sockets."""

    machine: ConnectionStateMachine
    now: float = 0.0
    timers: dict[int, tuple[float, TimerKind]] = field(default_factory=dict)
    opened: list[tuple[float, int, str]] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    sent: list[tuple[int, str]] = field(default_factory=list)
    events: list[tuple[float, str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, timing: Timing = FAST_TIMING, **options: Any) -> Driver:
        machine = ConnectionStateMachine(
            host="127.0.0.1", port=6001, key="app-key", timing=timing, **options
        )
        return cls(machine)

    # -- Running effects ------------------------------------------------------

    def run(self) -> None:
        for effect in self.machine.effects_to_run():
            if isinstance(effect, StartTimer):
                if self.machine.is_live_timer(effect.timer):
                    deadline = self.now + effect.delay
                    self.timers[effect.timer] = (deadline, effect.kind)
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer, None)
            elif isinstance(effect, OpenSocket):
                self.opened.append((self.now, effect.socket, effect.url))
            elif isinstance(effect, CloseSocket):
                self.closed.append(effect.socket)
            elif isinstance(effect, SendText):
                self.sent.append((effect.socket, effect.text))
            elif isinstance(effect, EmitEvent):
                self.events.append((self.now, effect.name, effect.data))

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing due timers in deadline order."""
        end = self.now + seconds
        for _ in range(MAX_FIRINGS):
            due = [(deadline, t) for t, (deadline, _) in self.timers.items()]
            due = [item for item in due if item[0] <= end]
            if not due:
                break
            deadline, timer = min(due)
            del self.timers[timer]
            self.now = deadline
            self.machine.timer_expired(timer)
            self.run()
        else:
            raise AssertionError("timers kept firing without the clock moving")
        self.now = end

    # -- Inputs ---------------------------------------------------------------

    def connect(self) -> None:
        self.machine.connect()
        self.run()

    def disconnect(self) -> None:
        self.machine.disconnect()
        self.run()

    @property
    def socket(self) -> int:
        """The socket of the latest OpenSocket effect, or an id never issued."""
        return self.opened[-1][1] if self.opened else NO_SOCKET

    def open_and_establish(self, **fields: Any) -> int:
        socket = self.socket
        self.machine.socket_opened(socket)
        self.run()
        self.machine.text_received(socket, established(**fields))
        self.run()
        return socket

    def connected(self, **fields: Any) -> int:
        """Connect from scratch and complete the handshake."""
        self.connect()
        return self.open_and_establish(**fields)

    def receive(self, text: str, socket: int | None = None) -> None:
        self.machine.text_received(self.socket if socket is None else socket, text)
        self.run()

    def close(
        self,
        code: int | None,
        reason: str = "",
        *,
        socket: int | None = None,
        was_clean: bool = True,
        lifetime: float | None = 1.0,
    ) -> None:
        socket = self.socket if socket is None else socket
        self.machine.socket_closed(
            socket, code, reason, was_clean=was_clean, lifetime=lifetime
        )
        self.run()

    def fail(self, socket: int | None = None) -> None:
        self.machine.socket_failed(self.socket if socket is None else socket)
        self.run()

    # -- Reading the record ---------------------------------------------------

    def state_changes(self) -> list[tuple[str, str]]:
        return [
            (data.previous, data.current)
            for _, name, data in self.events
            if name == "state_change"
        ]

    def states(self) -> list[str]:
        return [current for _, current in self.state_changes()]

    def named(self, name: str) -> list[Any]:
        return [data for _, event, data in self.events if event == name]

    def event_names(self) -> list[str]:
        return [name for _, name, _ in self.events]

    def live_kinds(self) -> list[TimerKind]:
        return sorted((kind for _, kind in self.timers.values()), key=str)

    def state_change_times(self) -> list[tuple[float, str]]:
        return [
            (time, data.current)
            for time, name, data in self.events
            if name == "state_change" and isinstance(data, StateChange)
        ]
