"""HTTP API: GET channels, channels/{name} and channels/{name}/users."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from clarion_e2e import (
    ApiClient,
    ApiResponse,
    WireClient,
    channel_auth,
    compact,
    sdk_client,
)
from clarion_launch import DEFAULT_APP, ClientOpener, RunningServer


async def join_public(client: WireClient, channel: str) -> None:
    frame = await client.subscribe(channel)
    assert frame.event == "pusher_internal:subscription_succeeded"


async def join_presence(client: WireClient, channel: str, user_id: str) -> None:
    data = compact({"user_id": user_id})
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id or "", channel, data
    )
    frame = await client.subscribe(channel, auth=auth, channel_data=data)
    assert frame.event == "pusher_internal:subscription_succeeded"


async def presence_sockets(
    server: RunningServer, clients: ClientOpener, channel: str, user_ids: list[str]
) -> list[WireClient]:
    """Open one socket per entry of `user_ids`, each joined to `channel`."""
    sockets = []
    for user_id in user_ids:
        client = await clients.established(server.ws_url())
        await join_presence(client, channel, user_id)
        sockets.append(client)
    return sockets


def assert_error_body(response: ApiResponse, status: int) -> None:
    assert response.status == status
    body = response.json()
    assert isinstance(body.get("error"), str)
    assert body.get("code") == status


async def test_channels_lists_occupied_with_prefix(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """filter_by_prefix returns only occupied matching channels, each as {}."""
    prefix = unique("list-")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, f"{prefix}-a")
    await join_public(client, f"{prefix}-b")
    await join_public(client, unique("elsewhere-"))
    response = await api.get_json("/channels", {"filter_by_prefix": prefix})
    assert response.status == 200
    assert response.json() == {"channels": {f"{prefix}-a": {}, f"{prefix}-b": {}}}


async def test_channels_without_filter_includes_ours(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Without a filter every occupied channel is listed."""
    channel = unique("unfiltered-")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, channel)
    response = await api.get_json("/channels")
    assert response.status == 200
    assert response.json()["channels"][channel] == {}


