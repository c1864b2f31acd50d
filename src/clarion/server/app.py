"""Start and stop one server process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from clarion.server.adapters import Adapter, LocalAdapter
from clarion.server.apps import StaticAppRegistry
from clarion.server.config import Settings
from clarion.server.console import Console
from clarion.server.fallback import HttpSessions
from clarion.server.http import HttpProtocol
from clarion.server.http_api import HttpApi
from clarion.server.hub import Hub
from clarion.server.metrics import Metrics
from clarion.server.ops import OpsEndpoints

__all__ = ["ListenError", "run", "serve"]

logger = logging.getLogger(__name__)


class ListenError(Exception):
    """The server could not open its listening socket."""


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Listen until ``stop`` is set, then close every connection with 4200."""
    hub = Hub(settings, StaticAppRegistry(settings.apps), _adapter(settings))
    api = HttpApi(hub)
    sessions = HttpSessions(hub, settings.fallback_path)
    console = Console(hub) if settings.console_token else None
    metrics = Metrics(hub)
    # /metrics goes on the main port unless it has a port of its own.
    shared_metrics = None if settings.metrics_port else metrics
    ops = OpsEndpoints(hub, shared_metrics)
    server = await _listen(
        settings,
        settings.port,
        lambda: HttpProtocol(hub, api, sessions, console, ops),
        "--port",
    )
    metrics_server = None
    if settings.metrics_port:
        metrics_ops = OpsEndpoints(hub, metrics)
        try:
            metrics_server = await _listen(
                settings,
                settings.metrics_port,
                lambda: HttpProtocol(hub, metrics_ops),
                "--metrics-port",
            )
        except ListenError:
            server.close()
            raise
    hub.start()
    metrics.start()
    if console is not None:
        console.start()
    ports = sorted({sock.getsockname()[1] for sock in server.sockets})
    logger.info(
        "Listening on %s port %s (WebSocket /app/{key}, HTTP API /apps/{app_id})",
        settings.host,
        ", ".join(map(str, ports)),
    )
    if metrics_server is not None:
        logger.info(
            "Serving /metrics, /up and /ready on %s port %d",
            settings.host,
            settings.metrics_port,
        )
    for app in settings.apps:
        logger.info(
            "Serving app %s (key %s, client events %s)",
            app.id,
            app.key,
            "on" if app.client_events else "off",
        )
    if settings.uses_dev_app:
        logger.warning(
            "The development app (id 1, key app-key, secret app-secret) is active. "
            "Its credentials are public: use them for development only."
        )

    await stop.wait()
    if console is not None:
        await console.stop()
    await _stop(hub, server)
    await metrics.stop()
    if metrics_server is not None:
        metrics_server.close()
        await metrics_server.wait_closed()


async def _listen(
    settings: Settings,
    port: int,
    protocol_factory: Callable[[], asyncio.Protocol],
    option: str,
) -> asyncio.Server:
    """Open a listening socket on ``settings.host`` and ``port``.

    Raises:
        ListenError: the port is taken or the address is invalid; the message
        names ``option``, the setting to change.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            protocol_factory,
            settings.host,
            port,
            backlog=4096,
            reuse_port=settings.reuse_port or None,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenError(
            f"Cannot listen on {settings.host} port {port}: {reason}. "
            f"Stop the program that uses it, or choose another {option}."
        ) from exc


def _adapter(settings: Settings) -> Adapter:
    if not settings.redis_url:
        return LocalAdapter()
    from clarion.server.adapters.redis import RedisAdapter

    return RedisAdapter(
        settings.redis_url,
        prefix=settings.redis_prefix,
        node_timeout=settings.node_timeout,
        webhook_delay=settings.webhook_delay_ms / 1000,
    )


async def _stop(hub: Hub, server: asyncio.Server) -> None:
    logger.info("Stopping: closing %d connection(s)", len(hub.connections))
    server.close()
    await hub.stop()
    await hub.adapter.close()
    await server.wait_closed()
    logger.info("Stopped")


def run(settings: Settings) -> None:
    """Run the server on uvloop where it is installed, until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    _run_loop(main)


def _run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop
    except ImportError:
        logger.info("uvloop is not installed; using the default asyncio event loop")
        asyncio.run(main())
        return
    if sys.version_info >= (3, 12):
        uvloop.run(main())
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(main())
