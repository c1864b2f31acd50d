"""A running server and `clarion apps` on the same store: new apps, rotated and
retired secrets, disabled and deleted apps are seen within the refresh time,
over real sockets with the official pusher SDK, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pusher
import pusher.errors
import pytest
import websockets
from clarion_e2e import (
    StdlibBackend,
    WireClient,
    channel_auth,
    compact,
    open_established,
    open_socket,
    sign_in,
    signin_auth,
)
from cluster_harness import RedisServer, WebhookReceiver, wait_joined_redis
from fallback_wire import Session
from store_harness import SEEN_TIMEOUT, StoreTarget

from server_process import ServerProcess

pytestmark = pytest.mark.timeout(90)


def ws_url(server: ServerProcess, key: str) -> str:
    return f"ws://127.0.0.1:{server.port}/app/{key}?protocol=7&client=test"


def sdk(server: ServerProcess, app_id: str, key: str, secret: str) -> pusher.Pusher:
    """Return the official Python SDK for one app of ``server``."""
    return pusher.Pusher(
        app_id=app_id,
        key=key,
        secret=secret,
        host="127.0.0.1",
        port=server.port,
        ssl=False,
        backend=StdlibBackend,
    )


async def trigger_status(
    server: ServerProcess, app: dict[str, Any], secret: str
) -> int:
    """Trigger an event with the SDK signed by ``secret``; return the status."""
    client = sdk(server, app["id"], app["key"], secret)
    try:
        await asyncio.to_thread(client.trigger, "status-probe", "probe", {})
    except pusher.errors.PusherBadAuth:
        return 401
    except pusher.errors.PusherForbidden:
        return 403
    except pusher.errors.PusherBadStatus as exc:
        return int(str(exc).split(":", 1)[0])
    return 200


async def connect_code(server: ServerProcess, key: str) -> int | None:
    """Open a connection with ``key``; return None when it is established, else
    the pusher:error code the server sent before closing."""
    client = await open_socket(ws_url(server, key))
    try:
        frame = await client.recv_frame()
    finally:
        await client.close()
    if frame.event == "pusher:connection_established":
        return None
    return int(json.loads(frame.text)["data"]["code"])


async def eventually(
    probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float = SEEN_TIMEOUT
) -> Any:
    """Call ``probe`` until it returns ``expected`` or ``timeout`` passes; return
    its last result, so the caller's assert shows it."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result == expected or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(0.05)


async def subscribe_private(
    client: WireClient, app: dict[str, Any], secret: str, channel: str
) -> dict[str, Any]:
    """Subscribe with an auth token signed by ``secret``; return the reply."""
    auth = channel_auth(app["key"], secret, client.socket_id or "", channel)
    frame = await client.subscribe(channel, auth)
    reply: dict[str, Any] = json.loads(frame.text)
    return reply


