"""The client connection state machine against pusher-js 8.6.0's behaviour.

Times below are on the driver's simulated clock, with activity 3 s, pong 1 s,
unavailable 2 s, attempts from 15 s, and a 1 s retry delay.
"""

from __future__ import annotations

import json

import pytest
from client_state_driver import FAST_TIMING, Driver, pusher_error

from clarion.protocol.client_state import (
    CloseAction,
    ServerMessage,
    StateChange,
    TimerKind,
    Timing,
    attempt_timeouts,
    build_url,
    close_action,
    close_error,
    parse_server_message,
)

# -- Pure helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (None, None),
        (1000, None),
        (1001, None),
        (1002, CloseAction.BACKOFF),
        (1003, CloseAction.BACKOFF),
        (1004, CloseAction.BACKOFF),
        (1005, None),
        (1006, None),
        (3999, None),
        (4000, CloseAction.TLS_ONLY),
        (4001, CloseAction.REFUSED),
        (4099, CloseAction.REFUSED),
        (4100, CloseAction.BACKOFF),
        (4199, CloseAction.BACKOFF),
        (4200, CloseAction.RETRY),
        (4299, CloseAction.RETRY),
        (4300, CloseAction.REFUSED),
        (4301, CloseAction.REFUSED),
        (4999, CloseAction.REFUSED),
    ],
)
def test_close_action_maps_code_ranges(code: int | None, action: CloseAction) -> None:
    """Each close code maps to pusher-js's action for its range."""
    assert close_action(code) is action


def test_close_error_skips_normal_closes() -> None:
    """Codes 1000 and 1001 produce no error; others a PusherError payload."""
    assert close_error(1000, "bye") is None
    assert close_error(1001, "bye") is None
    assert close_error(4001, "no app") == {
        "type": "PusherError",
        "data": {"code": 4001, "message": "no app"},
    }


def test_attempt_timeouts_double_to_cap() -> None:
    """Attempt time limits run 15, 30, 60, 60 seconds."""
    timeouts = attempt_timeouts(15.0, 60.0)
    assert [next(timeouts) for _ in range(5)] == [15.0, 30.0, 60.0, 60.0, 60.0]


def test_build_url_names_key_and_protocol() -> None:
    """The URL has the app path and protocol 7, with brackets for IPv6."""
    assert build_url("127.0.0.1", 6001, "app-key", tls=False) == (
        "ws://127.0.0.1:6001/app/app-key?protocol=7&client=clarion-python&flash=false"
    )
    assert build_url("::1", 443, "k", tls=True, path="/ws").startswith(
        "wss://[::1]:443/ws/app/k?"
    )


def test_parse_server_message_decodes_data_twice() -> None:
    """A data string holding JSON is decoded; any other string is kept."""
    nested = parse_server_message('{"event":"e","channel":"c","data":"{\\"a\\":1}"}')
    plain = parse_server_message('{"event":"e","data":"not json"}')
    assert nested == ServerMessage("e", "c", {"a": 1})
    assert plain.data == "not json"


def test_parse_server_message_keeps_user_id() -> None:
    """A presence client event's user_id is kept as a string."""
    message = parse_server_message('{"event":"client-x","data":"{}","user_id":"42"}')
    assert message.user_id == "42"


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"event":1}', "{" * 5000])
def test_parse_server_message_rejects_bad_frames(text: str) -> None:
    """Frames that are not objects with a string event raise ValueError."""
    with pytest.raises(ValueError):
        parse_server_message(text)


@pytest.mark.parametrize(
    "options",
    [{"activity_timeout": 0}, {"pong_timeout": -1}, {"jitter": 1.5}],
)
def test_timing_rejects_invalid_values(options: dict[str, float]) -> None:
    """Non-positive timeouts and jitter outside 0..1 raise ValueError."""
    with pytest.raises(ValueError):
        Timing(**options)


# -- Connect and disconnect -------------------------------------------------------


