"""clarion.rest against a real Clarion server: every HTTP API call and its errors."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nacl.secret import SecretBox
from rest_subscriber import Subscriber
from websockets.exceptions import ConnectionClosed

from clarion.rest import BatchEvent, RestClient, RestStatusError

MASTER_KEY_BASE64 = "dGhpcyBpcyAzMiBieXRlcyAxMjM0NTY3ODkwMTIzNDU="


@pytest.fixture
async def rest(server: Any) -> AsyncIterator[RestClient]:
    """A client for the default test app, able to encrypt."""
    async with RestClient(
        app_id=server.app_id,
        key=server.key,
        secret=server.secret,
        url=server.http_url,
        encryption_master_key_base64=MASTER_KEY_BASE64,
    ) as client:
        yield client


@pytest.fixture
async def open_subscriber(server: Any) -> AsyncIterator[Callable[..., Any]]:
    """Return a function that opens subscribers, closed when the test ends."""
    opened: list[Subscriber] = []

    async def open_one(*channels: str) -> Subscriber:
        subscriber = await Subscriber.open(server.ws_url)
        opened.append(subscriber)
        for channel in channels:
            await subscriber.subscribe(channel)
        return subscriber

    yield open_one
    for subscriber in opened:
        await subscriber.close()


# Events


async def test_trigger_delivers_event(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """A triggered event reaches the subscriber with its data as compact JSON."""
    subscriber = await open_subscriber("news")
    answer = await rest.trigger("news", "greeting", {"text": "hello"})
    message = await subscriber.next_message("greeting")
    assert answer == {}
    assert message == {
        "event": "greeting",
        "channel": "news",
        "data": '{"text":"hello"}',
    }


async def test_trigger_sends_string_verbatim(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """String data is published as the exact string given."""
    subscriber = await open_subscriber("news")
    await rest.trigger(["news"], "raw", "not json, kept as is")
    message = await subscriber.next_message("raw")
    assert message["data"] == "not json, kept as is"


async def test_trigger_skips_excluded_socket(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """The connection named by socket_id does not receive the event."""
    sender = await open_subscriber("news")
    other = await open_subscriber("news")
    await rest.trigger("news", "update", "{}", socket_id=sender.socket_id)
    await rest.trigger("news", "marker", "{}")
    first_for_sender = await sender.next_message("update", "marker")
    first_for_other = await other.next_message("update", "marker")
    assert first_for_sender["event"] == "marker"
    assert first_for_other["event"] == "update"


async def test_trigger_returns_requested_info(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """info=subscription_count returns each channel's count."""
    await open_subscriber("news")
    await open_subscriber("news")
    answer = await rest.trigger("news", "e", "{}", info=["subscription_count"])
    assert answer == {"channels": {"news": {"subscription_count": 2}}}


