"""``clarion serve``: run the server."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the server",
        description=(
            "Serve the Pusher WebSocket endpoint (/app/{key}) and HTTP API "
            "(/apps/{app_id}) on one port. Flags override CLARION_* environment "
            "variables, which override the config file."
        ),
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (default 6001)")
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config file with [server] and [[apps]]"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /up and /ready on this TCP port too, and /metrics "
        "only there (default 0: /metrics on --port)",
    )
    parser.add_argument(
        "--tls-cert-file",
        metavar="FILE",
        help="PEM certificate chain; serve wss:// and https:// on --port",
    )
    parser.add_argument(
        "--tls-key-file",
        metavar="FILE",
        help="PEM private key of --tls-cert-file, unencrypted (default: read it "
        "from --tls-cert-file)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default INFO)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        type=str.lower,
        help="log lines as readable text or as one JSON object each (default text)",
    )
    parser.add_argument(
        "--expose-dev-app",
        action="store_true",
        default=None,
        help="allow a non-loopback --host while the public development app is active",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port (default 1); more need --redis-url",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis://, rediss:// or unix:// URL of the Redis that the processes share",
    )
    parser.add_argument(
        "--drain-seconds",
        type=int,
        metavar="SECONDS",
        help="on SIGTERM, close open connections with 4200 spread over this many "
        "seconds (default 10; 0 closes them all at once)",
    )
    # Set by the supervisor for its workers.
    parser.add_argument(
        "--reuse-port", action="store_true", default=None, help=argparse.SUPPRESS
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clarion.logs import configure_logging, held_records, replay_records
    from clarion.server.app import ListenError, run as run_server
    from clarion.server.config import ConfigError, load_settings
    from clarion.server.tls import load_tls_context

    flags = {
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "config": args.config,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "expose_dev_app": args.expose_dev_app,
        "workers": args.workers,
        "redis_url": args.redis_url,
        "reuse_port": args.reuse_port,
        "drain_seconds": args.drain_seconds,
        "tls_cert_file": args.tls_cert_file,
        "tls_key_file": args.tls_key_file,
    }
    try:
        # The log level and format are settings too, so warnings about the
        # settings wait until logging is configured.
        with held_records() as records:
            settings = load_settings(flags=flags, environ=os.environ)
        # Checked here too, so that a bad file stops the supervisor of
        # --workers at once instead of every worker over and over.
        load_tls_context(settings)
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    replay_records(records)
    if settings.workers > 1:
        from clarion.server.workers import stop_timeout, supervise

        if not settings.port:
            print("clarion: --workers needs a fixed --port, not 0", file=sys.stderr)
            return 2
        return supervise(settings.workers, sys.argv[2:], stop_timeout(settings))
    try:
        run_server(settings)
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 1
    return 0