def test_connect_then_disconnect_sequence() -> None:
    """A normal session goes connecting, connected, disconnected."""
    driver = Driver.create()
    driver.connected(socket_id="7.8")
    driver.disconnect()
    assert driver.state_changes() == [
        ("initialized", "connecting"),
        ("connecting", "connected"),
        ("connected", "disconnected"),
    ]
    assert driver.named("connected") == [{"socket_id": "7.8"}]
    assert driver.machine.socket_id == "7.8"
    assert driver.timers == {}


def test_state_change_precedes_state_event() -> None:
    """Each state_change is followed by the event named after the new state."""
    driver = Driver.create()
    driver.connected()
    names = driver.event_names()
    assert names[:4] == ["state_change", "connecting", "state_change", "connected"]


def test_connect_when_connected_does_nothing() -> None:
    """connect() while connected or connecting opens no second socket."""
    driver = Driver.create()
    driver.connect()
    driver.connect()
    driver.open_and_establish()
    driver.connect()
    assert len(driver.opened) == 1


def test_disconnect_before_connect_emits_change() -> None:
    """disconnect() from initialized enters disconnected, as pusher-js does."""
    driver = Driver.create()
    driver.disconnect()
    assert driver.state_changes() == [("initialized", "disconnected")]


def test_unsupported_transport_fails() -> None:
    """With no usable transport, connect() ends in failed."""
    driver = Driver.create(supported=False)
    driver.connect()
    assert driver.states() == ["failed"]
    assert driver.opened == []


# -- Close codes on an open connection ---------------------------------------------


@pytest.mark.parametrize("code", [4001, 4009, 4099, 4301])
def test_refusing_close_disconnects(code: int) -> None:
    """4001-4099 and 4300+ closes end in disconnected with no retry."""
    driver = Driver.create()
    driver.connected()
    driver.close(code, "go away")
    driver.advance(100)
    assert driver.states() == ["connecting", "connected", "disconnected"]
    assert len(driver.opened) == 1


def test_refusing_close_reports_two_errors() -> None:
    """A 4xxx close emits a PusherError, then its WebSocketError wrapper."""
    driver = Driver.create()
    driver.connected()
    driver.close(4001, "no app")
    pusher_error_payload = {
        "type": "PusherError",
        "data": {"code": 4001, "message": "no app"},
    }
    assert driver.named("error") == [
        pusher_error_payload,
        {"type": "WebSocketError", "error": pusher_error_payload},
    ]


def test_backoff_close_waits_retry_delay() -> None:
    """A 4100 close stays connected for 1 s, then reconnects."""
    driver = Driver.create()
    first = driver.connected()
    driver.close(4100, "over capacity")
    driver.advance(0.99)
    assert driver.machine.state == "connected"
    driver.advance(0.02)
    assert driver.machine.state == "connecting"
    assert driver.socket != first
    driver.open_and_establish()
    assert driver.states() == ["connecting", "connected", "connecting", "connected"]


def test_backoff_close_emits_connecting_in_twice() -> None:
    """A 4100-4199 close schedules two 1 s retries; one reconnect happens."""
    driver = Driver.create()
    driver.connected()
    driver.close(4100)
    driver.advance(5)
    assert driver.named("connecting_in") == [1, 1]
    assert len(driver.opened) == 2


def test_retry_close_reconnects_at_once() -> None:
    """A 4200 close enters connecting at once and emits connecting_in once."""
    driver = Driver.create()
    driver.connected()
    driver.close(4200, "restart")
    driver.advance(0)
    assert driver.machine.state == "connecting"
    assert driver.named("connecting_in") == [1]
    driver.advance(5)
    assert len(driver.opened) == 2


def test_tls_only_close_switches_scheme() -> None:
    """A 4000 close reconnects at once with wss."""
    driver = Driver.create()
    driver.connected()
    driver.close(4000, "TLS only")
    driver.advance(0)
    assert driver.opened[-1][2].startswith("wss://")
    assert driver.machine.state == "connecting"


