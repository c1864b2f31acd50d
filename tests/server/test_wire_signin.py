"""User sign-in over the wire: `pusher:signin`, its checks and its errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pusher
import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    Frame,
    WireClient,
    channel_auth,
    compact,
    error_frame,
    event_frame,
    hmac_sha256_hex,
    sdk_client,
    sign_in,
    signin_auth,
    signin_success_frame,
)
from clarion_launch import (
    DEFAULT_APP,
    USER_LIMITS_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)

# Published sign-in vectors: key 278d425bdf160c739803, secret
# 7ad3773142a6692b25b8, socket_id 1234.1234.
VECTOR_KEY = "278d425bdf160c739803"
VECTOR_SECRET = "7ad3773142a6692b25b8"
VECTOR_SOCKET_ID = "1234.1234"


async def sign_in_as(
    client: WireClient, user_id: str, app: AppCredentials = DEFAULT_APP, **fields: Any
) -> Frame:
    """Sign `client` in as `user_id` with extra user_data fields."""
    return await sign_in(client, app.key, app.secret, {"id": user_id, **fields})


async def send_signin(client: WireClient, data: Any) -> Frame:
    """Send `pusher:signin` with arbitrary data and return the reply frame."""
    await client.send_json({"event": "pusher:signin", "data": data})
    return await client.recv_frame()


def error_code(frame: Frame) -> Any:
    """Return `data.code` of a `pusher:error` frame, or the frame text if it is
    another event, so that a failed assert shows what came instead."""
    if frame.event != "pusher:error":
        return frame.text
    return frame.data["code"]


# Signing vectors: the test helper and the Python SDK sign what the protocol
# documents.


def test_signin_helper_matches_vectors() -> None:
    """signin_auth reproduces the documented sign-in signatures."""
    plain = signin_auth(VECTOR_KEY, VECTOR_SECRET, VECTOR_SOCKET_ID, '{"id":"12345"}')
    full = signin_auth(
        VECTOR_KEY,
        VECTOR_SECRET,
        VECTOR_SOCKET_ID,
        '{"id":"12345","user_info":{"name":"Alice"},"watchlist":["42","43"]}',
    )
    assert plain == (
        f"{VECTOR_KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
    )
    assert full == (
        f"{VECTOR_KEY}:46d373d01396a754cae5dfdc9dd99bde2652c98dc9410ab4aa946bc87bc84bef"
    )


def test_signin_sdk_matches_spaced_vector() -> None:
    """The Python SDK signs its spaced user_data as the documented vector."""
    sdk = pusher.Pusher(app_id="3", key=VECTOR_KEY, secret=VECTOR_SECRET)
    token = sdk.authenticate_user(
        VECTOR_SOCKET_ID,
        {"id": "12345", "user_info": {"name": "Alice"}, "watchlist": ["42", "43"]},
    )
    assert token["user_data"] == (
        '{"id": "12345", "user_info": {"name": "Alice"}, "watchlist": ["42", "43"]}'
    )
    assert token["auth"] == (
        f"{VECTOR_KEY}:51064135958289fa22ddd3ed8b73ccaf864415b6a6299bfb3ad7b712b7417618"
    )


# Successful sign-in


async def test_signin_success_echoes_user_data(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A valid sign-in gets signin_success echoing user_data as a string."""
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "alice", "user_info": {"name": "Alice"}})
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, user_data)
    frame = await client.signin(user_data, auth)
    assert frame.text == signin_success_frame(user_data)


async def test_signin_sdk_spaced_user_data(
    shared_server: RunningServer, clients: ClientOpener, api: ApiClient
) -> None:
    """The Python SDK's spaced user_data is verified and echoed byte for byte."""
    client = await clients.established(shared_server.ws_url())
    token = sdk_client(api).authenticate_user(
        client.socket_id,
        {"id": "12345", "user_info": {"name": "Alice"}, "watchlist": ["42", "43"]},
    )
    assert ": " in token["user_data"]
    frame = await client.signin(token["user_data"], token["auth"])
    assert frame.text == signin_success_frame(token["user_data"])


