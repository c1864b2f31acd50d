"""Property-based tests of the client state machine over every (state, input) pair.

Each pair is checked against a reference table of the next state taken from
pusher-js 8.6.0's ConnectionManager, and random input sequences are checked
against invariants that must hold after every step.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from client_state_driver import Driver, established, pusher_error
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from clarion.protocol.client_state import ConnectionState, StateChange, TimerKind

CLOSE_CODES = [
    1000,
    1001,
    1002,
    1005,
    1006,
    1011,
    4000,
    4001,
    4009,
    4100,
    4200,
    4201,
    4301,
    4302,
]
HANDSHAKE_ERROR_CODES = [None, 4000, 4001, 4004, 4100, 4200, 4301]


# -- Setups: a driver brought into each state ---------------------------------------


def setup_initialized() -> Driver:
    return Driver.create()


def setup_connecting() -> Driver:
    driver = Driver.create()
    driver.connect()
    return driver


def setup_handshake() -> Driver:
    driver = setup_connecting()
    driver.machine.socket_opened(driver.socket)
    driver.run()
    return driver


def setup_unavailable() -> Driver:
    driver = setup_connecting()
    driver.advance(2)
    return driver


def setup_connected() -> Driver:
    driver = Driver.create()
    driver.connected()
    return driver


def setup_connected_retrying() -> Driver:
    driver = setup_connected()
    driver.close(1006, was_clean=False)
    return driver


def setup_disconnected() -> Driver:
    driver = setup_connected()
    driver.disconnect()
    return driver


def setup_failed() -> Driver:
    driver = Driver.create(supported=False)
    driver.connect()
    return driver


SETUPS: dict[str, Callable[[], Driver]] = {
    "initialized": setup_initialized,
    "connecting": setup_connecting,
    "handshake": setup_handshake,
    "unavailable": setup_unavailable,
    "connected": setup_connected,
    "connected_retrying": setup_connected_retrying,
    "disconnected": setup_disconnected,
    "failed": setup_failed,
}


# -- Inputs -----------------------------------------------------------------------


def fire_timer(driver: Driver, kind: TimerKind) -> None:
    for timer, (_, live_kind) in list(driver.timers.items()):
        if live_kind is kind:
            del driver.timers[timer]
            driver.machine.timer_expired(timer)
            driver.run()
            return


def feed(driver: Driver, name: str, code: int | None = None) -> None:
    """Apply one input, named as in the reference table."""
    machine = driver.machine
    if name == "connect":
        driver.connect()
    elif name == "disconnect":
        driver.disconnect()
    elif name == "opened":
        machine.socket_opened(driver.socket)
        driver.run()
    elif name == "failed":
        driver.fail()
    elif name == "established":
        driver.receive(established())
    elif name == "handshake_error":
        driver.receive(pusher_error(code))
    elif name == "close":
        driver.close(code, "reason", was_clean=code != 1006)
    elif name == "socket_error":
        machine.socket_error(driver.socket, "boom")
        driver.run()
    elif name == "message":
        driver.receive('{"event":"ev","channel":"c","data":"{}"}')
    elif name == "garbage":
        driver.receive("not json")
    elif name == "ping":
        driver.receive('{"event":"pusher:ping","data":{}}')
    elif name == "error_frame":
        driver.receive(pusher_error(4301))
    else:
        fire_timer(driver, TimerKind(name.removeprefix("timer_")))


INPUTS: list[tuple[str, int | None]] = [
    ("connect", None),
    ("disconnect", None),
    ("opened", None),
    ("failed", None),
    ("established", None),
    *[("handshake_error", code) for code in HANDSHAKE_ERROR_CODES],
    *[("close", code) for code in CLOSE_CODES],
    ("socket_error", None),
    ("message", None),
    ("garbage", None),
    ("ping", None),
    ("error_frame", None),
    *[(f"timer_{kind.value}", None) for kind in TimerKind],
]


def refuses(code: int | None) -> bool:
    return code is not None and (4001 <= code <= 4099 or code >= 4300)


def expected_state(setup: str, before: str, name: str, code: int | None) -> str:
    """The state right after the input, per pusher-js's ConnectionManager."""
    if name == "disconnect":
        return "disconnected"
    if name == "connect":
        if setup == "failed":
            return "failed"
        # pusher-js connects whenever it has neither a connection nor a
        # running attempt, which includes a lost connection awaiting its retry.
        if before in ("initialized", "disconnected") or setup == "connected_retrying":
            return "connecting"
        return before
    if setup == "handshake":
        if name == "established":
            return "connected"
        if name in ("handshake_error", "close") and refuses(code):
            return "disconnected"
        if name == "error_frame":  # a pusher:error with code 4301
            return "disconnected"
        if name == "timer_unavailable":
            return "unavailable"
        return before
    if setup == "connected" and name == "close" and refuses(code):
        return "disconnected"
    if setup == "connected_retrying" and name == "timer_retry":
        return "connecting"
    if setup == "connecting" and name == "timer_unavailable":
        return "unavailable"
    return before


# -- Invariants ---------------------------------------------------------------------