@pytest.mark.parametrize("code", [1000, 1001, 1005])
def test_normal_close_retries_silently(code: int) -> None:
    """Closes below 4000 reconnect after 1 s; 1000 and 1001 emit no error."""
    driver = Driver.create()
    driver.connected()
    driver.close(code)
    driver.advance(1)
    assert driver.machine.state == "connecting"
    assert driver.named("connecting_in") == [1]
    assert len(driver.named("error")) == (0 if code in (1000, 1001) else 1)


def test_tcp_drop_reports_code_1006() -> None:
    """A drop without a close frame emits one PusherError 1006 and retries."""
    driver = Driver.create()
    driver.connected()
    driver.close(1006, was_clean=False)
    driver.advance(1)
    assert driver.named("error") == [
        {"type": "PusherError", "data": {"code": 1006, "message": ""}}
    ]
    assert driver.states()[-1] == "connecting"


def test_close_after_disconnect_is_ignored() -> None:
    """A close reported for a socket the client closed changes nothing."""
    driver = Driver.create()
    socket = driver.connected()
    driver.disconnect()
    driver.close(4100, socket=socket)
    driver.advance(10)
    assert driver.states() == ["connecting", "connected", "disconnected"]


def test_disconnect_cancels_pending_retries() -> None:
    """disconnect() right after a 4100 close keeps the client disconnected."""
    driver = Driver.create()
    driver.connected()
    driver.close(4100)
    driver.disconnect()
    driver.advance(10)
    assert driver.machine.state == "disconnected"
    assert len(driver.opened) == 1


# -- Liveness ---------------------------------------------------------------------


def test_silence_pings_then_reconnects() -> None:
    """Silence sends a ping after 3 s and reconnects 1 s later."""
    driver = Driver.create()
    socket = driver.connected(activity_timeout=120)
    driver.advance(3)
    assert driver.sent == [(socket, '{"event":"pusher:ping","data":{}}')]
    assert driver.machine.state == "connected"
    driver.advance(1)
    assert driver.machine.state == "connecting"
    assert driver.named("connecting_in") == []


def test_received_frame_postpones_ping() -> None:
    """Any received frame restarts the activity timer."""
    driver = Driver.create()
    driver.connected()
    driver.advance(2.5)
    driver.receive('{"event":"x","channel":"c","data":"{}"}')
    driver.advance(2.5)
    assert driver.sent == []


def test_pong_reply_keeps_connection() -> None:
    """A pong within the pong timeout keeps the connection."""
    driver = Driver.create()
    driver.connected()
    driver.advance(3)
    driver.receive('{"event":"pusher:pong","data":{}}')
    driver.advance(2)
    assert driver.states() == ["connecting", "connected"]


def test_server_activity_timeout_lowers_timer() -> None:
    """The smaller of the option and the server's activity_timeout applies."""
    driver = Driver.create()
    driver.connected(activity_timeout=1)
    assert driver.machine.activity_timeout == 1.0


def test_server_ping_gets_pong() -> None:
    """A pusher:ping from the server gets a pusher:pong reply."""
    driver = Driver.create()
    socket = driver.connected()
    driver.receive('{"event":"pusher:ping","data":{}}')
    assert driver.sent == [(socket, '{"event":"pusher:pong","data":{}}')]


def test_short_unclean_life_shortens_ping() -> None:
    """An unclean close soon after opening halves the next ping delay."""
    timing = Timing(activity_timeout=120.0)
    driver = Driver.create(timing)
    driver.connected()
    driver.close(1006, was_clean=False, lifetime=50.0)
    driver.advance(1)
    driver.open_and_establish()
    assert driver.machine.activity_timeout == 25.0


def test_learned_ping_delay_has_floor() -> None:
    """The learned ping delay never drops below 10 s."""
    timing = Timing(activity_timeout=120.0)
    driver = Driver.create(timing)
    driver.connected()
    driver.close(1006, was_clean=False, lifetime=4.0)
    driver.advance(1)
    driver.open_and_establish()
    assert driver.machine.activity_timeout == 10.0