async def test_channels_omits_vacated(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A channel whose last subscriber left is not listed."""
    prefix = unique("vacated-")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, prefix)
    await client.unsubscribe(prefix)
    await client.ping_barrier()
    response = await api.get_json("/channels", {"filter_by_prefix": prefix})
    assert response.json() == {"channels": {}}


async def test_channels_user_count_presence(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """info=user_count with a presence- prefix counts distinct users."""
    prefix = unique("presence-count-")
    await presence_sockets(shared_server, clients, f"{prefix}-a", ["1", "1", "2"])
    await presence_sockets(shared_server, clients, f"{prefix}-b", ["9"])
    response = await api.get_json(
        "/channels", {"filter_by_prefix": prefix, "info": "user_count"}
    )
    assert response.status == 200
    assert response.json() == {
        "channels": {f"{prefix}-a": {"user_count": 2}, f"{prefix}-b": {"user_count": 1}}
    }


async def test_channels_user_and_subscription_count(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """info=user_count,subscription_count gives both numbers per channel."""
    channel = unique("presence-both-")
    await presence_sockets(shared_server, clients, channel, ["1", "1", "2"])
    response = await api.get_json(
        "/channels",
        {"filter_by_prefix": channel, "info": "user_count,subscription_count"},
    )
    assert response.json() == {
        "channels": {channel: {"user_count": 2, "subscription_count": 3}}
    }


async def test_channels_subscription_count_public(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """info=subscription_count works without a presence prefix."""
    channel = unique("public-count-")
    for _ in range(2):
        client = await clients.established(shared_server.ws_url())
        await join_public(client, channel)
    response = await api.get_json(
        "/channels", {"filter_by_prefix": channel, "info": "subscription_count"}
    )
    assert response.json() == {"channels": {channel: {"subscription_count": 2}}}


@pytest.mark.parametrize(
    "query",
    [{"info": "user_count"}, {"info": "user_count", "filter_by_prefix": "private-"}],
)
async def test_channels_user_count_needs_presence_400(
    api: ApiClient, query: dict[str, str]
) -> None:
    """info=user_count without a presence- prefix filter gives 400."""
    response = await api.get_json("/channels", query)
    assert_error_body(response, 400)


async def test_channels_unknown_info_400(api: ApiClient) -> None:
    """An unknown info attribute gives 400."""
    response = await api.get_json("/channels", {"info": "bogus"})
    assert_error_body(response, 400)


async def test_channels_sdk_get_with_body_md5(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The Python SDK's GET, signed with body_md5 of the empty body, succeeds."""
    prefix = unique("presence-sdk-")
    await presence_sockets(shared_server, clients, prefix, ["5"])
    result = await asyncio.to_thread(
        sdk_client(api).channels_info, prefix, ["user_count"]
    )
    assert result == {"channels": {prefix: {"user_count": 1}}}


async def test_channel_info_occupied(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """An occupied public channel reports occupied and its subscription count."""
    channel = unique("info-")
    for _ in range(2):
        client = await clients.established(shared_server.ws_url())
        await join_public(client, channel)
    response = await api.get_json(
        f"/channels/{channel}", {"info": "subscription_count"}
    )
    assert response.status == 200
    assert response.json() == {"occupied": True, "subscription_count": 2}


async def test_channel_info_without_info(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """Without info the reply has only `occupied`."""
    channel = unique("info-")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, channel)
    response = await api.get_json(f"/channels/{channel}")
    assert response.json() == {"occupied": True}


async def test_channel_info_unoccupied(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """A channel without subscribers is {"occupied": false}."""
    response = await api.get_json(f"/channels/{unique('empty-')}")
    assert response.status == 200
    assert response.json() == {"occupied": False}


async def test_channel_info_unoccupied_counts_zero(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """Requested counts are 0 on an unoccupied presence channel."""
    channel = unique("presence-empty-")
    response = await api.get_json(
        f"/channels/{channel}", {"info": "user_count,subscription_count"}
    )
    assert response.json() == {
        "occupied": False,
        "user_count": 0,
        "subscription_count": 0,
    }


async def test_channel_info_presence_counts(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A presence channel reports distinct users and sockets."""
    channel = unique("presence-info-")
    await presence_sockets(shared_server, clients, channel, ["1", "2", "2"])
    response = await api.get_json(
        f"/channels/{channel}", {"info": "user_count,subscription_count"}
    )
    assert response.json() == {
        "occupied": True,
        "user_count": 2,
        "subscription_count": 3,
    }


async def test_channel_info_sdk_request(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The Python SDK's channel_info request succeeds."""
    channel = unique("presence-sdk-")
    await presence_sockets(shared_server, clients, channel, ["1"])
    result = await asyncio.to_thread(
        sdk_client(api).channel_info, channel, ["user_count"]
    )
    assert result == {"occupied": True, "user_count": 1}


async def test_channel_info_user_count_public_400(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """info=user_count on a non-presence channel gives 400."""
    response = await api.get_json(
        f"/channels/{unique('public-')}", {"info": "user_count"}
    )
    assert_error_body(response, 400)


async def test_channel_info_unknown_attribute_400(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """An unknown info attribute gives 400."""
    response = await api.get_json(f"/channels/{unique('public-')}", {"info": "bogus"})
    assert_error_body(response, 400)


async def test_channel_info_invalid_name_400(api: ApiClient) -> None:
    """An invalid channel name in the path gives 400."""
    response = await api.get_json("/channels/" + "x" * 165)
    assert_error_body(response, 400)


async def test_channel_info_escaped_name(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A percent-escaped name, signed over the decoded path, is found."""
    channel = unique("at@comma,semi;eq=")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, channel)
    escaped_path = api.app_path("/channels/") + "".join(
        f"%{ord(char):02X}" if char in "@,;=" else char for char in channel
    )
    response = await asyncio.to_thread(
        api.signed,
        "GET",
        escaped_path,
        signing_path=api.app_path(f"/channels/{channel}"),
    )
    assert response.status == 200
    assert response.json() == {"occupied": True}


async def test_channel_info_escaped_name_signed_raw(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A percent-escaped name, signed over the escaped path, is also accepted."""
    channel = unique("at@")
    client = await clients.established(shared_server.ws_url())
    await join_public(client, channel)
    escaped_path = api.app_path("/channels/") + channel.replace("@", "%40")
    response = await asyncio.to_thread(api.signed, "GET", escaped_path)
    assert response.status == 200
    assert response.json() == {"occupied": True}


async def test_users_lists_distinct_ids(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The users API lists each user once, ids as strings."""
    channel = unique("presence-users-")
    await presence_sockets(shared_server, clients, channel, ["1", "2", "2"])
    response = await api.get_json(f"/channels/{channel}/users")
    assert response.status == 200
    body = response.json()
    assert list(body) == ["users"]
    assert sorted(body["users"], key=lambda user: user["id"]) == [
        {"id": "1"},
        {"id": "2"},
    ]


async def test_users_numeric_id_as_string(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """A numeric presence user_id is listed as a string."""
    channel = unique("presence-users-")
    client = await clients.established(shared_server.ws_url())
    data = '{"user_id":77}'
    auth = channel_auth(
        DEFAULT_APP.key, DEFAULT_APP.secret, client.socket_id or "", channel, data
    )
    await client.subscribe(channel, auth=auth, channel_data=data)
    response = await api.get_json(f"/channels/{channel}/users")
    assert response.json() == {"users": [{"id": "77"}]}


async def test_users_empty_presence_channel(
    api: ApiClient, unique: Callable[[str], str]
) -> None:
    """An empty presence channel has an empty user list."""
    response = await api.get_json(f"/channels/{unique('presence-none-')}/users")
    assert response.status == 200
    assert response.json() == {"users": []}


async def test_users_sdk_request(
    shared_server: RunningServer,
    clients: ClientOpener,
    api: ApiClient,
    unique: Callable[[str], str],
) -> None:
    """The Python SDK's users_info request succeeds."""
    channel = unique("presence-sdk-")
    await presence_sockets(shared_server, clients, channel, ["3"])
    result = await asyncio.to_thread(sdk_client(api).users_info, channel)
    assert result == {"users": [{"id": "3"}]}


@pytest.mark.parametrize("prefix", ["public-", "private-", "private-encrypted-"])
async def test_users_non_presence_400(
    api: ApiClient, unique: Callable[[str], str], prefix: str
) -> None:
    """The users API on a non-presence channel gives 400."""
    response = await api.get_json(f"/channels/{unique(prefix)}/users")
    assert_error_body(response, 400)
