"""The ``clarion`` command."""

from __future__ import annotations

import argparse
import importlib

from clarion import __version__

__all__ = ["main"]

# Modules under clarion.commands, each adding one subcommand.
COMMANDS = ("serve", "listen", "trigger", "webhooks", "apps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clarion",
        description="A realtime server for the Pusher Channels protocol.",
    )
    parser.add_argument("--version", action="version", version=f"clarion {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"clarion.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(args.handler(args))
