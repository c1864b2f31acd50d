"""/up, /ready, and the 4100 (over capacity) admission check over real
sockets: the per-node connection cap, the memory limit and Redis reachability."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from clarion_e2e import open_established, open_socket, poll_until
from ops_helpers import (
    WAIT_TIMEOUT,
    RedisProcess,
    http_request,
    scrape,
    value,
)

from clarion.protocol.errors import ConnectionRejected
from clarion.server.config import Settings
from clarion.server.health import NodeHealth
from server_process import ServerProcess

OVER_CAPACITY = 4100
SESSION_PATH = "/pusher/app/app-key/101/{session}/xhr?protocol=7"


def expected_error(code: int, message: str) -> dict[str, object]:
    return {"event": "pusher:error", "data": {"code": code, "message": message}}


async def test_up_returns_ok(server: ServerProcess) -> None:
    """/up returns 200 while the process serves."""
    reply = await asyncio.to_thread(http_request, server.port, "/up")
    assert reply.status == 200
    assert reply.body == b"OK"


async def test_ready_without_redis_returns_ok(server: ServerProcess) -> None:
    """/ready returns 200 and {"ready": true} with no Redis configured."""
    reply = await asyncio.to_thread(http_request, server.port, "/ready")
    assert reply.status == 200
    assert reply.json() == {"ready": True}


async def test_ready_rejects_post(server: ServerProcess) -> None:
    """/ready accepts only GET and HEAD."""
    reply = await asyncio.to_thread(http_request, server.port, "/ready", "POST", b"")
    assert reply.status == 405


async def test_ready_follows_redis_reachability(
    start_server: Callable[..., ServerProcess], redis_process: RedisProcess
) -> None:
    """/ready returns 200 once Redis is reachable and 503 after Redis stops."""
    server = start_server(args=("--redis-url", redis_process.url))
    ready = await poll_until(
        lambda: http_request(server.port, "/ready"),
        lambda reply: reply.status == 200,
        WAIT_TIMEOUT,
    )
    connected = await asyncio.to_thread(scrape, server.port)
    redis_process.stop()
    lost = await poll_until(
        lambda: http_request(server.port, "/ready"),
        lambda reply: reply.status == 503,
        WAIT_TIMEOUT,
    )
    disconnected = await asyncio.to_thread(scrape, server.port)
    assert ready.status == 200
    assert value(connected, "clarion_redis_connected") == 1
    assert lost.status == 503
    assert lost.json() == {"ready": False, "reasons": ["Redis is unreachable"]}
    assert value(disconnected, "clarion_redis_connected") == 0


async def test_node_cap_rejects_websocket_with_4100(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Past max_node_connections a WebSocket gets 4100; after one closes, the
    next is admitted."""
    server = start_server(env={"CLARION_MAX_NODE_CONNECTIONS": "2"})
    admitted = [await open_established(server.ws_url) for _ in range(2)]
    rejected = await open_socket(server.ws_url)
    error = (await rejected.recv_frame()).message
    code, reason = await rejected.wait_closed()
    await admitted[0].close()
    later = await poll_until(
        lambda: scrape(server.port),
        lambda s: value(s, "clarion_connections", transport="websocket") == 1,
        WAIT_TIMEOUT,
    )
    replacement = await open_established(server.ws_url)
    await replacement.close()
    await admitted[1].close()

    assert error == expected_error(OVER_CAPACITY, "Over capacity")
    assert code == OVER_CAPACITY
    assert reason == "Over capacity"
    assert value(later, "clarion_connections_rejected_total", code="4100") == 1
    assert replacement.socket_id is not None


async def test_node_cap_rejects_http_session_with_4100(
    start_server: Callable[..., ServerProcess],
) -> None:
    """An HTTP fallback session past max_node_connections gets 4100 too."""
    server = start_server(env={"CLARION_MAX_NODE_CONNECTIONS": "1"})
    admitted = await open_established(server.ws_url)
    reply = await asyncio.to_thread(
        http_request, server.port, SESSION_PATH.format(session="a1b2c3"), "POST", b""
    )
    await admitted.close()
    lines = reply.body.decode().splitlines()
    assert reply.status == 200
    assert lines[0] == "o"
    assert json.loads(json.loads(lines[1][1:])[0]) == expected_error(
        OVER_CAPACITY, "Over capacity"
    )
    assert lines[2] == 'c[4100,"Over capacity"]'


async def test_node_cap_admits_http_session_below_cap(
    start_server: Callable[..., ServerProcess],
) -> None:
    """An HTTP fallback session under the cap opens and counts as http."""
    server = start_server(env={"CLARION_MAX_NODE_CONNECTIONS": "1"})
    reply = await asyncio.to_thread(
        http_request, server.port, SESSION_PATH.format(session="d4e5f6"), "POST", b""
    )
    samples = await asyncio.to_thread(scrape, server.port)
    assert reply.status == 200
    assert reply.body.startswith(b'o\na["{\\"event\\":\\"pusher:connection_established')
    assert value(samples, "clarion_connections", transport="http") == 1
    assert value(samples, "clarion_connections_opened_total", transport="http") == 1


async def test_memory_limit_rejects_with_4100(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Over memory_limit_mb, new connections get 4100 and /ready returns 503."""
    server = start_server(env={"CLARION_MEMORY_LIMIT_MB": "1"})
    rejected = await open_socket(server.ws_url)
    error = (await rejected.recv_frame()).message
    code, _ = await rejected.wait_closed()
    ready = await asyncio.to_thread(http_request, server.port, "/ready")
    reasons = ready.json()["reasons"]
    assert error == expected_error(OVER_CAPACITY, "Over capacity")
    assert code == OVER_CAPACITY
    assert ready.status == 503
    assert len(reasons) == 1
    assert "is over memory_limit_mb 1" in reasons[0]
    assert "over memory_limit_mb 1: new connections get 4100" in server.log_text()


def test_health_draining_rejects_and_fails_ready() -> None:
    """While draining, admission raises 4100 and readiness names the reason."""
    health = NodeHealth(Settings())
    health.draining = True
    with pytest.raises(ConnectionRejected) as rejected:
        health.check_capacity(0)
    assert rejected.value.code == OVER_CAPACITY
    assert health.readiness_problems(None) == ["draining: the server is stopping"]


def test_health_admits_under_limits() -> None:
    """With no limits set, admission passes and readiness has no problem."""
    health = NodeHealth(Settings())
    health.check_capacity(10_000)
    assert health.readiness_problems(True) == []
