"""User sign-in through the auth endpoint or a custom user authenticator,
events sent to a user, terminating a user's connections and closing
unauthorized connections, with pusher-js and both server SDKs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop

NOTICE = {"text": "your report is ready", "id": 7}


def test_signin_echoes_user_data(connect_client):
    """`pusher:signin_success` carries the user data the endpoint signed."""
    client = connect_client("alice", user_name="Alice")

    success = client.sign_in("alice")

    assert isinstance(success["data"]["user_data"], str), success
    assert success["data"]["user_data"] == (
        '{"id": "alice", "user_info": {"name": "Alice"}}'
    )


def test_python_send_to_user_reaches_user(connect_client, python_sdk):
    """`send_to_user` from the Python SDK reaches the signed-in user."""
    client = connect_client("alice")
    client.sign_in("alice")

    result = python_sdk.send_to_user("alice", "notice", NOTICE)
    event = client.wait_user_event("notice")

    assert result == {}
    assert event["data"] == NOTICE


def test_node_send_to_user_reaches_user(connect_client, node_sdk):
    """`sendToUser` from the Node SDK reaches the signed-in user."""
    client = connect_client("alice")
    client.sign_in("alice")

    outcome = node_sdk(method="sendToUser", userId="alice", event="notice", data=NOTICE)
    event = client.wait_user_event("notice")

    assert outcome == {"ok": True, "status": 200, "body": {}}
    assert event["data"] == NOTICE


def user_events(client, event):
    return [
        r["data"]
        for r in client.records
        if r["type"] == "user_event" and r["event"] == event
    ]


def test_send_to_user_skips_other_users(connect_clients, python_sdk):
    """An event sent to one user does not reach another signed-in user."""
    alice, bob = connect_clients("alice", "bob")
    alice.sign_in("alice")
    bob.sign_in("bob")

    python_sdk.send_to_user("alice", "notice", NOTICE)
    python_sdk.send_to_user("bob", "notice", {"for": "bob"})
    # Each connection gets its frames in order, so once `done` is in, any
    # misdirected notice would be too.
    python_sdk.send_to_user("alice", "done", {})
    python_sdk.send_to_user("bob", "done", {})
    alice.wait_user_event("done")
    bob.wait_user_event("done")

    assert user_events(alice, "notice") == [NOTICE]
    assert user_events(bob, "notice") == [{"for": "bob"}]


def terminate_user(sdk_name, user_id, python_sdk, node_sdk):
    """Terminate a user's connections with one SDK and return its result body."""
    if sdk_name == "python":
        # NOTE: pusher 3.3.4 posts to /users/{id}/terminate_connections without
        # the /apps/{app_id} prefix. This passes only because the server also
        # serves that path and resolves the app from auth_key.
        return python_sdk.terminate_user_connections(user_id)
    outcome = node_sdk(method="terminateUserConnections", userId=user_id)
    assert outcome["ok"], outcome
    assert outcome["status"] == 200
    return outcome["body"]


@pytest.mark.parametrize("sdk_name", ["node", "python"])
def test_terminate_connections_disconnects_user(
    connect_clients, python_sdk, node_sdk, send_marker, sdk_name
):
    """Terminating a user closes all its signed-in connections, no others."""
    *alice_tabs, alice_member, bob = connect_clients(
        "alice", "alice", "alice", "alice", "bob"
    )
    for client in alice_tabs:
        client.sign_in("alice")
    bob.sign_in("bob")
    # alice_member is alice on a presence channel but never signed in, so
    # the connection does not belong to the user alice.
    alice_member.subscribe("presence-room")
    for client in (alice_member, bob):
        client.subscribe("news")

    result = terminate_user(sdk_name, "alice", python_sdk, node_sdk)
    for client in alice_tabs:
        client.wait_state("disconnected")
    # Terminating a user with no connections succeeds too.
    nobody_result = terminate_user(sdk_name, "nobody", python_sdk, node_sdk)
    send_marker("news", alice_member, bob)

    assert result == {}
    assert nobody_result == {}
    for client in alice_tabs:
        errors = [r["error"] for r in client.records if r["type"] == "error"]
        # pusher-js 8.6.0 reports the `pusher:error` frame, then the close
        # code, then its `refused` action for that code, which disconnects
        # and never retries.
        assert [error["type"] for error in errors] == [
            "PusherError",
            "PusherError",
            "WebSocketError",
        ], client.describe()
        assert client.error_codes() == [4009, 4009, 4009]
        assert errors[0]["data"]["message"] == "You got disconnected by the app"
    for client in (alice_member, bob):
        assert client.states()[-1] == "connected", client.describe()
        assert client.error_codes() == []

    # alice can connect and sign in again, and only the new connection gets
    # her events.
    (alice_again,) = connect_clients("alice")
    alice_again.sign_in("alice")
    python_sdk.send_to_user("alice", "notice", NOTICE)
    assert alice_again.wait_user_event("notice")["data"] == NOTICE
    for client in alice_tabs:
        assert client.states()[-2:] == ["connected", "disconnected"]
        assert user_events(client, "notice") == []


def test_signin_through_custom_user_authenticator(
    connect_client, python_sdk, auth_endpoint
):
    """`pusher.signin()` with a `customHandler` user authenticator works."""
    client = connect_client("alice", custom_user_authenticator=True)

    success = client.sign_in("alice")
    call = client.wait_for(
        "the user authenticator call",
        lambda r: r["type"] == "user_authenticator_called",
    )
    python_sdk.send_to_user("alice", "notice", NOTICE)
    event = client.wait_user_event("notice")

    # The user's own channel stays out of the channel list.
    assert python_sdk.channels_info() == {"channels": {}}
    assert call["socket_id"] == client.socket_id
    assert [r["path"] for r in auth_endpoint.requests] == ["/pusher/user-auth"]
    assert auth_endpoint.requests[0]["socket_id"] == client.socket_id
    assert success["data"]["user_data"] == (
        '{"id": "alice", "user_info": {"name": "Alice"}}'
    )
    assert event["data"] == NOTICE


AUTHORIZED_CONNECTIONS = """
[[apps]]
id = "1"
key = "app-key"
secret = "app-secret"
authorized_connections = true
authorization_timeout = 2
"""


@pytest.mark.server_config(AUTHORIZED_CONNECTIONS)
def test_unauthorized_connection_closed_after_timeout(
    connect_clients, python_sdk, send_marker
):
    """With authorized connections on, only unauthorized ones get 4009."""
    signed_in, private = connect_clients("alice", "bob")
    signed_in.sign_in("alice")
    private.subscribe("private-room")
    # Connected last, so its timeout runs out after the other two's.
    (idle,) = connect_clients(None)
    idle.subscribe("news")

    idle.wait_state("disconnected")
    python_sdk.send_to_user("alice", "notice", NOTICE)
    notice = signed_in.wait_user_event("notice")
    send_marker("private-room", private)

    errors = [r["error"] for r in idle.records if r["type"] == "error"]
    assert idle.error_codes() == [4009, 4009, 4009], idle.describe()
    assert errors[0]["data"]["message"] == "Connection not authorized within timeout"
    assert notice["data"] == NOTICE
    for client in (signed_in, private):
        assert client.states()[-1] == "connected", client.describe()
        assert client.error_codes() == []
