"""Bad sign-in input through pusher-js: forged signatures, oversized user
data and an over-long watchlist get the documented error, and the clients
around them carry on."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.interop

# Defaults of the server's per-app limits.
MAX_USER_INFO_BYTES = 1024
MAX_WATCHLIST_SIZE = 100

# The AuthEndpoint user_info without padding, as the server measures it:
# compact JSON.
BASE_USER_INFO = json.dumps({"name": "Mallory", "padding": ""}, separators=(",", ":"))


def wait_signin_result(client):
    """Wait for the server's reply to `pusher:signin`, success or error."""
    return client.wait_for(
        "pusher:signin_success or pusher:error",
        lambda r: (
            r["type"] == "message"
            and r["event"] in ("pusher:signin_success", "pusher:error")
        ),
    )


def assert_signin_rejected(client, send_marker):
    """Check that a rejected sign-in left the client connected but signed out.

    pusher-js 8.6.0 reports the server's `pusher:error` as a connection
    `error` only. It emits no `pusher:signin_error` (that event is for a
    failing user authenticator) and does not subscribe to a user channel.
    """
    result = wait_signin_result(client)
    assert result["event"] == "pusher:error", client.describe()
    assert result["data"]["code"] == 4009
    error = client.wait_error(4009)
    assert error["error"]["type"] == "PusherError"

    client.subscribe("lobby")
    send_marker("lobby", client)
    assert client.states()[-1] == "connected", client.describe()
    assert client.messages("pusher:signin_success") == []
    assert [r for r in client.records if r["type"] == "user_event"] == []
    confirmed = client.messages("pusher_internal:subscription_succeeded")
    assert [r["channel"] for r in confirmed] == ["lobby"]


@pytest.mark.parametrize("forge", ["other_user", "secret"])
def test_forged_signin_rejected(
    connect_client, connect_clients, python_sdk, send_marker, forge
):
    """A sign-in with a signature that does not match gets 4009 and no user."""
    (alice,) = connect_clients("alice")
    alice.sign_in("alice")
    alice.subscribe("lobby")
    mallory = connect_client("mallory", auth_params={"forge": forge})

    mallory.send("signin")
    assert_signin_rejected(mallory, send_marker)

    # The rejected user data named mallory or admin, so events for either
    # reach no one, while alice's sign-in still works.
    python_sdk.send_to_user("admin", "notice", {"for": "admin"})
    python_sdk.send_to_user("mallory", "notice", {"for": "mallory"})
    python_sdk.send_to_user("alice", "notice", {"for": "alice"})
    event = alice.wait_user_event("notice")
    send_marker("lobby", alice, mallory)

    assert event["data"] == {"for": "alice"}
    assert [r for r in mallory.records if r["type"] == "user_event"] == []
    assert alice.states()[-1] == "connected"
    assert alice.error_codes() == []


def test_user_info_over_limit_rejected(connect_client, connect_clients, send_marker):
    """user_info of 1024 bytes signs in, and of 1025 bytes gets 4009."""
    at_limit = MAX_USER_INFO_BYTES - len(BASE_USER_INFO)
    (alice,) = connect_clients("alice")
    alice.subscribe("lobby")
    fits = connect_client("mallory", auth_params={"user_info_padding": str(at_limit)})
    too_big = connect_client(
        "mallory", auth_params={"user_info_padding": str(at_limit + 1)}
    )

    fits.sign_in("mallory")
    too_big.send("signin")
    assert_signin_rejected(too_big, send_marker)
    rejection = too_big.messages("pusher:error")[0]
    send_marker("lobby", alice)

    assert f"{MAX_USER_INFO_BYTES + 1} bytes" in rejection["data"]["message"]
    assert fits.states()[-1] == "connected"
    assert alice.states()[-1] == "connected"
    assert alice.error_codes() == []


def test_watchlist_over_limit_keeps_first_ids(
    connect_client, connect_clients, python_sdk, send_marker
):
    """A watchlist of 101 ids signs in, gets 4302 and watches the first 100."""
    watched = [f"watched-{number}" for number in range(MAX_WATCHLIST_SIZE + 1)]
    kept_ids = watched[:MAX_WATCHLIST_SIZE]
    dropped_id = watched[MAX_WATCHLIST_SIZE]
    (first_watched,) = connect_clients(watched[0])
    first_watched.sign_in(watched[0])
    alice = connect_client("alice", auth_params={"watchlist": ",".join(watched)})
    alice.subscribe("lobby")

    alice.sign_in("alice")
    error = alice.wait_error(4302)
    online = alice.wait_watchlist_event("online")
    offline = alice.wait_watchlist_event("offline")

    # The frames come in the documented order: success, error, watchlist.
    frames = [
        r["event"]
        for r in alice.records
        if r["type"] == "message"
        and r["event"]
        in (
            "pusher:signin_success",
            "pusher:error",
            "pusher_internal:watchlist_events",
        )
    ]
    assert frames == [
        "pusher:signin_success",
        "pusher:error",
        "pusher_internal:watchlist_events",
    ]
    message = error["error"]["data"]["message"]
    assert re.findall(r"watched-\d+", message) == kept_ids, message
    assert online["data"] == {"name": "online", "user_ids": [watched[0]]}
    assert offline["data"] == {"name": "offline", "user_ids": kept_ids[1:]}

    # alice does not watch the dropped id, so its sign-in sends her nothing,
    # while the sign-in of the last kept id sends her an online event.
    dropped_client, kept_client = connect_clients(dropped_id, kept_ids[-1])
    dropped_client.sign_in(dropped_id)
    kept_client.sign_in(kept_ids[-1])
    event = alice.wait_watchlist_event("online")
    send_marker("lobby", alice)

    assert event["data"] == {"name": "online", "user_ids": [kept_ids[-1]]}
    assert len(alice.watchlist_events()) == 3, alice.describe()
    for client in (alice, first_watched, dropped_client, kept_client):
        assert client.states()[-1] == "connected", client.describe()
    python_sdk.send_to_user("alice", "notice", {"ok": True})
    assert alice.wait_user_event("notice")["data"] == {"ok": True}