async def test_signin_string_data_accepted(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """Sign-in data sent as a JSON string is decoded like an object."""
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "bob"})
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, user_data)
    frame = await send_signin(client, compact({"auth": auth, "user_data": user_data}))
    assert frame.text == signin_success_frame(user_data)


async def test_signin_user_id_200_chars_accepted(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A user id of 200 characters from the whole allowed set signs in."""
    client = await clients.established(shared_server.ws_url())
    user_id = ("Az09_-=@,.;" * 20)[:200]
    frame = await sign_in_as(client, user_id)
    assert frame.event == "pusher:signin_success"


async def test_signin_again_same_id_succeeds(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """Signing in again as the same user id succeeds again."""
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "carol")
    frame = await sign_in_as(client, "carol")
    assert frame.text == signin_success_frame(compact({"id": "carol"}))


async def test_signin_again_other_id_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """Signing in as a second user id fails with 4009 and keeps the first."""
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "dave")
    frame = await sign_in_as(client, "erin")
    assert error_code(frame) == 4009
    own = await client.subscribe("#server-to-user-dave", auth="")
    assert own.event == "pusher_internal:subscription_succeeded"
    other = await client.subscribe("#server-to-user-erin", auth="")
    assert other.event == "pusher:subscription_error"


async def test_signin_failed_then_valid_succeeds(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A rejected sign-in does not stop a later valid one on the same socket."""
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "frank"})
    await client.signin(user_data, f"{DEFAULT_APP.key}:{'0' * 64}")
    frame = await sign_in_as(client, "frank")
    assert frame.text == signin_success_frame(user_data)


# Forged sign-in


async def test_signin_forged_signature_exact_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A wrong signature gets 4009 naming the expected string to sign."""
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "mallory"})
    forged = hmac_sha256_hex("not-the-secret", f"{client.socket_id}::user::{user_data}")
    frame = await client.signin(user_data, f"{DEFAULT_APP.key}:{forged}")
    assert frame.text == error_frame(
        4009,
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"{client.socket_id}::user::{user_data}, but got {forged}",
    )


async def test_signin_forged_keeps_socket_open(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """After a forged sign-in the socket stays open."""
    client = await clients.established(shared_server.ws_url())
    await client.signin(compact({"id": "mallory"}), f"{DEFAULT_APP.key}:{'0' * 64}")
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_signin_wrong_key_exact_error(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A token with another app's key gets 4009 naming that key."""
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "mallory"})
    auth = signin_auth("other-key", DEFAULT_APP.secret, client.socket_id, user_data)
    frame = await client.signin(user_data, auth)
    assert frame.text == error_frame(
        4009, "Invalid key in sign-in auth data: 'other-key'"
    )


async def test_signin_other_socket_signature_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """A token signed for another socket_id is rejected (no replay)."""
    victim = await clients.established(shared_server.ws_url())
    attacker = await clients.established(shared_server.ws_url())
    user_data = compact({"id": "victim"})
    stolen = signin_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, victim.socket_id, user_data
    )
    frame = await attacker.signin(user_data, stolen)
    assert error_code(frame) == 4009


async def test_signin_tampered_user_data_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """user_data changed after signing is rejected."""
    client = await clients.established(shared_server.ws_url())
    signed = compact({"id": "user"})
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, signed)
    frame = await client.signin(compact({"id": "admin"}), auth)
    assert error_code(frame) == 4009


