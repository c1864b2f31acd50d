"""The asyncio client against a real Clarion server, with the official Python SDK
triggering events and signing auth."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pusher
import pytest
from client_helpers import Recorder, SdkAuth, TcpProxy, wait_until

from clarion.client import (
    ChannelEvent,
    Client,
    EncryptedChannel,
    Member,
    PresenceChannel,
    StateChange,
    UnsupportedFeature,
    connection as connection_module,
)
from server_process import ServerProcess

MakeClient = Callable[..., tuple[Client, SdkAuth]]


async def connected(make_client: MakeClient, **options: Any) -> tuple[Client, SdkAuth]:
    client, auth = make_client(**options)
    client.connect()
    await wait_until(lambda: client.connection.state == "connected")
    return client, auth


async def subscribed(client: Client, name: str) -> Any:
    channel = client.subscribe(name)
    await wait_until(lambda: channel.subscribed)
    return channel


# -- Connection --------------------------------------------------------------------


async def test_client_connects_and_disconnects(make_client: MakeClient) -> None:
    """connect() and disconnect() give pusher-js's state changes and a socket id."""
    client, _ = make_client()
    changes = Recorder()
    connected_events = Recorder()
    client.connection.bind("state_change", changes)
    client.connection.bind("connected", connected_events)
    client.connect()
    await connected_events.wait_count(1)
    client.disconnect()
    assert changes.values == [
        StateChange("initialized", "connecting"),
        StateChange("connecting", "connected"),
        StateChange("connected", "disconnected"),
    ]
    assert connected_events.values == [{"socket_id": client.connection.socket_id}]
    assert client.connection.socket_id is not None


async def test_client_unknown_key_disconnects(clarion: ServerProcess) -> None:
    """An unknown app key is refused with 4001 and the client stays disconnected."""
    errors = Recorder()
    async with Client("no-such-key", host=clarion.host, port=clarion.port) as client:
        client.connection.bind("error", errors)
        await wait_until(lambda: client.connection.state == "disconnected")
    assert errors.values[-1]["error"]["data"]["code"] == 4001


async def test_client_unreachable_then_available(
    start_server: Callable[..., ServerProcess],
) -> None:
    """An unreachable server gives unavailable, then connected once it listens."""
    proxy = TcpProxy(target_port=1)
    await proxy.start()
    changes = Recorder()
    client = Client(
        "app-key",
        port=proxy.port,
        unavailable_timeout=0.2,
        attempt_timeout=0.3,
        max_attempt_timeout=0.3,
    )
    client.connection.bind("state_change", changes)
    try:
        client.connect()
        await wait_until(lambda: client.connection.state == "unavailable")
        # The attempt fails when the proxy cannot reach port 1 and closes.
        await wait_until(lambda: client.connection.last_error is not None)
        failed_state = client.connection.state
        proxy.target_port = start_server().port
        await wait_until(lambda: client.connection.state == "connected")
        error_when_connected = client.connection.last_error
    finally:
        await client.aclose()
        await proxy.close()
    assert failed_state == "unavailable"
    assert error_when_connected is None
    assert [change.current for change in changes.values] == [
        "connecting",
        "unavailable",
        "connected",
        "disconnected",
    ]


