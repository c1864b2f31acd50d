"""The development app handing over to the first app of the store and coming
back after the last one is deleted: the server logs both, and `clarion apps`
prints them."""

from __future__ import annotations

import asyncio
import time

import pytest
from clarion_e2e import open_established, open_socket
from store_harness import SEEN_TIMEOUT, StoreTarget

from clarion.server.config import DEV_APP_WARNING
from server_process import ServerProcess

pytestmark = pytest.mark.timeout(60)


async def dev_app_served(server: ServerProcess) -> bool:
    client = await open_socket(server.ws_url)
    try:
        frame = await client.recv_frame()
    finally:
        await client.close()
    return frame.event == "pusher:connection_established"


async def test_dev_app_handover_is_said(sqlite_store: StoreTarget) -> None:
    """create prints that the development app goes; the server warns again
    when it comes back after the last delete."""
    server = sqlite_store.serve()
    dev_client = await open_established(server.ws_url)

    created = sqlite_store.cli("create", "--id", "80", "--key", "first-key")
    assert created.returncode == 0, created.stderr
    assert "stop serving the development app" in created.stdout
    assert "4001" in created.stdout
    code, _ = await dev_client.wait_closed(SEEN_TIMEOUT)
    assert code == 4001
    assert "The development app is no longer served" in server.log_text()
    second = sqlite_store.cli("create", "--id", "81", "--key", "second-key")
    assert "development app" not in second.stdout

    assert sqlite_store.cli("delete", "81").returncode == 0
    deleted = sqlite_store.cli("delete", "80")
    assert "serve the development app again" in deleted.stdout
    deadline = time.monotonic() + SEEN_TIMEOUT
    while not await dev_app_served(server) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await dev_app_served(server)
    assert server.log_text().count(DEV_APP_WARNING) == 2
