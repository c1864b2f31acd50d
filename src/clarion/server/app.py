"""Start and stop one server process."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from clarion.server.adapters import Adapter, LocalAdapter
from clarion.server.app_store import AppStoreError, open_app_store
from clarion.server.apps import CachedAppRegistry
from clarion.server.config import (
    DEV_APP,
    DEV_APP_WARNING,
    ConfigError,
    Settings,
    check_dev_app_exposure,
)
from clarion.server.console import Console
from clarion.server.fallback import HttpSessions
from clarion.server.http import HttpProtocol
from clarion.server.http_api import HttpApi
from clarion.server.hub import Hub
from clarion.server.limits import LimitCounter, LocalLimitCounter
from clarion.server.metrics import Metrics
from clarion.server.ops import OpsEndpoints
from clarion.server.tls import load_tls_context, reload_tls_context

__all__ = ["ListenError", "run", "serve"]

logger = logging.getLogger(__name__)


class ListenError(Exception):
    """The server could not open its listening socket."""


async def serve(
    settings: Settings, stop: asyncio.Event, hurry: asyncio.Event | None = None
) -> None:
    """Listen until ``stop`` is set, then drain: stop accepting, close every
    connection with 4200 over ``settings.drain_seconds``, flush the webhooks.
    Setting ``hurry`` during the drain closes the remaining connections at once.

    Raises:
        ConfigError: the app store setting is invalid, the development app
        would be served beyond loopback, or the TLS certificate or key file
        cannot be loaded.
        ListenError: a port cannot be opened.
    """
    # Each process loads the files itself, the workers of --workers included.
    tls_context = load_tls_context(settings)
    apps = await open_registry(settings)
    hub = Hub(settings, apps, _adapter(settings), limits=_limit_counter(settings))
    apps.on_change = hub.apps_changed
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
        tls_context,
    )
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGHUP, _reload_tls, settings, tls_context
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
    apps.start()
    metrics.start()
    if console is not None:
        console.start()
    ports = sorted({sock.getsockname()[1] for sock in server.sockets})
    logger.info(
        "Listening on %s port %s%s (WebSocket /app/{key}, HTTP API /apps/{app_id})",
        settings.host,
        ", ".join(map(str, ports)),
        " with TLS" if tls_context is not None else "",
    )
    if metrics_server is not None:
        logger.info(
            "Serving /metrics, /up and /ready on %s port %d",
            settings.host,
            settings.metrics_port,
        )
    for app in apps.all():
        logger.info(
            "Serving app %s (key %s, client events %s)",
            app.id,
            app.key,
            "on" if app.client_events else "off",
        )
    if any(app.secret == DEV_APP.secret for app in apps.all()):
        logger.warning(DEV_APP_WARNING)

    await stop.wait()
    await _stop(hub, server, hurry or asyncio.Event())
    await apps.stop()
    if console is not None:
        await console.stop()
    await metrics.stop()
    if metrics_server is not None:
        metrics_server.close()
        await metrics_server.wait_closed()


async def _listen(
    settings: Settings,
    port: int,
    protocol_factory: Callable[[], asyncio.Protocol],
    option: str,
    tls_context: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """Open a listening socket on ``settings.host`` and ``port``, serving TLS
    when ``tls_context`` is given.

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
            ssl=tls_context,
            # A peer that never completes the TLS handshake is dropped like one
            # that never completes an HTTP request.
            ssl_handshake_timeout=(
                float(settings.http_idle_timeout) if tls_context else None
            ),
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenError(
            f"Cannot listen on {settings.host} port {port}: {reason}. "
            f"Stop the program that uses it, or choose another {option}."
        ) from exc


async def open_registry(settings: Settings) -> CachedAppRegistry:
    """Return the apps of the config file and the app store, read once.

    A store that cannot be read now is logged and read again in the
    background. Meanwhile only the apps of the config file are served.

    Raises:
        ConfigError: the app store setting is invalid, or the development app
        would be served beyond loopback.
    """
    try:
        store = open_app_store(
            settings.app_store,
            settings.data_dir,
            create=False,
            timeout=settings.app_store_timeout_ms / 1000,
        )
    except AppStoreError as exc:
        raise ConfigError(str(exc)) from exc
    registry = CachedAppRegistry(
        settings.config_apps,
        store,
        refresh_interval=settings.app_refresh_ms / 1000,
        dev_app=DEV_APP if settings.dev_app_allowed else None,
        read_timeout=settings.app_store_timeout_ms / 1000,
    )
    if await registry.refresh():
        state = (
            "absent, so no apps yet"
            if getattr(store, "absent", False)
            else f"{len(registry.store_apps)} app(s)"
        )
        logger.info(
            "Read the app store, %s (%s); reading it again every %g s",
            store.description,
            state,
            registry.refresh_interval,
        )
    if registry.loaded and not registry.all() and not settings.dev_app_allowed:
        check_dev_app_exposure(settings, True)
    return registry


def _reload_tls(settings: Settings, context: ssl.SSLContext | None) -> None:
    """Reload the certificate and key files on SIGHUP, so that a renewed
    certificate is served without a restart."""
    if context is None:
        logger.info("Received SIGHUP: nothing to reload without tls_cert_file")
        return
    try:
        reload_tls_context(context, settings)
    except ConfigError as exc:
        logger.error("Received SIGHUP: %s; still serving the previous certificate", exc)
        return
    logger.info(
        "Received SIGHUP: reloaded the TLS certificate from %s", settings.tls_cert_file
    )


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


def _limit_counter(settings: Settings) -> LimitCounter:
    if not settings.redis_url:
        return LocalLimitCounter()
    from clarion.server.redis_limits import RedisLimitCounter

    return RedisLimitCounter(
        settings.redis_url,
        prefix=settings.redis_prefix,
        node_timeout=settings.node_timeout,
    )


async def _stop(hub: Hub, server: asyncio.Server, hurry: asyncio.Event) -> None:
    # Closing the listening socket first makes the kernel hand new connections
    # to the other processes that listen on the port with SO_REUSEPORT, while
    # /ready (on metrics_port, or over open HTTP connections) reports draining.
    server.close()
    hub.health.draining = True
    logger.info("Stopping: no longer accepting new connections")
    await hub.stop(hub.settings.drain_seconds, hurry)
    await hub.adapter.close()
    await server.wait_closed()
    logger.info("Stopped")


def run(settings: Settings) -> None:
    """Run the server on uvloop where it is installed, until SIGINT or SIGTERM.

    The first signal starts the drain (see ``serve``), and a second one during
    the drain closes the remaining connections at once.
    """

    async def main() -> None:
        stop = asyncio.Event()
        hurry = asyncio.Event()

        def on_signal(signum: signal.Signals) -> None:
            if not stop.is_set():
                logger.info("Received %s: stopping", signum.name)
                stop.set()
            elif not hurry.is_set():
                logger.info(
                    "Received %s again: finishing the drain at once", signum.name
                )
                hurry.set()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        await serve(settings, stop, hurry)

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
