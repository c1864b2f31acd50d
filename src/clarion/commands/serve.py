"""``clarion serve``: run the server."""

from __future__ import annotations

import argparse
import logging
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
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default INFO)",
    )
    parser.add_argument(
        "--expose-dev-app",
        action="store_true",
        default=None,
        help="allow a non-loopback --host while the public development app is active",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clarion.server.app import ListenError, run as run_server
    from clarion.server.config import ConfigError, load_settings

    flags = {
        "host": args.host,
        "port": args.port,
        "config": args.config,
        "log_level": args.log_level,
        "expose_dev_app": args.expose_dev_app,
    }
    try:
        settings = load_settings(flags=flags, environ=os.environ)
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_server(settings)
    except ListenError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return 1
    return 0
