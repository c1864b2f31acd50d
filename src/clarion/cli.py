"""The ``clarion`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from clarion import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clarion",
        description="A realtime server for the Pusher Channels protocol.",
    )
    parser.add_argument("--version", action="version", version=f"clarion {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description=(
            "Serve the Pusher WebSocket endpoint (/app/{key}) and HTTP API "
            "(/apps/{app_id}) on one port. Flags override CLARION_* environment "
            "variables, which override the config file."
        ),
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port to listen on (default 6001)")
    serve.add_argument(
        "--config", metavar="FILE", help="TOML config file with [server] and [[apps]]"
    )
    serve.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default INFO)",
    )
    serve.add_argument(
        "--expose-dev-app",
        action="store_true",
        default=None,
        help="allow a non-loopback --host while the public development app is active",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)


def _serve(args: argparse.Namespace) -> None:
    from clarion.server.app import run
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
        raise SystemExit(2) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run(settings)