def check_invariants(driver: Driver) -> None:
    machine = driver.machine
    changes = driver.named("state_change")
    previous = "initialized"
    for change in changes:
        assert isinstance(change, StateChange)
        assert change.previous == previous, "state_change chain is broken"
        assert change.previous != change.current, "state_change without a change"
        assert change.current != "initialized", "initialized was re-entered"
        previous = change.current
    assert machine.state.value == previous, "state differs from the last change"

    names = driver.event_names()
    for index, name in enumerate(names):
        if name == "state_change":
            current = driver.events[index][2].current
            assert names[index + 1] == current, "state event does not follow"

    kinds = [kind for _, kind in driver.timers.values()]
    assert kinds.count(TimerKind.UNAVAILABLE) <= 1, "two unavailable timers"
    assert kinds.count(TimerKind.ATTEMPT) <= 1, "two attempt timers"
    activity = kinds.count(TimerKind.ACTIVITY) + kinds.count(TimerKind.PONG)
    assert activity <= 1, "activity and pong timers together"
    if activity:
        assert machine.connection_socket is not None, "activity timer without socket"
    if machine.connection_socket is not None:
        assert machine.state is ConnectionState.CONNECTED, "socket while not connected"
        assert machine.socket_id is not None, "connected without a socket id"
    if machine.state is ConnectionState.CONNECTED and machine.connection_socket is None:
        assert TimerKind.RETRY in kinds, "connection lost and no retry pending"
    if machine.state in (ConnectionState.DISCONNECTED, ConnectionState.FAILED):
        assert driver.timers == {}, "timers left running while stopped"
    if machine.state is ConnectionState.DISCONNECTED:
        assert machine.connection_socket is None, "disconnected with a connection"


# -- Every (state, input) pair --------------------------------------------------------


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize(
    ("name", "code"),
    INPUTS,
    ids=[f"{name}-{code}" if code is not None else name for name, code in INPUTS],
)
def test_every_state_input_pair(setup: str, name: str, code: int | None) -> None:
    """Each input in each state gives the reference next state and keeps invariants."""
    driver = SETUPS[setup]()
    before = driver.machine.state.value
    feed(driver, name, code)
    assert driver.machine.state.value == expected_state(setup, before, name, code)
    check_invariants(driver)


@given(
    setup=st.sampled_from(list(SETUPS)),
    steps=st.lists(st.sampled_from(INPUTS), max_size=8),
    delay=st.floats(min_value=0, max_value=70),
)
@settings(max_examples=300, deadline=None)
def test_input_sequences_keep_invariants(
    setup: str, steps: list[tuple[str, int | None]], delay: float
) -> None:
    """Any input sequence from any state keeps the invariants, time included."""
    driver = SETUPS[setup]()
    for name, code in steps:
        feed(driver, name, code)
        check_invariants(driver)
    driver.advance(delay)
    check_invariants(driver)


@given(steps=st.lists(st.sampled_from(INPUTS), max_size=10))
@settings(max_examples=200, deadline=None)
def test_disconnect_always_settles(steps: list[tuple[str, int | None]]) -> None:
    """After any inputs, disconnect() leaves no timer, socket or later change."""
    driver = setup_connecting()
    for name, code in steps:
        feed(driver, name, code)
    driver.disconnect()
    changes = len(driver.named("state_change"))
    opened = len(driver.opened)
    driver.advance(500)
    assert driver.machine.state is ConnectionState.DISCONNECTED
    assert driver.timers == {}
    assert len(driver.named("state_change")) == changes
    assert len(driver.opened) == opened


@given(
    code=st.one_of(st.sampled_from(CLOSE_CODES), st.integers(1000, 4999)),
    activity_timeout=st.integers(1, 300),
)
@settings(max_examples=200, deadline=None)
def test_recoverable_close_reconnects(code: int, activity_timeout: int) -> None:
    """Every close that is not a refusal leads to a new connection."""
    driver = setup_connected()
    driver.close(code)
    driver.advance(1)
    if refuses(code):
        assert driver.machine.state is ConnectionState.DISCONNECTED
        return
    assert driver.machine.state is ConnectionState.CONNECTING
    driver.open_and_establish(activity_timeout=activity_timeout)
    assert driver.machine.state is ConnectionState.CONNECTED
    assert driver.machine.activity_timeout == min(3.0, activity_timeout)


class RandomSession(RuleBasedStateMachine):
    """Random inputs and clock moves, with the invariants checked after each."""

    def __init__(self) -> None:
        super().__init__()
        self.driver = Driver.create()

    @rule(step=st.sampled_from(INPUTS))
    def apply_input(self, step: tuple[str, int | None]) -> None:
        feed(self.driver, *step)

    @rule(seconds=st.floats(min_value=0, max_value=40))
    def advance(self, seconds: float) -> None:
        self.driver.advance(seconds)

    @rule(code=st.integers(0, 5000))
    def close_with_any_code(self, code: int) -> None:
        self.driver.close(code or None)

    @rule(text=st.text(max_size=40))
    def receive_any_text(self, text: str) -> None:
        self.driver.receive(text)

    @rule(socket_id=st.from_regex(r"\d{1,5}\.\d{1,5}", fullmatch=True))
    def establish_with_id(self, socket_id: str) -> None:
        self.driver.receive(
            json.dumps(
                {
                    "event": "pusher:connection_established",
                    "data": json.dumps({"socket_id": socket_id, "activity_timeout": 5}),
                }
            )
        )

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.driver)


RandomSession.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
test_random_session = RandomSession.TestCase
