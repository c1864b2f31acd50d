"""Presence channels: rosters, member events and per-user bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    WireClient,
    channel_auth,
    compact,
    event_frame,
    poll_until,
    sdk_client,
    subscription_error_frame,
    succeeded_frame,
)
from clarion_launch import DEFAULT_APP, SMALL_LIMITS_APP, ClientOpener, RunningServer


def member_data(user_id: Any, user_info: Any = None, *, with_info: bool = True) -> str:
    """Build a compact channel_data string."""
    member: dict[str, Any] = {"user_id": user_id}
    if with_info:
        member["user_info"] = user_info
    return compact(member)


async def join(
    client: WireClient,
    channel: str,
    channel_data: str,
    secret: str = DEFAULT_APP.secret,
    key: str = DEFAULT_APP.key,
) -> Any:
    """Subscribe to a presence channel with a correct signature."""
    auth = channel_auth(key, secret, client.socket_id or "", channel, channel_data)
    return await client.subscribe(channel, auth=auth, channel_data=channel_data)


def roster(frame: Any) -> dict[str, Any]:
    """Decode the presence roster from a subscription_succeeded frame."""
    return json.loads(frame.data)["presence"]


def member_added_frame(channel: str, user_id: str, user_info: Any) -> str:
    data = compact({"user_id": user_id, "user_info": user_info})
    return event_frame("pusher_internal:member_added", channel, data)


def member_removed_frame(channel: str, user_id: str) -> str:
    data = compact({"user_id": user_id})
    return event_frame("pusher_internal:member_removed", channel, data)


async def wait_for_subscriptions(api: ApiClient, channel: str, count: int) -> Any:
    """Poll the channel info until the server reports `count` sockets."""

    def probe() -> Any:
        path = api.app_path(f"/channels/{channel}")
        return api.get(path, {"info": "subscription_count"}).json()

    return await poll_until(
        probe, lambda info: info.get("subscription_count", 0) == count
    )


async def test_presence_roster_single_member(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The first member gets a roster of itself as an exact JSON string."""
    client = await clients.established(shared_server.ws_url())
    channel = unique("presence-")
    frame = await join(client, channel, member_data("1", {"name": "A"}))
    data = compact(
        {"presence": {"ids": ["1"], "hash": {"1": {"name": "A"}}, "count": 1}}
    )
    assert frame.text == succeeded_frame(channel, data)


async def test_presence_roster_lists_everyone(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A joining member receives all members, itself included."""
    channel = unique("presence-")
    first = await clients.established(shared_server.ws_url())
    await join(first, channel, member_data("1", {"name": "A"}))
    second = await clients.established(shared_server.ws_url())
    frame = await join(second, channel, member_data("2", {"name": "B"}))
    members = roster(frame)
    assert sorted(members["ids"]) == ["1", "2"]
    assert members["hash"] == {"1": {"name": "A"}, "2": {"name": "B"}}
    assert members["count"] == 2


async def test_presence_numeric_user_id_canonical(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An integer user_id appears as its decimal string everywhere."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    frame = await join(client, channel, '{"user_id":10,"user_info":{"name":"N"}}')
    data = compact(
        {"presence": {"ids": ["10"], "hash": {"10": {"name": "N"}}, "count": 1}}
    )
    assert frame.text == succeeded_frame(channel, data)


async def test_presence_missing_user_info_null(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A member without user_info is in `hash` with the value null."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    frame = await join(client, channel, member_data("7", with_info=False))
    data = compact({"presence": {"ids": ["7"], "hash": {"7": None}, "count": 1}})
    assert frame.text == succeeded_frame(channel, data)


async def test_presence_sdk_spaced_channel_data(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """channel_data with the Python SDK's spacing is verified as sent."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    token = sdk_client(api).authenticate(
        channel, client.socket_id, {"user_id": 10, "user_info": {"name": "Mr. Pusher"}}
    )
    assert ": " in token["channel_data"]
    frame = await client.subscribe(
        channel, auth=token["auth"], channel_data=token["channel_data"]
    )
    assert frame.event == "pusher_internal:subscription_succeeded"
    assert roster(frame)["hash"] == {"10": {"name": "Mr. Pusher"}}