async def test_signin_reencoded_user_data_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The signature covers the exact user_data string, not its JSON value."""
    client = await clients.established(shared_server.ws_url())
    spaced = json.dumps({"id": "user"})
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, spaced)
    frame = await client.signin(compact({"id": "user"}), auth)
    assert error_code(frame) == 4009


@pytest.mark.parametrize(
    "data",
    [
        {"user_data": '{"id":"x"}'},
        {"auth": "", "user_data": '{"id":"x"}'},
        {"auth": "no-colon", "user_data": '{"id":"x"}'},
        {"auth": 42, "user_data": '{"id":"x"}'},
        {},
    ],
    ids=["missing-auth", "empty-auth", "no-colon", "number-auth", "empty-data"],
)
async def test_signin_malformed_auth_4009(
    shared_server: RunningServer, clients: ClientOpener, data: dict[str, Any]
) -> None:
    """A missing or malformed auth token gets pusher:error 4009."""
    client = await clients.established(shared_server.ws_url())
    frame = await send_signin(client, data)
    assert error_code(frame) == 4009


# Invalid user data, correctly signed


@pytest.mark.parametrize(
    "user_data",
    [
        "{not json",
        '["id","x"]',
        '"x"',
        "{}",
        '{"id":""}',
        '{"id":42}',
        '{"id":null}',
        '{"id":"has space"}',
        '{"id":"#hash"}',
        '{"id":"' + "a" * 201 + '"}',
        '{"id":"x","watchlist":"y"}',
        '{"id":"x","watchlist":[1]}',
        '{"id":"x","watchlist":[""]}',
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "no-id",
        "empty-id",
        "number-id",
        "null-id",
        "space-in-id",
        "hash-in-id",
        "id-201-chars",
        "watchlist-string",
        "watchlist-number",
        "watchlist-empty-id",
    ],
)
async def test_signin_invalid_user_data_4009(
    shared_server: RunningServer, clients: ClientOpener, user_data: str
) -> None:
    """Correctly signed but invalid user_data gets 4009 and the socket stays open."""
    client = await clients.established(shared_server.ws_url())
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, user_data)
    frame = await client.signin(user_data, auth)
    assert error_code(frame) == 4009
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_signin_user_data_object_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """user_data sent as a JSON object instead of a string gets 4009."""
    client = await clients.established(shared_server.ws_url())
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, "x")
    frame = await send_signin(client, {"auth": auth, "user_data": {"id": "x"}})
    assert error_code(frame) == 4009


# Size of user_info: compact JSON, UTF-8 bytes


def user_info_of_size(size: int, filler: str = "a") -> dict[str, str]:
    """Build a user_info whose compact JSON is exactly `size` UTF-8 bytes."""
    overhead = len(compact({"n": ""}).encode())
    width = len(filler.encode())
    info = {"n": filler * ((size - overhead) // width)}
    info["n"] += "a" * (size - len(compact(info).encode()))
    assert len(compact(info).encode()) == size
    return info


async def test_signin_user_info_at_limit(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """user_info of exactly the app's limit (64 bytes here) signs in."""
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    frame = await sign_in_as(
        client, "big", USER_LIMITS_APP, user_info=user_info_of_size(64)
    )
    assert frame.event == "pusher:signin_success"


