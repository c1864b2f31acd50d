"""Watchlist events: online and offline reports for the ids a signed-in user
watches, their limit and the per-app switch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    Frame,
    WireClient,
    channel_auth,
    compact,
    poll_until,
    sign_in,
    signin_auth,
    signin_success_frame,
    watchlist_frame,
)
from clarion_launch import (
    DEFAULT_APP,
    NO_WATCHLIST_APP,
    OTHER_APP,
    USER_LIMITS_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)

# User ids are shared by every test on the shared server, so each test draws
# its own through `unique`.


async def sign_in_as(
    client: WireClient, user_id: str, app: AppCredentials = DEFAULT_APP, **fields: Any
) -> Frame:
    """Sign `client` in as `user_id` with extra user_data fields."""
    return await sign_in(client, app.key, app.secret, {"id": user_id, **fields})


async def open_signed_in(
    server: RunningServer,
    clients: ClientOpener,
    user_id: str,
    app: AppCredentials = DEFAULT_APP,
) -> WireClient:
    """Open a socket signed in as `user_id`, with no watchlist."""
    client = await clients.established(server.ws_url(app.key))
    frame = await sign_in_as(client, user_id, app)
    assert frame.event == "pusher:signin_success"
    return client


async def open_watcher(
    server: RunningServer,
    clients: ClientOpener,
    user_id: str,
    watchlist: list[str],
    app: AppCredentials = DEFAULT_APP,
) -> WireClient:
    """Open a socket signed in with a watchlist and read its first report."""
    client = await clients.established(server.ws_url(app.key))
    frame = await sign_in_as(client, user_id, app, watchlist=watchlist)
    assert frame.event == "pusher:signin_success"
    report = await client.recv_frame()
    assert report.event == "pusher_internal:watchlist_events"
    return client


async def close_on_server(client: WireClient, api: ApiClient, channel: str) -> None:
    """Close `client`, whose only subscription is `channel`, and wait until the
    server has cleaned it up, which empties the channel."""
    await client.close()

    def probe() -> Any:
        path = api.app_path(f"/channels/{channel}")
        return api.get(path, {"info": "subscription_count"}).json()

    info = await poll_until(probe, lambda result: not result["occupied"])
    assert info == {"occupied": False, "subscription_count": 0}


# The report that follows sign-in


async def test_watchlist_all_offline_report(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """With nobody online, signin_success is followed by one offline report."""
    first, second = unique("w-"), unique("w-")
    client = await clients.established(shared_server.ws_url())
    user_data = compact({"id": unique("watcher-"), "watchlist": [first, second]})
    auth = signin_auth(DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id, user_data)
    frame = await client.signin(user_data, auth)
    assert frame.text == signin_success_frame(user_data)
    report = await client.recv_frame()
    assert report.text == watchlist_frame([], [first, second])


async def test_watchlist_mixed_report(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The report lists online ids and offline ids in watchlist order."""
    offline_a, online, offline_b = unique("w-"), unique("w-"), unique("w-")
    await open_signed_in(shared_server, clients, online)
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(
        client, unique("watcher-"), watchlist=[offline_a, online, offline_b]
    )
    report = await client.recv_frame()
    assert report.text == watchlist_frame([online], [offline_a, offline_b])


async def test_watchlist_all_online_report(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """With everyone online, the report has no offline element."""
    watched = unique("w-")
    await open_signed_in(shared_server, clients, watched)
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, unique("watcher-"), watchlist=[watched])
    report = await client.recv_frame()
    assert report.text == watchlist_frame([watched], [])


async def test_watchlist_absent_sends_no_report(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A sign-in without a watchlist gets signin_success and nothing else."""
    client = await open_signed_in(shared_server, clients, unique("plain-"))
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_report_only_to_signer(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Another connection of the same user gets no copy of the report."""
    user_id = unique("watcher-")
    other = await open_signed_in(shared_server, clients, user_id)
    await open_watcher(shared_server, clients, user_id, [unique("w-")])
    barrier = await other.ping_barrier()
    assert barrier.text == PONG_TEXT


# Online and offline changes


async def test_watchlist_online_on_first_signin(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A watched user's first signed-in connection sends one online event."""
    watched = unique("w-")
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])
    await open_signed_in(shared_server, clients, watched)
    frame = await watcher.recv_frame()
    assert frame.text == watchlist_frame([watched], [])


async def test_watchlist_second_connection_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A second connection of an online user sends no online event."""
    watched = unique("w-")
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])
    await open_signed_in(shared_server, clients, watched)
    await watcher.recv_frame()
    await open_signed_in(shared_server, clients, watched)
    barrier = await watcher.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_anonymous_connection_silent(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """A presence member with the watched id but no sign-in is not online."""
    watched = unique("w-")
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])
    anonymous = await clients.established(shared_server.ws_url())
    channel = unique("presence-watch-")
    channel_data = compact({"user_id": watched})
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, anonymous.socket_id, channel, channel_data
    )
    joined = await anonymous.subscribe(channel, auth=auth, channel_data=channel_data)
    assert joined.event == "pusher_internal:subscription_succeeded"
    barrier = await watcher.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_offline_after_last_close(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Closing one of two connections is silent, and closing the last sends offline."""
    watched = unique("w-")
    first_channel, second_channel = unique("watch-a-"), unique("watch-b-")
    first = await open_signed_in(shared_server, clients, watched)
    await first.subscribe(first_channel)
    second = await open_signed_in(shared_server, clients, watched)
    await second.subscribe(second_channel)
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])

    await close_on_server(first, api, first_channel)
    after_first = await watcher.ping_barrier()
    assert after_first.text == PONG_TEXT

    await close_on_server(second, api, second_channel)
    frame = await watcher.recv_frame()
    assert frame.text == watchlist_frame([], [watched])