async def test_presence_member_added_exact(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Existing members get member_added with a JSON string payload."""
    channel = unique("presence-")
    first = await clients.established(shared_server.ws_url())
    await join(first, channel, member_data("1", {"name": "A"}))
    second = await clients.established(shared_server.ws_url())
    await join(second, channel, member_data("3", {"name": "C"}))
    frame = await first.recv_frame()
    assert frame.text == member_added_frame(channel, "3", {"name": "C"})


async def test_presence_member_added_numeric_id(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """member_added carries an integer user_id as its decimal string."""
    channel = unique("presence-")
    first = await clients.established(shared_server.ws_url())
    await join(first, channel, member_data("1"))
    second = await clients.established(shared_server.ws_url())
    await join(second, channel, '{"user_id":5,"user_info":{"n":5}}')
    frame = await first.recv_frame()
    assert frame.text == member_added_frame(channel, "5", {"n": 5})


async def test_presence_member_added_not_to_joiner(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The joining socket does not get its own member_added."""
    channel = unique("presence-")
    first = await clients.established(shared_server.ws_url())
    await join(first, channel, member_data("1"))
    second = await clients.established(shared_server.ws_url())
    await join(second, channel, member_data("2"))
    frame = await second.ping_barrier()
    assert frame.text == PONG_TEXT


async def test_presence_member_removed_on_close(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Closing a member's only socket sends member_removed to the others."""
    channel = unique("presence-")
    stays = await clients.established(shared_server.ws_url())
    await join(stays, channel, member_data("1"))
    leaves = await clients.established(shared_server.ws_url())
    await join(leaves, channel, member_data("2"))
    added = await stays.recv_frame()
    assert added.event == "pusher_internal:member_added"
    await leaves.close()
    frame = await stays.recv_frame()
    assert frame.text == member_removed_frame(channel, "2")


async def test_presence_member_removed_on_unsubscribe(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """pusher:unsubscribe of a member's only socket sends member_removed."""
    channel = unique("presence-")
    stays = await clients.established(shared_server.ws_url())
    await join(stays, channel, member_data("1"))
    leaves = await clients.established(shared_server.ws_url())
    await join(leaves, channel, member_data("2"))
    await stays.recv_frame()
    await leaves.unsubscribe(channel)
    frame = await stays.recv_frame()
    assert frame.text == member_removed_frame(channel, "2")


async def test_presence_same_user_one_member(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A second socket of the same user adds no member, so the roster count is 1."""
    channel = unique("presence-")
    tab_one = await clients.established(shared_server.ws_url())
    await join(tab_one, channel, member_data("42", {"name": "A"}))
    tab_two = await clients.established(shared_server.ws_url())
    frame = await join(tab_two, channel, member_data("42", {"name": "A"}))
    members = roster(frame)
    assert members["ids"] == ["42"]
    assert members["count"] == 1
    barrier = await tab_one.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_presence_same_user_no_added_to_others(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Another member receives member_added only for the user's first socket."""
    channel = unique("presence-")
    observer = await clients.established(shared_server.ws_url())
    await join(observer, channel, member_data("1"))
    tab_one = await clients.established(shared_server.ws_url())
    await join(tab_one, channel, member_data("42", {"name": "A"}))
    first = await observer.recv_frame()
    assert first.text == member_added_frame(channel, "42", {"name": "A"})
    tab_two = await clients.established(shared_server.ws_url())
    await join(tab_two, channel, member_data("42", {"name": "A"}))
    barrier = await observer.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_presence_removed_after_last_socket(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """member_removed comes only when the user's last socket leaves."""
    channel = unique("presence-")
    observer = await clients.established(shared_server.ws_url())
    await join(observer, channel, member_data("1"))
    tab_one = await clients.established(shared_server.ws_url())
    await join(tab_one, channel, member_data("42"))
    tab_two = await clients.established(shared_server.ws_url())
    await join(tab_two, channel, member_data("42"))
    added = await observer.recv_frame()
    assert added.event == "pusher_internal:member_added"

    await tab_one.close()
    info = await wait_for_subscriptions(api, channel, 2)
    assert info["subscription_count"] == 2
    barrier = await observer.ping_barrier()
    assert barrier.text == PONG_TEXT

    await tab_two.unsubscribe(channel)
    frame = await observer.recv_frame()
    assert frame.text == member_removed_frame(channel, "42")


async def test_presence_first_user_info_kept(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A second socket with other user_info does not change the member's info."""
    channel = unique("presence-")
    tab_one = await clients.established(shared_server.ws_url())
    await join(tab_one, channel, member_data("42", {"name": "first"}))
    tab_two = await clients.established(shared_server.ws_url())
    await join(tab_two, channel, member_data("42", {"name": "second"}))
    newcomer = await clients.established(shared_server.ws_url())
    frame = await join(newcomer, channel, member_data("7"))
    assert roster(frame)["hash"]["42"] == {"name": "first"}


async def test_presence_member_limit_4100(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A new user over max_presence_members (2 here) gets LimitReached 4100."""
    app = SMALL_LIMITS_APP
    url = shared_server.ws_url(key=app.key)
    # The small app allows channel names of at most 20 characters.
    channel = unique("presence-")[:20]
    for user_id in ("1", "2"):
        member = await clients.established(url)
        frame = await join(member, channel, member_data(user_id), app.secret, app.key)
        assert frame.event == "pusher_internal:subscription_succeeded"
    third = await clients.established(url)
    frame = await join(third, channel, member_data("3"), app.secret, app.key)
    assert frame.event == "pusher:subscription_error"
    assert list(frame.message) == ["event", "channel", "data"]
    assert frame.message["channel"] == channel
    assert frame.data["type"] == "LimitReached"
    assert frame.data["status"] == 4100


async def test_presence_full_channel_admits_member(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A new socket of a user already present is admitted when the channel is full."""
    app = SMALL_LIMITS_APP
    url = shared_server.ws_url(key=app.key)
    # The small app allows channel names of at most 20 characters.
    channel = unique("presence-")[:20]
    for user_id in ("1", "2"):
        member = await clients.established(url)
        await join(member, channel, member_data(user_id), app.secret, app.key)
    extra_tab = await clients.established(url)
    frame = await join(extra_tab, channel, member_data("2"), app.secret, app.key)
    assert frame.event == "pusher_internal:subscription_succeeded"
    assert roster(frame)["count"] == 2


async def test_presence_user_info_over_1kb_4301(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """user_info whose JSON exceeds 1024 bytes gets LimitReached 4301."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    info = "x" * 1030
    frame = await join(client, channel, member_data("1", info))
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "LimitReached"
    assert frame.data["status"] == 4301


async def test_presence_user_info_at_1kb_accepted(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """user_info whose JSON is exactly 1024 bytes is accepted."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    info = "x" * 1022
    assert len(compact(info).encode()) == 1024
    frame = await join(client, channel, member_data("1", info))
    assert frame.event == "pusher_internal:subscription_succeeded"


async def test_presence_user_id_over_128_4301(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A user_id longer than 128 characters gets LimitReached 4301."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    frame = await join(client, channel, member_data("u" * 129))
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "LimitReached"
    assert frame.data["status"] == 4301


async def test_presence_user_id_at_128_accepted(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A user_id of exactly 128 characters is accepted."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    frame = await join(client, channel, member_data("u" * 128))
    assert frame.event == "pusher_internal:subscription_succeeded"


@pytest.mark.parametrize(
    "channel_data",
    [
        "not json",
        "[1,2]",
        '"just a string"',
        '{"user_info":{"name":"A"}}',
        '{"user_id":""}',
        '{"user_id":null}',
        '{"user_id":true}',
        '{"user_id":{"id":1}}',
    ],
)
async def test_presence_bad_channel_data_400(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
    channel_data: str,
) -> None:
    """Signed channel_data without a usable user_id gets InvalidChannelData 400."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    frame = await join(client, channel, channel_data)
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "InvalidChannelData"
    assert frame.data["status"] == 400


async def test_presence_without_channel_data_autherror(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A presence subscribe without channel_data on an anonymous socket fails."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    auth = channel_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, channel)
    frame = await client.subscribe(channel, auth=auth)
    assert frame.event == "pusher:subscription_error"
    assert frame.data["type"] == "AuthError"
    assert frame.data["status"] == 401


async def test_presence_channel_data_tampered_autherror(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """channel_data that differs from the signed string gives AuthError."""
    channel = unique("presence-")
    client = await clients.established(shared_server.ws_url())
    signed = member_data("1")
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id or "", channel, signed
    )
    sent = member_data("2")
    frame = await client.subscribe(channel, auth=auth, channel_data=sent)
    message = (
        "Invalid signature: Expected HMAC SHA256 hex digest of "
        f"{client.socket_id}:{channel}:{sent}, but got {auth.split(':', 1)[1]}"
    )
    assert frame.text == subscription_error_frame(channel, "AuthError", message, 401)


async def test_presence_users_api_after_leave(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The users API drops a user once the last socket has left."""
    channel = unique("presence-")
    stays = await clients.established(shared_server.ws_url())
    await join(stays, channel, member_data("1"))
    leaves = await clients.established(shared_server.ws_url())
    await join(leaves, channel, member_data("2"))
    await stays.recv_frame()
    await leaves.close()
    removed = await stays.recv_frame()
    assert removed.text == member_removed_frame(channel, "2")
    response = await api.get_json(f"/channels/{channel}/users")
    assert response.json() == {"users": [{"id": "1"}]}
