"""``clarion webhooks failed | replay``: the webhook dead-letter store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clarion.server.webhooks import Outbox

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "webhooks",
        help="list or replay webhooks that could not be delivered",
        description=(
            "Webhooks still failing after the retry window move to a dead-letter "
            "store in the data directory. List them, or move them back to the "
            "outbox, where a running server sends them again within a second."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True)

    failed = actions.add_parser("failed", help="list dead-lettered webhooks")
    _add_location_arguments(failed)
    failed.add_argument(
        "--limit", type=int, default=100, help="list at most this many (default 100)"
    )
    failed.add_argument(
        "--json", action="store_true", help="print one JSON object per line"
    )
    failed.set_defaults(handler=list_failed)

    replay = actions.add_parser("replay", help="send dead-lettered webhooks again")
    _add_location_arguments(replay)
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "ids", nargs="*", type=int, default=[], metavar="ID", help="ids to replay"
    )
    which.add_argument(
        "--all", action="store_true", help="replay every dead-lettered webhook"
    )
    replay.set_defaults(handler=replay_failed)


def _add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="the server's TOML config file (for data_dir)"
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="the server's data directory (default data)"
    )
    parser.add_argument(
        "--redis-url", metavar="URL", help="the cluster's Redis, if webhooks wait there"
    )


def _open_outbox(args: argparse.Namespace) -> Outbox | None:
    """Open the outbox that the server's settings name: Redis, or the SQLite
    file of the data directory."""
    from clarion.server.config import ConfigError, load_settings
    from clarion.server.webhooks import open_outbox

    try:
        settings = load_settings(
            flags={
                "config": args.config,
                "data_dir": args.data_dir,
                "redis_url": args.redis_url,
            },
            environ=os.environ,
        )
    except ConfigError as exc:
        print(f"clarion: {exc}", file=sys.stderr)
        return None
    path = Path(settings.data_dir) / "webhooks.sqlite3"
    if not settings.redis_url and not path.exists():
        print(f"clarion: no webhook outbox at {path}", file=sys.stderr)
        return None
    return open_outbox(settings)


def list_failed(args: argparse.Namespace) -> int:
    outbox = _open_outbox(args)
    if outbox is None:
        return 2

    async def read() -> list[Any]:
        try:
            return await outbox.dead(args.limit)
        finally:
            await outbox.close()

    deliveries = asyncio.run(read())
    for delivery in deliveries:
        created = datetime.fromtimestamp(delivery.created_at, UTC).isoformat()
        if args.json:
            record = {
                "id": delivery.id,
                "app_id": delivery.app_id,
                "url": delivery.url,
                "created": created,
                "attempts": delivery.attempts,
                "last_error": delivery.last_error,
                "body": delivery.body.decode(errors="replace"),
            }
            print(json.dumps(record))
        else:
            print(
                f"{delivery.id}\tapp {delivery.app_id}\t{delivery.url}\t{created}\t"
                f"{delivery.attempts} attempts\t{delivery.last_error}"
            )
    if not args.json:
        print(f"{len(deliveries)} failed webhook(s)", file=sys.stderr)
    return 0


def replay_failed(args: argparse.Namespace) -> int:
    outbox = _open_outbox(args)
    if outbox is None:
        return 2

    async def move() -> int:
        try:
            return await outbox.replay(None if args.all else args.ids, time.time())
        finally:
            await outbox.close()

    moved = asyncio.run(move())
    print(f"{moved} webhook(s) moved back to the outbox")
    return 0 if moved or args.all else 1