# -- Errors on an open connection -------------------------------------------------


def test_error_frame_keeps_state() -> None:
    """A pusher:error frame is emitted as an error and changes no state."""
    driver = Driver.create()
    driver.connected()
    driver.receive(pusher_error(4301, "rate limit"))
    assert driver.named("error") == [
        {"type": "PusherError", "data": {"code": 4301, "message": "rate limit"}}
    ]
    assert driver.states() == ["connecting", "connected"]


def test_garbage_frame_reports_parse_error() -> None:
    """An undecodable frame emits MessageParseError and no message."""
    driver = Driver.create()
    driver.connected()
    driver.receive("not json")
    assert [error["type"] for error in driver.named("error")] == ["MessageParseError"]
    assert driver.named("message") == []


def test_frames_emitted_as_messages() -> None:
    """Every decoded frame is emitted as a message."""
    driver = Driver.create()
    driver.connected()
    driver.receive('{"event":"ev","channel":"c","data":"{\\"a\\":1}"}')
    assert driver.named("message") == [ServerMessage("ev", "c", {"a": 1})]


def test_send_event_needs_connection() -> None:
    """send_event() returns False unless a connection is established."""
    driver = Driver.create()
    assert driver.machine.send_event("client-a", {}, "private-c") is False
    socket = driver.connected()
    assert driver.machine.send_event("client-a", {"x": 1}, "private-c") is True
    driver.run()
    assert json.loads(driver.sent[-1][1]) == {
        "event": "client-a",
        "data": {"x": 1},
        "channel": "private-c",
    }
    assert driver.sent[-1][0] == socket


# -- Unreachable server and the attempt loop --------------------------------------


def test_unreachable_server_goes_unavailable() -> None:
    """Refused attempts give connecting, then unavailable after 2 s."""
    driver = Driver.create()
    driver.connect()
    driver.fail()
    driver.advance(2)
    assert driver.state_change_times() == [(0.0, "connecting"), (2.0, "unavailable")]


def test_unreachable_attempts_wait_out_timeouts() -> None:
    """Attempts start at 0, 15, 45, 105 and 165 s while the server is down."""
    driver = Driver.create()
    driver.connect()
    for _ in range(5):
        driver.fail()
        next_deadline = min(
            deadline
            for deadline, kind in driver.timers.values()
            if kind is TimerKind.ATTEMPT
        )
        driver.advance(next_deadline - driver.now)
    assert [time for time, _, _ in driver.opened] == [0, 15, 45, 105, 165, 225]


def test_unavailable_goes_straight_to_connected() -> None:
    """When an attempt finally succeeds, unavailable becomes connected."""
    driver = Driver.create()
    driver.connect()
    driver.fail()
    driver.advance(15)
    driver.open_and_establish()
    assert driver.states() == ["connecting", "unavailable", "connected"]


def test_hung_attempt_replaced_after_timeout() -> None:
    """An attempt that never completes is closed and replaced at 15 s."""
    driver = Driver.create()
    driver.connect()
    first = driver.socket
    driver.advance(15)
    assert first in driver.closed
    assert driver.socket != first


def test_disconnect_from_unavailable() -> None:
    """disconnect() leaves unavailable for disconnected."""
    driver = Driver.create()
    driver.connect()
    driver.advance(3)
    driver.disconnect()
    assert driver.states() == ["connecting", "unavailable", "disconnected"]
    assert driver.timers == {}


# -- Handshake outcomes -------------------------------------------------------------


def test_handshake_backoff_stays_connecting() -> None:
    """Handshakes refused with 4100 keep connecting: each retry rearms the timer."""
    driver = Driver.create(Timing(unavailable_timeout=2.0, retry_delay=1.0))
    driver.connect()
    for _ in range(5):
        driver.machine.socket_opened(driver.socket)
        driver.receive(pusher_error(4100, "over capacity"))
        driver.advance(1)
    assert driver.states() == ["connecting"]
    assert len(driver.opened) == 6