def signature_of(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# New apps


async def test_new_app_served_within_refresh(store: StoreTarget) -> None:
    """An app created while the server runs accepts connections and SDK events."""
    server = store.serve()
    app = store.create("--client-events")

    assert await eventually(lambda: connect_code(server, app["key"]), None) is None
    client = await open_established(ws_url(server, app["key"]))
    reply = json.loads((await client.subscribe("orders")).text)
    assert reply["event"] == "pusher_internal:subscription_succeeded"
    client_sdk = sdk(server, app["id"], app["key"], app["secret"])
    await asyncio.to_thread(client_sdk.trigger, "orders", "created", {"id": 7})
    frame = await client.recv_frame()
    assert frame.event == "created"
    assert json.loads(frame.data) == {"id": 7}
    await client.close()


async def test_dev_app_only_without_apps(store: StoreTarget) -> None:
    """The development app is served while the store is empty, and closed with
    4001 once the store has an app."""
    server = store.serve()
    dev_client = await open_established(ws_url(server, "app-key"))

    store.create()
    code, _ = await dev_client.wait_closed(SEEN_TIMEOUT)
    assert code == 4001
    assert await connect_code(server, "app-key") == 4001


# Secret rotation


async def test_rotation_accepts_both_secrets(store: StoreTarget) -> None:
    """During a rotation the HTTP API, channel auth and sign-in accept the old
    and the new secret, also on connections opened before it."""
    app = store.create()
    server = store.serve()
    old = app["secret"]
    opened_before = await open_established(ws_url(server, app["key"]))

    new = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    assert await eventually(lambda: trigger_status(server, app, new), 200) == 200
    assert await trigger_status(server, app, old) == 200

    opened_after = await open_established(ws_url(server, app["key"]))
    for client in (opened_before, opened_after):
        for name, secret in (("old", old), ("new", new)):
            reply = await subscribe_private(client, app, secret, f"private-{name}")
            assert reply["event"] == "pusher_internal:subscription_succeeded", reply
    for client, secret in ((opened_before, old), (opened_after, new)):
        frame = await sign_in(client, app["key"], secret, {"id": "ada"})
        assert frame.event == "pusher:signin_success", frame.text
    await opened_before.close()
    await opened_after.close()


async def test_retired_secret_rejected(store: StoreTarget) -> None:
    """After retire-secret the old secret gets 401 from the HTTP API, an
    AuthError for channel auth and 4009 for sign-in; the new one still works."""
    app = store.create()
    server = store.serve()
    old = app["secret"]
    new = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    assert await eventually(lambda: trigger_status(server, app, new), 200) == 200

    assert store.cli("retire-secret", app["id"]).returncode == 0
    assert await eventually(lambda: trigger_status(server, app, old), 401) == 401
    assert await trigger_status(server, app, new) == 200

    client = await open_established(ws_url(server, app["key"]))
    rejected = await subscribe_private(client, app, old, "private-retired")
    assert rejected["event"] == "pusher:subscription_error"
    assert rejected["data"]["type"] == "AuthError"
    assert rejected["data"]["status"] == 401
    accepted = await subscribe_private(client, app, new, "private-current")
    assert accepted["event"] == "pusher_internal:subscription_succeeded"
    frame = await sign_in(client, app["key"], old, {"id": "ada"})
    assert frame.event == "pusher:error"
    assert json.loads(frame.text)["data"]["code"] == 4009
    await client.close()


async def test_http_fallback_accepts_both_secrets(store: StoreTarget) -> None:
    """Over pusher-js's HTTP fallback, channel auth and sign-in accept either
    secret during a rotation, and reject the old one once it is retired."""
    app = store.create()
    server = store.serve()
    old = app["secret"]
    new = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    assert await eventually(lambda: trigger_status(server, app, new), 200) == 200

    session = Session(server.port, app["key"])
    await session.open_polling()
    socket_id = session.socket_id or ""
    for name, secret in (("old", old), ("new", new)):
        channel = f"private-fallback-{name}"
        auth = channel_auth(app["key"], secret, socket_id, channel)
        await session.subscribe(channel, auth=auth)
    user_data = compact({"id": "ada"})
    signin = signin_auth(app["key"], old, socket_id, user_data)
    await session.send(
        {"event": "pusher:signin", "data": {"auth": signin, "user_data": user_data}}
    )
    received = await session.poll_until("pusher:signin_success")
    succeeded = [
        message["channel"]
        for message in received
        if message["event"] == "pusher_internal:subscription_succeeded"
    ]
    assert succeeded == ["private-fallback-old", "private-fallback-new"], received

    assert store.cli("retire-secret", app["id"]).returncode == 0
    assert await eventually(lambda: trigger_status(server, app, old), 401) == 401
    auth = channel_auth(app["key"], old, socket_id, "private-fallback-retired")
    await session.subscribe("private-fallback-retired", auth=auth)
    received = await session.poll_until("pusher:subscription_error")
    assert received[-1]["channel"] == "private-fallback-retired"


async def test_webhooks_signed_with_current_secret(store: StoreTarget) -> None:
    """Webhooks are signed with the current secret, before and after rotation."""
    receiver = WebhookReceiver()
    try:
        app = store.create(
            "--webhook", receiver.url, "--webhook-events", "channel_occupied"
        )
        server = store.serve(CLARION_WEBHOOK_BATCH_MS="0")
        client = await open_established(ws_url(server, app["key"]))
        await client.subscribe("before-rotation")
        await receiver.wait_for(
            "before-rotation", lambda event: event["channel"] == "before-rotation"
        )

        new = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
        assert await eventually(lambda: trigger_status(server, app, new), 200) == 200
        await client.subscribe("after-rotation")
        await receiver.wait_for(
            "after-rotation", lambda event: event["channel"] == "after-rotation"
        )
        await client.close()
    finally:
        receiver.close()

    signatures = {
        request.events[0]["channel"]: (request.body, request.signature, request.key)
        for request in receiver.requests
    }
    body, signature, key = signatures["before-rotation"]
    assert key == app["key"]
    assert signature == signature_of(app["secret"], body)
    body, signature, key = signatures["after-rotation"]
    assert signature == signature_of(new, body)
    assert signature != signature_of(app["secret"], body)


async def test_update_applies_to_open_connections(store: StoreTarget) -> None:
    """Switching client events on reaches connections opened before."""
    app = store.create()
    server = store.serve()
    sender = await open_established(ws_url(server, app["key"]))
    receiver = await open_established(ws_url(server, app["key"]))
    for client in (sender, receiver):
        reply = await subscribe_private(client, app, app["secret"], "private-chat")
        assert reply["event"] == "pusher_internal:subscription_succeeded"
    client_event = {"event": "client-typing", "channel": "private-chat", "data": {}}
    await sender.send_json(client_event)
    refused = json.loads((await sender.recv_frame()).text)
    assert refused["event"] == "pusher:error"

    assert store.cli("update", app["id"], "--client-events").returncode == 0
    deadline = time.monotonic() + SEEN_TIMEOUT
    while True:
        await sender.send_json(client_event)
        frame = await sender.ping_barrier()
        if frame.event == "pusher:pong":
            break
        assert frame.event == "pusher:error", frame.text
        assert (await sender.recv_frame()).event == "pusher:pong"
        assert time.monotonic() < deadline, "client events still rejected"
        await asyncio.sleep(0.05)
    assert (await receiver.recv_frame()).event == "client-typing"
    await sender.close()
    await receiver.close()


# Disabled and deleted apps


async def test_disable_and_enable_seen(store: StoreTarget) -> None:
    """Disabling closes open connections with 4003 and rejects new ones (4003,
    HTTP 403); enabling lets them in again."""
    app = store.create()
    other = store.create()
    server = store.serve()
    client = await open_established(ws_url(server, app["key"]))
    bystander = await open_established(ws_url(server, other["key"]))

    assert store.cli("disable", app["id"]).returncode == 0
    code, _ = await client.wait_closed(SEEN_TIMEOUT)
    assert code == 4003
    assert await connect_code(server, app["key"]) == 4003
    assert await trigger_status(server, app, app["secret"]) == 403
    assert (await bystander.ping_barrier()).event == "pusher:pong"

    assert store.cli("enable", app["id"]).returncode == 0
    assert await eventually(lambda: connect_code(server, app["key"]), None) is None
    assert await trigger_status(server, app, app["secret"]) == 200
    await bystander.close()


async def test_delete_seen(store: StoreTarget) -> None:
    """Deleting closes open connections with 4001 and rejects new ones (4001,
    HTTP 404)."""
    app = store.create()
    server = store.serve()
    client = await open_established(ws_url(server, app["key"]))

    assert store.cli("delete", app["id"]).returncode == 0
    code, _ = await client.wait_closed(SEEN_TIMEOUT)
    assert code == 4001
    assert await connect_code(server, app["key"]) == 4001
    assert await trigger_status(server, app, app["secret"]) == 404


# Config file and store together


CONFIG_APP = """
[[apps]]
id = "5"
key = "file-key"
secret = "file-secret"
"""


async def test_config_app_wins_conflict(store: StoreTarget) -> None:
    """A store app with the id of a config app is not served and is logged;
    other store apps are served beside the config apps."""
    conflicting = store.create("--id", "5", "--key", "store-key")
    separate = store.create("--id", "6")
    server = store.serve(CONFIG_APP)

    assert await connect_code(server, "file-key") is None
    assert await connect_code(server, separate["key"]) is None
    assert await connect_code(server, conflicting["key"]) == 4001
    assert await connect_code(server, "app-key") == 4001
    file_app = {"id": "5", "key": "file-key"}
    assert await trigger_status(server, file_app, "file-secret") == 200
    assert await trigger_status(server, conflicting, conflicting["secret"]) == 401
    log = server.log_text()
    assert "App 5 of the app store is not served" in log
    assert "config file wins" in log


# An unreachable store


async def test_unreachable_store_keeps_apps(store: StoreTarget) -> None:
    """While the store cannot be read the apps read before stay served and the
    error is logged; once it is back, changes are seen again."""
    app = store.create()
    server = store.serve()
    assert await connect_code(server, app["key"]) is None

    store.make_unreachable()
    try:
        deadline = time.monotonic() + SEEN_TIMEOUT
        while "Cannot read the app store" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            await asyncio.sleep(0.05)
        assert await connect_code(server, app["key"]) is None
        assert await trigger_status(server, app, app["secret"]) == 200
    finally:
        store.make_reachable()

    added = store.create()
    # The retry delay doubles after each failure, from 1 s.
    seen = await eventually(lambda: connect_code(server, added["key"]), None, 15)
    assert seen is None
    assert "App store readable again" in server.log_text()
    assert server.is_running()


# Several workers


async def test_every_worker_refreshes(
    sqlite_store: StoreTarget, tmp_path: Path
) -> None:
    """With --workers 2 each worker reads the shared SQLite file itself."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        server = sqlite_store.serve(args=("--workers", "2", "--redis-url", redis.url))
        wait_joined_redis(server, processes=2)
        app = sqlite_store.create()

        added = f"Serving app {app['id']} (key"
        deadline = time.monotonic() + SEEN_TIMEOUT
        while server.log_text().count(added) < 2:
            assert time.monotonic() < deadline, server.log_text()
            await asyncio.sleep(0.05)
        clients = [await open_established(ws_url(server, app["key"])) for _ in range(6)]
        for client in clients:
            await client.subscribe("fan-out")
        client_sdk = sdk(server, app["id"], app["key"], app["secret"])
        await asyncio.to_thread(client_sdk.trigger, "fan-out", "hello", {})
        for client in clients:
            assert (await client.recv_frame()).event == "hello"
            await client.close()
    finally:
        for started in sqlite_store.started:
            started.stop()
        redis.stop()


async def origin_code(server: ServerProcess, key: str, origin: str) -> int | None:
    """Like ``connect_code``, for a browser page at ``origin``."""
    async with websockets.connect(
        ws_url(server, key), origin=websockets.Origin(origin), compression=None
    ) as connection:
        message = json.loads(await asyncio.wait_for(connection.recv(), 5))
    if message["event"] == "pusher:connection_established":
        return None
    return int(message["data"]["code"])


async def test_allowed_origins_of_store_app(store: StoreTarget) -> None:
    """Allowed origins set with `clarion apps update` reach the running server:
    a page at another origin then gets 4009, a listed one connects."""
    app = store.create()
    server = store.serve()
    assert await origin_code(server, app["key"], "https://elsewhere.test") is None

    result = store.cli(
        "update", app["id"], "--allowed-origins", "https://*.example.com"
    )
    assert result.returncode == 0, result.stderr

    refused = await eventually(
        lambda: origin_code(server, app["key"], "https://elsewhere.test"), 4009
    )
    assert refused == 4009
    assert await origin_code(server, app["key"], "https://shop.example.com") is None