async def test_signin_user_info_over_limit_4009(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """user_info one byte over the app's limit gets 4009."""
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    frame = await sign_in_as(
        client, "big", USER_LIMITS_APP, user_info=user_info_of_size(65)
    )
    assert error_code(frame) == 4009


async def test_signin_user_info_counts_utf8_bytes(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """The user_info limit counts UTF-8 bytes, not characters."""
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    info = user_info_of_size(65, filler="é")
    assert len(compact(info)) < 64
    frame = await sign_in_as(client, "big", USER_LIMITS_APP, user_info=info)
    assert error_code(frame) == 4009


async def test_signin_user_info_default_limit_1024(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """Without a configured limit, 1024 bytes pass and 1025 bytes fail."""
    accepted = await clients.established(shared_server.ws_url())
    rejected = await clients.established(shared_server.ws_url())
    ok = await sign_in_as(accepted, "big", user_info=user_info_of_size(1024))
    too_big = await sign_in_as(rejected, "big", user_info=user_info_of_size(1025))
    assert ok.event == "pusher:signin_success"
    assert error_code(too_big) == 4009


async def test_signin_oversized_user_not_signed_in(
    shared_server: RunningServer, clients: ClientOpener
) -> None:
    """After an oversized sign-in the socket is not signed in as that user."""
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(client, "big", USER_LIMITS_APP, user_info=user_info_of_size(65))
    frame = await client.subscribe("#server-to-user-big", auth="")
    assert frame.event == "pusher:subscription_error"


# Other clients are untouched by bad input


async def test_signin_forged_leaves_others_untouched(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Forged sign-ins as a signed-in user neither reach nor disturb that user."""
    channel = unique("signin-bystander-")
    bystander = await clients.established(shared_server.ws_url())
    await sign_in_as(bystander, "bystander")
    await bystander.subscribe(channel)
    await bystander.subscribe("#server-to-user-bystander", auth="")

    attacker = await clients.established(shared_server.ws_url())
    await attacker.signin(compact({"id": "bystander"}), f"{DEFAULT_APP.key}:{'f' * 64}")
    stolen = await attacker.subscribe("#server-to-user-bystander", auth="")
    assert stolen.event == "pusher:subscription_error"

    await api.trigger({"name": "still-here", "channel": channel, "data": "ok"})
    frame = await bystander.recv_frame()
    assert frame.text == event_frame("still-here", channel, "ok")
    barrier = await bystander.ping_barrier()
    assert barrier.text == PONG_TEXT


# Presence channels after sign-in


async def test_signin_presence_without_channel_data(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A signed-in socket joins presence without channel_data as its user."""
    channel = unique("presence-signin-")
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "pam", user_info={"name": "Pam"})
    auth = channel_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, channel)
    frame = await client.subscribe(channel, auth=auth)
    roster = {"ids": ["pam"], "hash": {"pam": {"name": "Pam"}}, "count": 1}
    assert frame.event == "pusher_internal:subscription_succeeded"
    assert json.loads(frame.data) == {"presence": roster}


async def test_signin_presence_member_added_info(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Other members see the signed-in user's id and user_info in member_added."""
    channel = unique("presence-signin-")
    observer = await clients.established(shared_server.ws_url())
    observer_data = compact({"user_id": "observer"})
    await observer.subscribe(
        channel,
        auth=channel_auth(
            DEFAULT_APP.key,
            DEFAULT_APP.secret,
            observer.socket_id,
            channel,
            observer_data,
        ),
        channel_data=observer_data,
    )
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "pam", user_info={"name": "Pam"})
    auth = channel_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, channel)
    await client.subscribe(channel, auth=auth)
    frame = await observer.recv_frame()
    assert frame.text == event_frame(
        "pusher_internal:member_added",
        channel,
        compact({"user_id": "pam", "user_info": {"name": "Pam"}}),
    )


async def test_signin_presence_channel_data_wins(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A signed-in socket that sends channel_data joins as that member."""
    channel = unique("presence-signin-")
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "pam")
    channel_data = compact({"user_id": "other", "user_info": None})
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, channel, channel_data
    )
    frame = await client.subscribe(channel, auth=auth, channel_data=channel_data)
    assert json.loads(frame.data)["presence"]["ids"] == ["other"]


async def test_signin_presence_needs_channel_auth(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Sign-in alone does not replace the channel auth token for presence."""
    channel = unique("presence-signin-")
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, "pam")
    frame = await client.subscribe(channel, auth=f"{DEFAULT_APP.key}:{'0' * 64}")
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_signin_bad_input_spares_bystander(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """Oversized user_info and an over-long watchlist affect only their sender."""
    channel = unique("signin-bystander-")
    bystander = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(bystander, unique("bystander-"), USER_LIMITS_APP)
    await bystander.subscribe(channel)

    oversized = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    rejected = await sign_in_as(
        oversized, unique("big-"), USER_LIMITS_APP, user_info=user_info_of_size(500)
    )
    assert error_code(rejected) == 4009
    watching = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(
        watching,
        unique("watcher-"),
        USER_LIMITS_APP,
        watchlist=[unique("w-") for _ in range(50)],
    )
    limit_error = await watching.recv_frame()
    assert error_code(limit_error) == 4302

    api = shared_server.api(USER_LIMITS_APP)
    await api.trigger({"name": "still-here", "channel": channel, "data": "ok"})
    frame = await bystander.recv_frame()
    assert frame.text == event_frame("still-here", channel, "ok")
    barrier = await bystander.ping_barrier()
    assert barrier.text == PONG_TEXT
