"""Fixtures for the differential tests: the app's auth endpoints and an HTTP API
client, both for the test's `server`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from differential_auth import AuthEndpoint

from clarion.rest import RestClient


@pytest.fixture
async def auth_endpoint(server: Any) -> AsyncIterator[AuthEndpoint]:
    """The app's channel and user auth endpoints on 127.0.0.1."""
    endpoint = AuthEndpoint(server.key, server.secret)
    await endpoint.start()
    yield endpoint
    await endpoint.close()


@pytest.fixture
async def rest(server: Any) -> AsyncIterator[RestClient]:
    """An HTTP API client for the test's server."""
    async with RestClient(
        app_id=server.app_id, key=server.key, secret=server.secret, url=server.http_url
    ) as client:
        yield client
