"""SIGTERM on a server with many open connections: it stops accepting, reports
draining on /ready, closes the connections with 4200 spread over
drain_seconds, and exits 0."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Callable

from clarion_e2e import poll_until
from drain_helpers import (
    WAIT_TIMEOUT,
    FallbackSession,
    RawClient,
    open_raw_clients,
    raise_open_file_limit,
    send_signal,
    wait_exit,
)
from ops_helpers import http_request

from server_process import ServerProcess, free_port

CLIENTS = 1000
DRAIN_SECONDS = 4
SLICE_SECONDS = 0.4
"""Width of the slices in which closes are counted: a tenth of the window."""
MAX_SLICE_SHARE = 0.25
"""Largest share of the closes that one slice may hold. An even spread puts
about a tenth in each; closing all at once puts them all in one."""
RECONNECT = 4200


def start_draining_server(
    start_server: Callable[..., ServerProcess], drain_seconds: int
) -> tuple[ServerProcess, int]:
    """Start a server with ``drain_seconds`` and a metrics port; return both."""
    metrics_port = free_port()
    server = start_server(
        args=("--metrics-port", str(metrics_port)),
        env={"CLARION_DRAIN_SECONDS": str(drain_seconds)},
    )
    return server, metrics_port


def describe(clients: list[RawClient]) -> str:
    codes = collections.Counter(client.closing.close_code for client in clients)
    return f"close codes {dict(codes)}"


async def test_drain_spreads_closes_over_window(
    start_server: Callable[..., ServerProcess],
) -> None:
    """1,000 connections close with 4200 spread over the window, with no slice
    of a tenth of the window holding more than a quarter of them."""
    raise_open_file_limit(2 * CLIENTS + 256)
    server, metrics_port = start_draining_server(start_server, DRAIN_SECONDS)
    clients = await open_raw_clients(server.port, CLIENTS)
    watchers = [asyncio.create_task(client.watch_close()) for client in clients]
    ready = await asyncio.to_thread(http_request, metrics_port, "/ready")
    assert ready.status == 200, ready.body

    signalled = time.monotonic()
    send_signal(server)
    draining = await poll_until(
        lambda: http_request(metrics_port, "/ready"),
        lambda reply: reply.status == 503,
        WAIT_TIMEOUT,
    )
    assert draining.status == 503, draining.body
    reasons = draining.json()["reasons"]
    assert any(reason.startswith("draining") for reason in reasons), reasons
    await asyncio.wait_for(asyncio.gather(*watchers), DRAIN_SECONDS + WAIT_TIMEOUT)
    exit_code = await asyncio.to_thread(wait_exit, server, WAIT_TIMEOUT)

    assert exit_code == 0, server.log_text()[-4000:]
    close_codes = [client.closing.close_code for client in clients]
    assert close_codes.count(RECONNECT) == CLIENTS, describe(clients)
    error_codes = [client.closing.error_code for client in clients]
    assert error_codes.count(RECONNECT) == CLIENTS, describe(clients)
    times = sorted(
        client.closing.at - signalled
        for client in clients
        if client.closing.at is not None
    )
    slices = collections.Counter(int(moment // SLICE_SECONDS) for moment in times)
    spread = times[-1] - times[0]
    busiest = max(slices.values())
    measured = (
        f"{CLIENTS} closes over {DRAIN_SECONDS} s: first at {times[0]:.2f} s, "
        f"last at {times[-1]:.2f} s after SIGTERM (spread {spread:.2f} s), "
        f"busiest {SLICE_SECONDS} s slice {busiest} closes, slices "
        f"{[slices.get(index, 0) for index in range(max(slices) + 1)]}"
    )
    print(measured)
    assert spread >= DRAIN_SECONDS / 2, measured
    assert busiest <= MAX_SLICE_SHARE * CLIENTS, measured
    log = server.log_text()
    assert f"Draining: closing {CLIENTS} connection(s) with 4200" in log
    assert f"Drained {CLIENTS} connection(s)" in log


async def test_drain_stops_accepting(
    start_server: Callable[..., ServerProcess],
) -> None:
    """During the drain the main port refuses new connections, while the
    metrics port still serves /up and /metrics."""
    server, metrics_port = start_draining_server(start_server, 600)
    clients = await open_raw_clients(server.port, 5)
    watchers = [asyncio.create_task(client.watch_close()) for client in clients]
    send_signal(server)
    await poll_until(
        lambda: server.log_text(),
        lambda log: "Draining: closing 5 connection(s)" in log,
        WAIT_TIMEOUT,
    )

    refused = False
    try:
        await open_raw_clients(server.port, 1)
    except ConnectionRefusedError:
        refused = True
    up = await asyncio.to_thread(http_request, metrics_port, "/up")
    metrics = await asyncio.to_thread(http_request, metrics_port, "/metrics")

    assert refused
    assert up.status == 200
    assert metrics.status == 200
    assert b"clarion_connections" in metrics.body
    # A second signal finishes the 600 s drain at once.
    send_signal(server, signal.SIGINT)
    await asyncio.wait_for(asyncio.gather(*watchers), WAIT_TIMEOUT)
    exit_code = await asyncio.to_thread(wait_exit, server, WAIT_TIMEOUT)
    assert exit_code == 0
    assert [client.closing.close_code for client in clients] == [RECONNECT] * 5
    assert "finishing the drain at once" in server.log_text()


async def test_drain_closes_fallback_sessions(
    start_server: Callable[..., ServerProcess],
) -> None:
    """An HTTP fallback session gets the 4200 error and close frames too."""
    server, _ = start_draining_server(start_server, 1)
    session = FallbackSession(server.port, "drainsession")
    await session.open()
    try:
        await session.read_until(b"pusher:connection_established")
        send_signal(server)
        received = await session.read_until(b"c[4200,")
    finally:
        session.close()
    exit_code = await asyncio.to_thread(wait_exit, server, WAIT_TIMEOUT)

    assert exit_code == 0
    assert b'\\"code\\":4200' in received
    assert "Drained 1 connection(s)" in server.log_text()