def test_handshake_refusal_disconnects() -> None:
    """A handshake refused with 4001 emits only the WebSocketError form."""
    driver = Driver.create()
    driver.connect()
    driver.machine.socket_opened(driver.socket)
    driver.receive(pusher_error(4001, "App key x does not exist"))
    assert driver.states() == ["connecting", "disconnected"]
    assert driver.named("error") == [
        {
            "type": "WebSocketError",
            "error": {
                "type": "PusherError",
                "data": {"code": 4001, "message": "App key x does not exist"},
            },
        }
    ]
    assert driver.socket in driver.closed


def test_close_before_handshake_backs_off() -> None:
    """A socket closed before connection_established retries after 1 s."""
    driver = Driver.create()
    driver.connect()
    driver.machine.socket_opened(driver.socket)
    driver.close(1006, was_clean=False)
    assert driver.named("connecting_in") == [1]
    driver.advance(1)
    assert len(driver.opened) == 2


@pytest.mark.parametrize(
    "first_frame",
    [
        '{"event":"hello","data":{}}',
        '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.2\\"}"}',
        "garbage",
    ],
)
def test_invalid_handshake_stalls(first_frame: str) -> None:
    """An invalid first frame is an error and, as in pusher-js, no retry follows."""
    driver = Driver.create()
    driver.connect()
    driver.machine.socket_opened(driver.socket)
    driver.receive(first_frame)
    driver.advance(100)
    driver.connect()
    assert [error["type"] for error in driver.named("error")] == ["HandshakeError"]
    assert driver.states() == ["connecting", "unavailable"]
    assert len(driver.opened) == 1


def test_stalled_client_reconnects_after_disconnect() -> None:
    """After an invalid handshake, disconnect() and connect() start over."""
    driver = Driver.create()
    driver.connect()
    driver.machine.socket_opened(driver.socket)
    driver.receive('{"event":"hello"}')
    driver.disconnect()
    driver.connect()
    driver.open_and_establish()
    assert driver.states()[-1] == "connected"


def test_stale_socket_frames_ignored() -> None:
    """Frames from a replaced attempt do not complete the handshake."""
    driver = Driver.create()
    driver.connect()
    first = driver.socket
    driver.advance(15)
    driver.machine.socket_opened(first)
    driver.receive('{"event":"pusher:connection_established","data":"{}"}', first)
    assert driver.states() == ["connecting", "unavailable"]


# -- Jitter -------------------------------------------------------------------------


def test_jitter_stretches_retry_delay() -> None:
    """With jitter 0.5 and a random draw of 1, the 1 s retry takes 1.5 s."""
    timing = Timing(jitter=0.5, retry_delay=1.0)
    driver = Driver.create(timing, rng=lambda: 1.0)
    driver.connected()
    driver.close(1000)
    driver.advance(1.4)
    assert driver.machine.state == "connected"
    driver.advance(0.2)
    assert driver.machine.state == "connecting"
    assert driver.named("connecting_in") == [1]


def test_jitter_delays_immediate_retry() -> None:
    """With jitter, a 4200 close waits up to jitter times the retry delay."""
    timing = Timing(jitter=0.5, retry_delay=1.0)
    driver = Driver.create(timing, rng=lambda: 0.5)
    driver.connected()
    driver.close(4200)
    driver.advance(0.2)
    assert driver.machine.state == "connected"
    driver.advance(0.1)
    assert driver.machine.state == "connecting"


def test_zero_jitter_keeps_exact_timing() -> None:
    """Without jitter the random source is never used."""

    def no_random() -> float:
        raise AssertionError("random source used without jitter")

    driver = Driver.create(FAST_TIMING, rng=no_random)
    driver.connected()
    driver.close(1000)
    driver.advance(20)
    assert driver.states() == ["connecting", "connected", "connecting", "unavailable"]


def test_state_change_payload_type() -> None:
    """state_change carries a StateChange with previous and current."""
    driver = Driver.create()
    driver.connect()
    assert driver.named("state_change") == [StateChange("initialized", "connecting")]
