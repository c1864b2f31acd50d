"""pusher-js 8.6.0 connecting to Clarion over a real WebSocket."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.interop


def test_pusherjs_connects_with_socket_id(connect_client):
    """pusher-js reaches `connected` with a socket id of two integers."""
    client = connect_client()

    assert re.fullmatch(r"\d+\.\d+", client.socket_id), client.socket_id


def test_unknown_app_key_ends_disconnected(connect_client):
    """A client with an unknown key gets error 4001 and ends `disconnected`."""
    client = connect_client(key="no-such-key", wait=False)

    client.wait_state("disconnected")

    assert 4001 in client.error_codes(), client.describe()
    assert "connected" not in client.states(), client.describe()