async def test_client_connect_exception_retries(
    clarion: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected exception while connecting is logged and fails only that
    attempt: the next attempt connects."""
    real_connect = connection_module.connect
    failures = 2

    async def connect_failing_twice(*args: Any, **options: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("injected connect failure")
        return await real_connect(*args, **options)

    monkeypatch.setattr(connection_module, "connect", connect_failing_twice)
    client = Client(
        clarion.key,
        host=clarion.host,
        port=clarion.port,
        attempt_timeout=0.2,
        max_attempt_timeout=0.2,
    )
    try:
        client.connect()
        await wait_until(lambda: client.connection.state == "connected")
    finally:
        await client.aclose()
    logged = [
        record
        for record in caplog.records
        if record.name == "clarion.client" and record.levelname == "ERROR"
    ]
    assert len(logged) == 2
    assert all("injected connect failure" in str(r.exc_info) for r in logged)
    assert client.connection.last_error is None


# -- Channels ----------------------------------------------------------------------


async def test_public_channel_receives_sdk_event(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """An event triggered by the SDK reaches the bound callback, JSON-decoded."""
    client, _ = await connected(make_client)
    channel = await subscribed(client, "prices")
    received = Recorder()
    global_events = Recorder()
    channel.bind("price", received)
    client.bind_global(global_events)
    sdk.trigger("prices", "price", {"value": 42})
    assert await received.first() == {"value": 42}
    assert ("price", {"value": 42}) in global_events.calls


async def test_subscribe_before_connect_waits(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """A channel subscribed before connecting is joined once connected."""
    client, _ = make_client()
    channel = client.subscribe("early")
    succeeded = Recorder()
    channel.bind("pusher:subscription_succeeded", succeeded)
    client.connect()
    await succeeded.wait_count(1)
    assert channel.subscribed


async def test_subscription_count_updates(make_client: MakeClient) -> None:
    """pusher:subscription_count reports the number of subscribers."""
    first, _ = await connected(make_client)
    second, _ = await connected(make_client)
    counts = Recorder()
    channel = first.subscribe("counted")
    channel.bind("pusher:subscription_count", counts)
    await subscribed(second, "counted")
    await wait_until(lambda: channel.subscription_count == 2)
    assert counts.values[-1] == {"subscription_count": 2}


async def test_private_channel_uses_authorizer(make_client: MakeClient) -> None:
    """A private channel is authorized for the connection's socket id."""
    client, auth = await connected(make_client)
    await subscribed(client, "private-orders")
    assert [request.socket_id for request in auth.channel_requests] == [
        client.connection.socket_id
    ]


async def test_failing_authorizer_gives_subscription_error(
    make_client: MakeClient,
) -> None:
    """An authorizer that raises gives pusher:subscription_error of AuthError."""

    def refuse(request: Any) -> dict[str, Any]:
        raise PermissionError("not this user")

    client, _ = await connected(make_client, channel_authorizer=refuse)
    channel = client.subscribe("private-secret")
    errors = Recorder()
    channel.bind("pusher:subscription_error", errors)
    error = await errors.first()
    assert error["type"] == "AuthError"
    assert "not this user" in error["error"]
    assert not channel.subscribed


async def test_bad_signature_gives_server_error(
    make_client: MakeClient,
) -> None:
    """A wrongly signed subscription gets the server's subscription_error."""
    client, _ = await connected(
        make_client, channel_authorizer=lambda request: {"auth": "app-key:bad"}
    )
    channel = client.subscribe("private-wrong")
    errors = Recorder()
    channel.bind("pusher:subscription_error", errors)
    error = await errors.first()
    assert error["status"] == 401


async def test_unsubscribe_while_pending(make_client: MakeClient) -> None:
    """unsubscribe() before success cancels: the channel is left once it succeeds."""
    client, _ = await connected(make_client)
    messages = Recorder()
    client.connection.bind("message", messages)
    channel = client.subscribe("private-pending")
    succeeded = Recorder()
    channel.bind("pusher:subscription_succeeded", succeeded)
    client.unsubscribe("private-pending")
    await wait_until(lambda: not channel.subscription_pending)
    await wait_until(lambda: client.channel("private-pending") is None)
    assert succeeded.calls == []
    assert channel.subscribed is False


async def test_channel_async_iteration(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """Iterating a channel yields its events until it is unsubscribed."""
    client, _ = await connected(make_client)
    channel = await subscribed(client, "feed")
    received: list[ChannelEvent] = []

    async def consume() -> None:
        async for event in channel:
            received.append(event)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    sdk.trigger("feed", "one", "first")
    sdk.trigger("feed", "two", {"n": 2})
    await wait_until(lambda: len(received) == 2)
    client.unsubscribe("feed")
    await asyncio.wait_for(consumer, 5)
    assert received == [ChannelEvent("one", "first"), ChannelEvent("two", {"n": 2})]


# -- Presence and client events -----------------------------------------------------


async def test_presence_roster_and_member_events(make_client: MakeClient) -> None:
    """Presence gives me, count, iteration and member_added / member_removed."""
    alice, _ = await connected(make_client, user_id="alice", user_info={"n": "A"})
    bob, _ = await connected(make_client, user_id="bob", user_info={"n": "B"})
    room = await subscribed(alice, "presence-room")
    assert isinstance(room, PresenceChannel)
    added, removed = Recorder(), Recorder()
    room.bind("pusher:member_added", added)
    room.bind("pusher:member_removed", removed)

    bob_room = await subscribed(bob, "presence-room")
    assert await added.first() == Member("bob", {"n": "B"})
    assert room.members.count == 2
    assert bob_room.members.me == Member("bob", {"n": "B"})
    assert sorted(member.id for member in bob_room.members) == ["alice", "bob"]

    bob.unsubscribe("presence-room")
    assert await removed.first() == Member("bob", {"n": "B"})
    assert room.members.count == 1
    assert room.members.get("bob") is None


async def test_client_events_between_clients(make_client: MakeClient) -> None:
    """A client event reaches the other client with user_id, never the sender."""
    alice, _ = await connected(make_client, user_id="alice")
    bob, _ = await connected(make_client, user_id="bob")
    alice_room = await subscribed(alice, "presence-chat")
    bob_room = await subscribed(bob, "presence-chat")
    at_bob, at_alice = Recorder(), Recorder()
    bob_room.bind("client-typing", at_bob)
    alice_room.bind("client-typing", at_alice)
    assert alice_room.trigger("client-typing", {"text": "hi"}) is True
    await at_bob.wait_count(1)
    assert at_bob.calls[0] == ({"text": "hi"}, {"user_id": "alice"})
    assert at_alice.calls == []


async def test_private_client_event_round_trip(make_client: MakeClient) -> None:
    """Client events also travel on private channels."""
    first, _ = await connected(make_client)
    second, _ = await connected(make_client)
    sender = await subscribed(first, "private-pair")
    receiver = await subscribed(second, "private-pair")
    received = Recorder()
    receiver.bind("client-ping", received)
    sender.trigger("client-ping", "payload")
    assert await received.first() == "payload"


# -- Encrypted channels -----------------------------------------------------------


async def test_encrypted_channel_decrypts_sdk_event(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """An event the SDK encrypts arrives decrypted and JSON-decoded."""
    client, _ = await connected(make_client)
    channel = await subscribed(client, "private-encrypted-vault")
    assert isinstance(channel, EncryptedChannel)
    received = Recorder()
    channel.bind("secret", received)
    sdk.trigger("private-encrypted-vault", "secret", {"code": 1234})
    assert await received.first() == {"code": 1234}


async def test_encrypted_wrong_key_rekeys_once(
    clarion: ServerProcess, make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """An undecryptable event triggers one new authorization and is dropped."""
    client, auth = await connected(make_client)
    channel = await subscribed(client, "private-encrypted-rekey")
    received = Recorder()
    channel.bind_global(received)
    other_backend = pusher.Pusher(
        app_id=clarion.app_id,
        key=clarion.key,
        secret=clarion.secret,
        host=clarion.host,
        port=clarion.port,
        ssl=False,
        encryption_master_key_base64=base64.b64encode(b"k" * 32).decode(),
    )
    other_backend.trigger("private-encrypted-rekey", "lost", {"n": 1})
    await wait_until(lambda: len(auth.channel_requests) == 2)
    sdk.trigger("private-encrypted-rekey", "kept", {"n": 2})
    await received.wait_count(1)
    assert received.calls == [("kept", {"n": 2})]


async def test_encrypted_channel_refuses_client_events(
    make_client: MakeClient,
) -> None:
    """trigger() on an encrypted channel raises, as in pusher-js."""
    client, _ = await connected(make_client)
    channel = client.subscribe("private-encrypted-x")
    with pytest.raises(UnsupportedFeature):
        channel.trigger("client-x", {})


# -- Users ------------------------------------------------------------------------


async def test_signin_receives_user_events(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """After signin(), events sent to the user reach client.user."""
    client, _ = await connected(make_client, user_id="carol")
    received = Recorder()
    client.user.bind("notice", received)
    client.signin()
    await wait_until(lambda: client.user.server_to_user_channel is not None)
    await wait_until(lambda: client.user.server_to_user_channel.subscribed)
    sdk.send_to_user("carol", "notice", {"text": "hello"})
    assert await received.first() == {"text": "hello"}
    assert client.user.user_data == {"id": "carol"}


async def test_watchlist_reports_online(make_client: MakeClient) -> None:
    """A watcher receives online when a watched user signs in."""
    watcher, watcher_auth = await connected(make_client, user_id="watcher")
    watcher_auth.watchlist = ["dave"]
    online = Recorder()
    watcher.user.watchlist.bind("online", online)
    watcher.signin()
    await wait_until(lambda: watcher.user.user_data is not None)
    dave, _ = await connected(make_client, user_id="dave")
    dave.signin()
    assert await online.first() == {"name": "online", "user_ids": ["dave"]}


async def test_presence_without_channel_data_uses_signin(
    make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """A presence auth without channel_data takes the member from the sign-in."""

    def authorize_without_data(request: Any) -> dict[str, Any]:
        return sdk.authenticate(request.channel_name, request.socket_id)

    client, _ = await connected(
        make_client, user_id="erin", channel_authorizer=authorize_without_data
    )
    client.signin()
    room = await subscribed(client, "presence-signed")
    assert room.members.me.id == "erin"


# -- Reconnects -------------------------------------------------------------------


async def test_reconnect_resubscribes_and_signs_in(
    clarion: ServerProcess, make_client: MakeClient, sdk: pusher.Pusher
) -> None:
    """After a dropped connection every channel is joined again with fresh auth."""
    proxy = TcpProxy(clarion.port)
    await proxy.start()
    try:
        client, auth = make_client(user_id="frank", port=proxy.port, retry_delay=0.05)
        client.connect()
        client.signin()
        names = ["public-a", "private-b", "presence-c", "private-encrypted-d"]
        channels = [client.subscribe(name) for name in names]
        await wait_until(lambda: all(channel.subscribed for channel in channels))
        await wait_until(lambda: client.user.user_data is not None)
        first_socket = client.connection.socket_id

        changes = Recorder()
        client.connection.bind("state_change", changes)
        proxy.drop()
        await wait_until(lambda: client.connection.socket_id != first_socket)
        await wait_until(lambda: all(channel.subscribed for channel in channels))
        await wait_until(lambda: client.user.user_data is not None)
        await wait_until(lambda: len(auth.user_requests) == 2)

        received = Recorder()
        client.user.bind("after", received)
        await wait_until(lambda: client.user.server_to_user_channel.subscribed)
        sdk.send_to_user("frank", "after", {})
        await received.wait_count(1)
    finally:
        await proxy.close()
    assert [change.current for change in changes.values] == ["connecting", "connected"]
    second_socket = client.connection.socket_id
    assert sorted(
        request.channel_name
        for request in auth.channel_requests
        if request.socket_id == second_socket
    ) == ["presence-c", "private-b", "private-encrypted-d"]


async def test_tcp_drop_reports_1006_and_retries(
    clarion: ServerProcess, make_client: MakeClient
) -> None:
    """A dropped socket reports error 1006 and reconnects after the retry delay."""
    proxy = TcpProxy(clarion.port)
    await proxy.start()
    try:
        client, _ = make_client(port=proxy.port, retry_delay=0.05)
        errors, delays = Recorder(), Recorder()
        client.connection.bind("error", errors)
        client.connection.bind("connecting_in", delays)
        client.connect()
        await wait_until(lambda: client.connection.state == "connected")
        proxy.drop()
        await wait_until(lambda: proxy.connections == 2)
        await wait_until(lambda: client.connection.state == "connected")
    finally:
        await proxy.close()
    # A reset socket adds a WebSocketError first, as in pusher-js.
    assert errors.values[-1] == {
        "type": "PusherError",
        "data": {"code": 1006, "message": ""},
    }
    assert {error["type"] for error in errors.values[:-1]} <= {"WebSocketError"}
    assert delays.values == [0]


# -- HTTP auth endpoints ----------------------------------------------------------


@pytest.fixture
def auth_endpoint(sdk: pusher.Pusher) -> Iterator[str]:
    """An app backend on loopback: /auth signs channels, /forbidden returns 403."""
    requests: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            requests.append(form)
            if self.path != "/auth" or self.headers.get("X-Token") != "t":
                self.send_response(403)
                self.end_headers()
                return
            body = sdk.authenticate(form["channel_name"][0], form["socket_id"][0])
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http_server.server_address[1]}"
    http_server.shutdown()
    http_server.server_close()
    thread.join(timeout=5)


async def test_endpoint_authorizer_signs_channel(
    make_client: MakeClient, auth_endpoint: str
) -> None:
    """A URL authorizer posts the form to the endpoint, with the extra headers."""
    client, _ = await connected(
        make_client,
        channel_authorizer=f"{auth_endpoint}/auth",
        auth_headers={"X-Token": "t"},
    )
    channel = await subscribed(client, "private-by-http")
    assert channel.subscribed


async def test_endpoint_refusal_reports_status(
    make_client: MakeClient, auth_endpoint: str
) -> None:
    """A 403 from the endpoint gives subscription_error with status 403."""
    client, _ = await connected(make_client, channel_authorizer=f"{auth_endpoint}/x")
    channel = client.subscribe("private-refused")
    errors = Recorder()
    channel.bind("pusher:subscription_error", errors)
    error = await errors.first()
    assert error["status"] == 403
    assert error["type"] == "AuthError"
