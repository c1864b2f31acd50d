"""The blocking facade: the asyncio client on a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pusher

from clarion.client import BlockingClient
from server_process import ServerProcess

WAIT_TIMEOUT = 5.0


def wait_for(predicate: Callable[[], object], timeout: float = WAIT_TIMEOUT) -> None:
    """Poll ``predicate`` every 10 ms until it is true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_blocking_client_receives_event(
    clarion: ServerProcess, sdk: pusher.Pusher
) -> None:
    """Without asyncio, a script connects, subscribes and gets an SDK event."""
    received: list[Any] = []
    arrived = threading.Event()

    def on_event(data: Any) -> None:
        received.append(data)
        arrived.set()

    with BlockingClient("app-key", host=clarion.host, port=clarion.port) as client:
        client.connect()
        assert client.wait_for_state("connected", WAIT_TIMEOUT)
        channel = client.subscribe("blocking")
        channel.bind("news", on_event)
        wait_for(lambda: channel.subscribed)
        sdk.trigger("blocking", "news", {"n": 1})
        assert arrived.wait(WAIT_TIMEOUT)
    assert received == [{"n": 1}]
    assert client.connection.state == "disconnected"


def test_blocking_client_presence_and_trigger(
    clarion: ServerProcess, sdk: pusher.Pusher
) -> None:
    """Presence members and client events work through the facade."""

    def authorizer(user_id: str) -> Callable[[Any], dict[str, Any]]:
        def authorize(request: Any) -> dict[str, Any]:
            return sdk.authenticate(
                request.channel_name, request.socket_id, {"user_id": user_id}
            )

        return authorize

    options = {"host": clarion.host, "port": clarion.port}
    with (
        BlockingClient("app-key", channel_authorizer=authorizer("a"), **options) as a,
        BlockingClient("app-key", channel_authorizer=authorizer("b"), **options) as b,
    ):
        a.connect()
        b.connect()
        room_a = a.subscribe("presence-blocking")
        room_b = b.subscribe("presence-blocking")
        wait_for(lambda: room_a.subscribed and room_b.subscribed)
        wait_for(lambda: room_a.members.count == 2)
        roster = sorted(member.id for member in room_a.members)
        received: list[tuple[Any, Any]] = []
        room_b.bind(
            "client-hello", lambda data, metadata: received.append((data, metadata))
        )
        assert room_a.trigger("client-hello", {"x": 1}) is True
        wait_for(lambda: received)
    assert received == [({"x": 1}, {"user_id": "a"})]
    assert roster == ["a", "b"]


def test_blocking_client_close_stops_thread(clarion: ServerProcess) -> None:
    """close() stops the background thread; a second close() does nothing."""
    client = BlockingClient("app-key", host=clarion.host, port=clarion.port)
    client.connect()
    assert client.wait_for_state("connected", WAIT_TIMEOUT)
    client.close()
    client.close()
    names = [thread.name for thread in threading.enumerate()]
    assert "clarion-client" not in names