async def test_watchlist_online_again_after_offline(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A user who went offline sends online again on the next sign-in."""
    watched = unique("w-")
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])
    first = await open_signed_in(shared_server, clients, watched)
    await watcher.recv_frame()
    await first.close()
    offline = await watcher.recv_frame()
    assert offline.text == watchlist_frame([], [watched])
    await open_signed_in(shared_server, clients, watched)
    online = await watcher.recv_frame()
    assert online.text == watchlist_frame([watched], [])


async def test_watchlist_every_watcher_connection(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Every signed-in connection of every watcher gets the online event."""
    watched = unique("w-")
    alice = unique("watcher-")
    watchers = [
        await open_watcher(shared_server, clients, alice, [watched]),
        await open_watcher(shared_server, clients, alice, [watched]),
        await open_watcher(shared_server, clients, unique("watcher-"), [watched]),
    ]
    await open_signed_in(shared_server, clients, watched)
    for index, watcher in enumerate(watchers):
        frame = await watcher.recv_frame()
        assert frame.text == watchlist_frame([watched], []), f"watcher {index}"


async def test_watchlist_unwatched_user_silent(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """A user outside the watchlist signing in sends nothing to the watcher."""
    watcher = await open_watcher(
        shared_server, clients, unique("watcher-"), [unique("w-")]
    )
    await open_signed_in(shared_server, clients, unique("stranger-"))
    barrier = await watcher.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_apps_isolated(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The same user id signing in on another app is not reported."""
    watched = unique("w-")
    watcher = await open_watcher(shared_server, clients, unique("watcher-"), [watched])
    await open_signed_in(shared_server, clients, watched, OTHER_APP)
    barrier = await watcher.ping_barrier()
    assert barrier.text == PONG_TEXT


# Limit on the number of watched ids (3 for USER_LIMITS_APP)


async def test_watchlist_over_limit_frames(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Over the limit: signin_success, then error 4302, then the kept ids' report."""
    watchlist = [unique("w-") for _ in range(5)]
    kept_ids, dropped_ids = watchlist[:3], watchlist[3:]
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    success = await sign_in_as(
        client, unique("watcher-"), USER_LIMITS_APP, watchlist=watchlist
    )
    error = await client.recv_frame()
    report = await client.recv_frame()

    assert success.event == "pusher:signin_success"
    assert error.event == "pusher:error"
    assert error.data["code"] == 4302
    for user_id in kept_ids:
        assert user_id in error.data["message"], f"kept id {user_id} not named"
    for user_id in dropped_ids:
        assert user_id not in error.data["message"], f"dropped id {user_id} named"
    assert report.text == watchlist_frame([], kept_ids)


async def test_watchlist_over_limit_keeps_socket(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """The 4302 error does not close the socket."""
    watchlist = [unique("w-") for _ in range(4)]
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(client, unique("watcher-"), USER_LIMITS_APP, watchlist=watchlist)
    await client.recv_frame()
    await client.recv_frame()
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_dropped_ids_unwatched(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """An id beyond the limit sends no online event when it signs in."""
    watchlist = [unique("w-") for _ in range(4)]
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(client, unique("watcher-"), USER_LIMITS_APP, watchlist=watchlist)
    await client.recv_frame()
    await client.recv_frame()
    await open_signed_in(shared_server, clients, watchlist[3], USER_LIMITS_APP)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_at_limit_no_error(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Exactly the limit of ids gets the report and no error."""
    watchlist = [unique("w-") for _ in range(3)]
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(client, unique("watcher-"), USER_LIMITS_APP, watchlist=watchlist)
    report = await client.recv_frame()
    assert report.text == watchlist_frame([], watchlist)


async def test_watchlist_duplicates_count_once(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """Repeated ids count once toward the limit and are reported once."""
    first, second, third = unique("w-"), unique("w-"), unique("w-")
    client = await clients.established(shared_server.ws_url(USER_LIMITS_APP.key))
    await sign_in_as(
        client,
        unique("watcher-"),
        USER_LIMITS_APP,
        watchlist=[first, first, second, third, second],
    )
    report = await client.recv_frame()
    assert report.text == watchlist_frame([], [first, second, third])


async def test_watchlist_default_limit_100(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """By default 100 ids are kept and the 101st is reported dropped."""
    prefix = unique("w-")
    watchlist = [f"{prefix}-{index}" for index in range(101)]
    client = await clients.established(shared_server.ws_url())
    await sign_in_as(client, unique("watcher-"), watchlist=watchlist)
    error = await client.recv_frame()
    report = await client.recv_frame()
    assert error.event == "pusher:error"
    assert error.data["code"] == 4302
    assert report.text == watchlist_frame([], watchlist[:100])


# The per-app switch


async def test_watchlist_disabled_app_no_report(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """With watchlist events off, sign-in with a watchlist sends no report."""
    client = await clients.established(shared_server.ws_url(NO_WATCHLIST_APP.key))
    frame = await sign_in_as(
        client, unique("watcher-"), NO_WATCHLIST_APP, watchlist=[unique("w-")]
    )
    assert frame.event == "pusher:signin_success"
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


async def test_watchlist_disabled_app_no_online(
    shared_server: RunningServer, clients: ClientOpener, unique: Callable[[str], str]
) -> None:
    """With watchlist events off, a watched user signing in sends nothing."""
    watched = unique("w-")
    client = await clients.established(shared_server.ws_url(NO_WATCHLIST_APP.key))
    await sign_in_as(client, unique("watcher-"), NO_WATCHLIST_APP, watchlist=[watched])
    await open_signed_in(shared_server, clients, watched, NO_WATCHLIST_APP)
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT
