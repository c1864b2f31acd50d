"""POST /apps/{app_id}/users/{user_id}/terminate_connections, and the path
without /apps/{app_id} that pusher-http-python 3.3 sends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

from clarion_e2e import (
    PONG_TEXT,
    ApiClient,
    ApiResponse,
    WireClient,
    channel_auth,
    compact,
    error_frame,
    event_frame,
    sdk_client,
    sign_in,
    watchlist_frame,
)
from clarion_launch import (
    DEFAULT_APP,
    DISABLED_APP,
    OTHER_APP,
    AppCredentials,
    ClientOpener,
    RunningServer,
)

TERMINATED = error_frame(4009, "You got disconnected by the app")


async def open_signed_in(
    server: RunningServer,
    clients: ClientOpener,
    user_id: str,
    app: AppCredentials = DEFAULT_APP,
    **fields: object,
) -> WireClient:
    """Open a socket signed in as `user_id`."""
    client = await clients.established(server.ws_url(app.key))
    frame = await sign_in(client, app.key, app.secret, {"id": user_id, **fields})
    assert frame.event == "pusher:signin_success"
    return client


async def terminate(api: ApiClient, user_id: str) -> ApiResponse:
    """POST terminate_connections on the documented path, from a worker thread."""
    path = api.app_path(f"/users/{user_id}/terminate_connections")
    return await asyncio.to_thread(api.post_json, path, {})


async def terminate_quirk_path(api: ApiClient, user_id: str) -> ApiResponse:
    """POST terminate_connections on /users/... without /apps/{app_id}."""
    path = f"/users/{user_id}/terminate_connections"
    return await asyncio.to_thread(api.post_json, path, {})


async def assert_terminated(client: WireClient) -> None:
    """Check the 4009 error frame and the 4009 close of a terminated socket."""
    frame = await client.recv_frame()
    assert frame.text == TERMINATED
    code, _ = await client.wait_closed()
    assert code == 4009


async def assert_open(client: WireClient) -> None:
    barrier = await client.ping_barrier()
    assert barrier.text == PONG_TEXT


# The documented path


async def test_terminate_returns_empty_object(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The request returns 200 with the JSON body {}."""
    user_id = unique("t-")
    await open_signed_in(shared_server, clients, user_id)
    response = await terminate(api, user_id)
    assert response.status == 200
    assert response.json() == {}