async def test_trigger_batch_delivers_events(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """Each event of a batch reaches its own channel."""
    subscriber = await open_subscriber("first", "second")
    await rest.trigger_batch(
        [BatchEvent("first", "one", "1"), BatchEvent("second", "two", {"n": 2})]
    )
    one = await subscriber.next_message("one")
    two = await subscriber.next_message("two")
    assert (one["channel"], one["data"]) == ("first", "1")
    assert (two["channel"], two["data"]) == ("second", '{"n":2}')


async def test_trigger_encrypted_channel_decrypts(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """An event on an encrypted channel opens with the channel's shared secret."""
    channel = "private-encrypted-vault"
    subscriber = await open_subscriber()
    auth = rest.authorize_channel(subscriber.socket_id, channel)
    await subscriber.subscribe(channel, auth)
    await rest.trigger(channel, "secret", {"code": 42})
    message = await subscriber.next_message("secret")
    sealed = json.loads(message["data"])
    box = SecretBox(base64.b64decode(auth["shared_secret"]))
    plaintext = box.decrypt(
        base64.b64decode(sealed["ciphertext"]), base64.b64decode(sealed["nonce"])
    )
    assert plaintext == b'{"code":42}'


# Channels and users


async def test_channels_lists_presence_counts(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """channels() returns occupied presence channels with their user counts."""
    subscriber = await open_subscriber()
    user = {"user_id": "alice", "user_info": {"name": "Alice"}}
    auth = rest.authorize_channel(subscriber.socket_id, "presence-room", user)
    await subscriber.subscribe("presence-room", auth)
    await open_subscriber("public-room")
    channels = await rest.channels(prefix="presence-", info=["user_count"])
    assert channels == {"presence-room": {"user_count": 1}}


async def test_channels_without_filter_lists_all(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """channels() with no prefix returns every occupied channel."""
    await open_subscriber("alpha", "beta")
    assert await rest.channels() == {"alpha": {}, "beta": {}}


async def test_channel_info_reports_occupancy(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """channel_info() reports occupied and the requested subscription count."""
    await open_subscriber("busy")
    busy = await rest.channel_info("busy", info=["subscription_count"])
    idle = await rest.channel_info("idle")
    assert busy == {"occupied": True, "subscription_count": 1}
    assert idle == {"occupied": False}


async def test_presence_users_lists_ids(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """presence_users() returns each distinct user id once."""
    for user_id in ("alice", "bob", "alice"):
        subscriber = await open_subscriber()
        user = {"user_id": user_id}
        auth = rest.authorize_channel(subscriber.socket_id, "presence-room", user)
        await subscriber.subscribe("presence-room", auth)
    users = await rest.presence_users("presence-room")
    assert sorted(users) == ["alice", "bob"]


async def test_terminate_closes_user_connections(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """terminate_user_connections() closes the signed-in socket with 4009."""
    subscriber = await open_subscriber()
    await subscriber.sign_in(rest.authenticate_user(subscriber.socket_id, {"id": "7"}))
    await rest.terminate_user_connections("7")
    error = await subscriber.next_message("pusher:error")
    with pytest.raises(ConnectionClosed) as closed:
        await subscriber.connection.recv()
    assert error["data"]["code"] == 4009
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4009


async def test_send_to_user_reaches_user(
    rest: RestClient, open_subscriber: Callable[..., Any]
) -> None:
    """send_to_user() delivers on the signed-in user's own channel."""
    subscriber = await open_subscriber()
    await subscriber.sign_in(rest.authenticate_user(subscriber.socket_id, {"id": "7"}))
    await subscriber.subscribe("#server-to-user-7", {"auth": ""})
    await rest.send_to_user("7", "notice", {"unread": 3})
    message = await subscriber.next_message("notice")
    assert message["channel"] == "#server-to-user-7"
    assert message["data"] == '{"unread":3}'


# Errors


async def test_wrong_secret_raises_401(server: Any) -> None:
    """A request signed with the wrong secret raises RestStatusError 401."""
    async with RestClient(
        app_id=server.app_id, key=server.key, secret="wrong", url=server.http_url
    ) as client:
        with pytest.raises(RestStatusError) as raised:
            await client.trigger("news", "e", "{}")
    assert raised.value.status == 401
    assert "Invalid signature" in raised.value.error


async def test_unknown_app_raises_404(server: Any) -> None:
    """A request for an app id the server does not have raises 404."""
    async with RestClient(
        app_id="999", key=server.key, secret=server.secret, url=server.http_url
    ) as client:
        with pytest.raises(RestStatusError) as raised:
            await client.channels()
    assert raised.value.status == 404
    assert "999" in str(raised.value)


@pytest.mark.parametrize(
    ("call", "status"),
    [
        pytest.param(
            lambda rest: rest.trigger("news", "big", "x" * 10241), 413, id="data-size"
        ),
        pytest.param(
            lambda rest: rest.trigger("bad name", "e", "{}"), 400, id="channel-name"
        ),
        pytest.param(
            lambda rest: rest.presence_users("public-room"), 400, id="users-public"
        ),
        pytest.param(
            lambda rest: rest.channels(info=["user_count"]), 400, id="count-no-prefix"
        ),
        pytest.param(
            lambda rest: rest.trigger_batch([BatchEvent("c", "e", "{}")] * 11),
            400,
            id="batch-size",
        ),
    ],
)
async def test_invalid_request_raises_status(
    rest: RestClient, call: Callable[[RestClient], Any], status: int
) -> None:
    """A request the server rejects raises RestStatusError with its message."""
    with pytest.raises(RestStatusError) as raised:
        await call(rest)
    assert raised.value.status == status
    assert raised.value.error
    assert f"HTTP {status}" in str(raised.value)
