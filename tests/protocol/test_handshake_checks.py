"""Admission checks for new WebSocket connections."""

from __future__ import annotations

import re

import pytest

from clarion.protocol.apps import App, Limits
from clarion.protocol.errors import ConnectionRejected
from clarion.protocol.handshake import (
    app_key_from_path,
    check_app,
    check_connection_quota,
    check_protocol_version,
    new_socket_id,
)

APP = App(id="1", key="app-key", secret="app-secret")


def test_app_key_from_path_returns_key() -> None:
    """The key is the segment after /app/."""
    assert app_key_from_path("/app/app-key") == "app-key"


@pytest.mark.parametrize(
    "path",
    [
        "/app/",
        "/app/k/x",
        "/foo",
        "",
        "/",
        "/app",
        "app/k",
        "/apps/k",
        "/x/app/k",
        "/app//k",
    ],
)
def test_app_key_from_path_rejects(path: str) -> None:
    """Any path but exactly /app/{key} is rejected with 4005."""
    with pytest.raises(ConnectionRejected) as caught:
        app_key_from_path(path)
    assert caught.value.code == 4005
    assert caught.value.message == "Path not found"


def test_check_app_unknown_key() -> None:
    """An unknown key is rejected with 4001 naming the key."""
    with pytest.raises(ConnectionRejected) as caught:
        check_app(None, "nope")
    assert caught.value.code == 4001
    assert caught.value.message == "App key nope does not exist"


def test_check_app_disabled() -> None:
    """A disabled app is rejected with 4003."""
    with pytest.raises(ConnectionRejected) as caught:
        check_app(App(id="1", key="k", secret="s", enabled=False), "k")
    assert caught.value.code == 4003
    assert caught.value.message == "Application disabled"


def test_check_app_returns_enabled_app() -> None:
    """An enabled app is returned as it is."""
    assert check_app(APP, "app-key") is APP


def with_quota(quota: int) -> App:
    return App(id="1", key="k", secret="s", limits=Limits(max_connections=quota))


def test_quota_zero_is_unlimited() -> None:
    """max_connections 0 admits any number of connections."""
    check_connection_quota(with_quota(0), 10**9)


def test_quota_admits_below_limit() -> None:
    """With one slot left, the connection is admitted."""
    check_connection_quota(with_quota(2), 1)


@pytest.mark.parametrize("open_connections", [2, 3], ids=["at-quota", "over-quota"])
def test_quota_rejects_at_limit(open_connections: int) -> None:
    """With max_connections already open, the connection is rejected with 4004."""
    with pytest.raises(ConnectionRejected) as caught:
        check_connection_quota(with_quota(2), open_connections)
    assert caught.value.code == 4004
    assert caught.value.message == "Application is over connection quota"


def test_protocol_missing() -> None:
    """A missing protocol parameter is rejected with 4008."""
    with pytest.raises(ConnectionRejected) as caught:
        check_protocol_version(None)
    assert caught.value.code == 4008
    assert caught.value.message == "No protocol version supplied"


@pytest.mark.parametrize(
    "raw", ["3", "8", "1", "0", "x", "", "7.0", "-7", "+7", " 7", "7 ", "70", "0x7"]
)
def test_protocol_unsupported(raw: str) -> None:
    """A protocol that is not an integer from 4 to 7 is rejected with 4007."""
    with pytest.raises(ConnectionRejected) as caught:
        check_protocol_version(raw)
    assert caught.value.code == 4007
    assert caught.value.message == "Unsupported protocol version"


@pytest.mark.parametrize("version", [4, 5, 6, 7])
def test_protocol_supported(version: int) -> None:
    """Protocols 4 to 7 are accepted and returned as integers."""
    assert check_protocol_version(str(version)) == version


SOCKET_ID = re.compile(r"[0-9]+\.[0-9]+")


def test_new_socket_id_format() -> None:
    """Every drawn socket_id is two runs of ASCII digits joined by a dot."""
    drawn = [new_socket_id() for _ in range(1000)]
    malformed = [value for value in drawn if not SOCKET_ID.fullmatch(value)]
    assert malformed == []


def test_new_socket_id_part_range() -> None:
    """Both parts lie in 0..10^10."""
    parts = [int(part) for _ in range(1000) for part in new_socket_id().split(".")]
    assert max(parts) <= 10**10


def test_new_socket_id_varies() -> None:
    """A hundred draws all differ, because a collision has a chance near 5e-17."""
    assert len({new_socket_id() for _ in range(100)}) == 100


def test_connection_quota_counts_every_node() -> None:
    """Admission compares the quota with the total it is given, so open
    connections of other nodes count as local ones do."""
    app = App(id="1", key="k", secret="s", limits=Limits(max_connections=3))
    check_connection_quota(app, 2)
    with pytest.raises(ConnectionRejected) as caught:
        check_connection_quota(app, 1 + 2)
    assert caught.value.code == 4004