async def test_terminate_unknown_user_ok(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """A user with no connection still gets 200 {}."""
    response = await terminate(api, unique("nobody-"))
    assert response.status == 200
    assert response.json() == {}


async def test_terminate_closes_every_connection(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Each connection of the user gets error 4009, then close 4009."""
    user_id = unique("t-")
    tabs = [await open_signed_in(shared_server, clients, user_id) for _ in range(3)]
    await terminate(api, user_id)
    for tab in tabs:
        await assert_terminated(tab)


async def test_terminate_other_users_untouched(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Other signed-in users and anonymous sockets stay open and keep receiving."""
    channel = unique("terminate-")
    user_id = unique("t-")
    await open_signed_in(shared_server, clients, user_id)
    other_user = await open_signed_in(shared_server, clients, unique("t-"))
    anonymous = await clients.established(shared_server.ws_url())
    for client in (other_user, anonymous):
        await client.subscribe(channel)

    await terminate(api, user_id)
    await api.trigger({"name": "after", "channel": channel, "data": "d"})
    for client in (other_user, anonymous):
        frame = await client.recv_frame()
        assert frame.text == event_frame("after", channel, "d")
        await assert_open(client)


async def test_terminate_presence_member_only_untouched(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A presence member with the user id but no sign-in stays open."""
    user_id = unique("t-")
    channel = unique("presence-terminate-")
    member = await clients.established(shared_server.ws_url())
    channel_data = compact({"user_id": user_id})
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, member.socket_id, channel, channel_data
    )
    await member.subscribe(channel, auth=auth, channel_data=channel_data)
    await terminate(api, user_id)
    await assert_open(member)


async def test_terminate_presence_member_removed(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A terminated user leaves its presence channels (member_removed)."""
    user_id = unique("t-")
    channel = unique("presence-terminate-")
    observer = await clients.established(shared_server.ws_url())
    observer_data = compact({"user_id": unique("observer-")})
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
    user = await open_signed_in(shared_server, clients, user_id)
    auth = channel_auth(DEFAULT_APP.key, DEFAULT_APP.secret, user.socket_id, channel)
    await user.subscribe(channel, auth=auth)
    added = await observer.recv_frame()
    assert added.event == "pusher_internal:member_added"

    await terminate(api, user_id)
    removed = await observer.recv_frame()
    assert removed.text == event_frame(
        "pusher_internal:member_removed", channel, compact({"user_id": user_id})
    )


async def test_terminate_watchers_see_offline(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Watchers of a terminated user get its offline event."""
    user_id = unique("t-")
    await open_signed_in(shared_server, clients, user_id)
    watcher = await open_signed_in(
        shared_server, clients, unique("watcher-"), watchlist=[user_id]
    )
    report = await watcher.recv_frame()
    assert report.text == watchlist_frame([user_id], [])

    await terminate(api, user_id)
    frame = await watcher.recv_frame()
    assert frame.text == watchlist_frame([], [user_id])


async def test_terminate_user_signs_in_again(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A new connection may sign in as the user after termination."""
    user_id = unique("t-")
    old = await open_signed_in(shared_server, clients, user_id)
    await terminate(api, user_id)
    await assert_terminated(old)
    new = await open_signed_in(shared_server, clients, user_id)
    await assert_open(new)


async def test_terminate_apps_isolated(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The same user id on another app stays connected."""
    user_id = unique("t-")
    other_app_user = await open_signed_in(shared_server, clients, user_id, OTHER_APP)
    own = await open_signed_in(shared_server, clients, user_id)
    await terminate(api, user_id)
    await assert_terminated(own)
    await assert_open(other_app_user)


async def test_terminate_escaped_user_id(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A percent-encoded user id in the path names the decoded user."""
    user_id = unique("t@")
    client = await open_signed_in(shared_server, clients, user_id)
    response = await terminate(api, user_id.replace("@", "%40"))
    assert response.status == 200, response.body
    await assert_terminated(client)


# The path that pusher-http-python sends


async def test_terminate_sdk_closes_connections(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The official Python SDK's terminate_user_connections works end to end."""
    user_id = unique("t-")
    client = await open_signed_in(shared_server, clients, user_id)
    result = await asyncio.to_thread(
        sdk_client(api).terminate_user_connections, user_id
    )
    assert result == {}
    await assert_terminated(client)


async def test_terminate_quirk_path_uses_key_app(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """Without /apps/{app_id}, the app named by auth_key is the one affected."""
    user_id = unique("t-")
    other_app_user = await open_signed_in(shared_server, clients, user_id, OTHER_APP)
    default_app_user = await open_signed_in(shared_server, clients, user_id)
    response = await terminate_quirk_path(shared_server.api(OTHER_APP), user_id)
    assert response.status == 200
    await assert_terminated(other_app_user)
    await assert_open(default_app_user)


async def test_terminate_quirk_unknown_key_404(
    shared_server: RunningServer, unique: Callable[[str], str]
) -> None:
    """Without /apps/{app_id}, an auth_key of no app gives 404."""
    stranger = dataclasses.replace(shared_server.api(), key="no-such-key")
    response = await terminate_quirk_path(stranger, unique("t-"))
    assert response.status == 404


async def test_terminate_quirk_bad_signature_401(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """Without /apps/{app_id}, a wrong secret gives 401 and closes nothing."""
    user_id = unique("t-")
    client = await open_signed_in(shared_server, clients, user_id)
    forger = dataclasses.replace(shared_server.api(), secret="wrong-secret")
    response = await terminate_quirk_path(forger, user_id)
    assert response.status == 401
    await assert_open(client)


# Rejected requests


async def test_terminate_bad_signature_401(
    shared_server: RunningServer,
    clients: ClientOpener,
    unique: Callable[[str], str],
) -> None:
    """A wrong secret gives 401 and closes nothing."""
    user_id = unique("t-")
    client = await open_signed_in(shared_server, clients, user_id)
    forger = dataclasses.replace(shared_server.api(), secret="wrong-secret")
    response = await terminate(forger, user_id)
    assert response.status == 401
    await assert_open(client)


async def test_terminate_signed_for_other_user_401(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A signature for another user's path does not terminate this user."""
    user_id = unique("t-")
    client = await open_signed_in(shared_server, clients, user_id)
    path = api.app_path(f"/users/{user_id}/terminate_connections")
    signed_path = api.app_path(f"/users/{unique('t-')}/terminate_connections")
    response = await asyncio.to_thread(
        api.post_json, path, {}, signing_path=signed_path
    )
    assert response.status == 401
    await assert_open(client)


async def test_terminate_get_405(api: ApiClient, unique: Callable[[str], str]) -> None:
    """GET on the terminate route gives 405 naming POST."""
    path = api.app_path(f"/users/{unique('t-')}/terminate_connections")
    response = await asyncio.to_thread(api.get, path)
    assert response.status == 405
    assert response.headers.get("allow") == "POST"


async def test_terminate_disabled_app_403(
    shared_server: RunningServer, unique: Callable[[str], str]
) -> None:
    """A disabled app gets 403."""
    response = await terminate(shared_server.api(DISABLED_APP), unique("t-"))
    assert response.status == 403


async def test_terminate_unknown_app_404(
    shared_server: RunningServer, unique: Callable[[str], str]
) -> None:
    """An unknown app id gets 404."""
    stranger = dataclasses.replace(shared_server.api(), app_id="999")
    response = await terminate(stranger, unique("t-"))
    assert response.status == 404


async def test_terminate_missing_user_id_404(api: ApiClient) -> None:
    """A path with no user id segment matches no route."""
    path = api.app_path("/users/terminate_connections")
    response = await asyncio.to_thread(api.post_json, path, {})
    assert response.status == 404


async def test_terminate_empty_user_id_400(api: ApiClient) -> None:
    """An empty user id segment gives 400."""
    path = api.app_path("/users//terminate_connections")
    response = await asyncio.to_thread(api.post_json, path, {})
    assert response.status == 400
