"""Units of the client that need no server: callbacks, members, authorizers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clarion.client import (
    AuthError,
    BadChannelName,
    BadEventName,
    ChannelAuthorizationRequest,
    Client,
    Member,
    Members,
    Metadata,
)
from clarion.client.auth import EndpointAuthorizer, run_authorizer
from clarion.client.events import EventEmitter


def test_emitter_passes_accepted_arguments() -> None:
    """Callbacks get as many of (data, metadata) as they take."""
    emitter = EventEmitter()
    calls: list[tuple[Any, ...]] = []
    emitter.bind("e", lambda: calls.append(()))
    emitter.bind("e", lambda data: calls.append((data,)))
    emitter.bind("e", lambda data, metadata: calls.append((data, metadata)))
    emitter.bind("e", lambda *args: calls.append(args))
    emitter.emit("e", 1, Metadata(user_id="u"))
    assert calls == [
        (),
        (1,),
        (1, {"user_id": "u"}),
        (1, {"user_id": "u"}),
    ]


def test_emitter_global_callbacks_first() -> None:
    """Global callbacks get (event_name, data) before the event's callbacks."""
    emitter = EventEmitter()
    order: list[str] = []
    emitter.bind("e", lambda data: order.append(f"bound {data}"))
    emitter.bind_global(lambda name, data: order.append(f"global {name} {data}"))
    emitter.emit("e", 2)
    assert order == ["global e 2", "bound 2"]


def test_emitter_unbind_variants() -> None:
    """unbind removes by event, by callback or everything."""
    emitter = EventEmitter()
    calls: list[str] = []

    def first(data: Any) -> None:
        calls.append("first")

    def second(data: Any) -> None:
        calls.append("second")

    emitter.bind("a", first).bind("a", second).bind("b", first)
    emitter.unbind(callback=first)
    emitter.emit("a")
    emitter.emit("b")
    assert calls == ["second"]
    emitter.unbind("a")
    emitter.emit("a")
    assert calls == ["second"]


def test_emitter_survives_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises is logged and the next callback still runs."""
    emitter = EventEmitter()
    calls: list[Any] = []

    def broken(data: Any) -> None:
        raise RuntimeError("callback bug")

    emitter.bind("e", broken)
    emitter.bind("e", calls.append)
    emitter.emit("e", 3)
    assert calls == [3]
    assert "callback bug" in caplog.text


async def test_emitter_runs_coroutine_callbacks() -> None:
    """A coroutine function bound as a callback runs as a task."""
    emitter = EventEmitter()
    done = asyncio.Event()

    async def on_event(data: Any) -> None:
        done.set()

    emitter.bind("e", on_event)
    emitter.emit("e", 1)
    await asyncio.wait_for(done.wait(), 1)
    assert done.is_set()


def test_members_roster_operations() -> None:
    """Members follows pusher-js: me, count, add, remove and unknown removals."""
    members = Members()
    members.set_my_id(2)
    members.on_subscription(
        {
            "presence": {
                "ids": ["1", "2"],
                "hash": {"1": {"n": 1}, "2": None},
                "count": 2,
            }
        }
    )
    assert members.me == Member("2", None)
    assert members.count == 2
    assert members.add_member({"user_id": "3", "user_info": {}}) == Member("3", {})
    assert members.add_member({"user_id": "3", "user_info": {"x": 1}}) == Member(
        "3", {"x": 1}
    )
    assert members.count == 3
    assert members.remove_member({"user_id": "9"}) is None
    assert members.remove_member({"user_id": "1"}) == Member("1", {"n": 1})
    assert [member.id for member in members] == ["2", "3"]
    assert len(members) == 2
    assert "3" in members


def test_members_reset_clears_me() -> None:
    """reset() empties the roster, as a lost connection does."""
    members = Members()
    members.set_my_id("1")
    members.on_subscription({"presence": {"hash": {"1": None}, "count": 1}})
    members.reset()
    assert members.me is None
    assert members.count == 0


def test_subscribe_rejects_reserved_names() -> None:
    """Names starting with # or empty names raise BadChannelName."""
    client = Client("app-key")
    with pytest.raises(BadChannelName):
        client.subscribe("#server-to-user-1")
    with pytest.raises(BadChannelName):
        client.subscribe("")


def test_subscribe_before_connect_only_records() -> None:
    """subscribe() while not connected keeps the channel without sending."""
    client = Client("app-key")
    channel = client.subscribe("private-later")
    assert client.channel("private-later") is channel
    assert channel.subscription_pending is False
    assert client.all_channels() == [channel]


def test_trigger_requires_client_prefix() -> None:
    """trigger() raises BadEventName unless the name starts with client-."""
    client = Client("app-key")
    channel = client.subscribe("private-x")
    with pytest.raises(BadEventName):
        channel.trigger("typing", {})
    assert channel.trigger("client-typing", {}) is False


def test_client_rejects_empty_key() -> None:
    """An empty app key raises ValueError naming the key."""
    with pytest.raises(ValueError, match="key"):
        Client("")


async def test_run_authorizer_checks_result() -> None:
    """A result without a string auth raises AuthError naming the result."""
    request = ChannelAuthorizationRequest("1.2", "private-a")
    with pytest.raises(AuthError, match="auth"):
        await run_authorizer(lambda r: {"token": "x"}, request, 1.0)


async def test_run_authorizer_awaits_coroutines() -> None:
    """An async authorizer is awaited on the event loop."""

    async def authorize(request: ChannelAuthorizationRequest) -> dict[str, str]:
        return {"auth": f"k:{request.socket_id}"}

    request = ChannelAuthorizationRequest("1.2", "private-a")
    assert await run_authorizer(authorize, request, 1.0) == {"auth": "k:1.2"}


async def test_run_authorizer_times_out() -> None:
    """A slow authorizer fails with AuthError after the timeout."""

    async def authorize(request: ChannelAuthorizationRequest) -> dict[str, str]:
        await asyncio.sleep(10)
        return {"auth": ""}

    request = ChannelAuthorizationRequest("1.2", "private-a")
    with pytest.raises(AuthError, match="timed out"):
        await run_authorizer(authorize, request, 0.05)


async def test_missing_authorizer_names_option() -> None:
    """Without a channel authorizer, the error names the option to set."""
    request = ChannelAuthorizationRequest("1.2", "private-a")
    with pytest.raises(AuthError, match="channel_authorizer"):
        await run_authorizer(None, request, 1.0)


async def test_endpoint_authorizer_unreachable() -> None:
    """An endpoint that refuses connections raises AuthError with no status."""
    authorizer = EndpointAuthorizer("http://127.0.0.1:1/auth", timeout=1.0)
    with pytest.raises(AuthError) as raised:
        await authorizer(ChannelAuthorizationRequest("1.2", "private-a"))
    assert raised.value.status is None
