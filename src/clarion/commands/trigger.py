"""``clarion trigger``: publish one event through the HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clarion.rest import RestClient

__all__ = ["add_parser"]

# Exit statuses: 0 when the server accepted the event, 1 when the request
# failed (an error status, or no response), 2 for invalid arguments.
EXIT_FAILED = 1
EXIT_USAGE = 2

# The development app that `clarion serve` runs when no app is configured.
DEV_APP_ID = "1"
DEV_APP_KEY = "app-key"
DEV_APP_SECRET = "app-secret"


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "trigger",
        help="publish an event through the HTTP API",
        description=(
            "Publish one event on one or more channels through the signed HTTP "
            "API of a Clarion (or any Pusher protocol) server, and print the "
            "server's JSON answer. The app credentials default to the "
            "CLARION_APP_ID, CLARION_APP_KEY and CLARION_APP_SECRET environment "
            "variables, then to the development app (1, app-key, app-secret). "
            "With --tls, the server certificate is checked against the system's "
            "CAs, or the file in SSL_CERT_FILE, or --ca-file."
        ),
    )

    parser.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel name")
    parser.add_argument("-e", "--event", required=True, help="event name")
    parser.add_argument(
        "-d",
        "--data",
        default="{}",
        help="event data, sent as this exact string; - reads it from stdin "
        "(default {})",
    )

    parser.add_argument(
        "--host", default="127.0.0.1", help="server host (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=6001, help="server port (default 6001)"
    )
    parser.add_argument("--tls", action="store_true", help="use https://")
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="PEM file of the CA certificates to trust for --tls instead of the "
        "system's, such as a private CA",
    )

    parser.add_argument(
        "--app-id", default=os.environ.get("CLARION_APP_ID", DEV_APP_ID), help="app id"
    )
    parser.add_argument(
        "--key", default=os.environ.get("CLARION_APP_KEY", DEV_APP_KEY), help="app key"
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get("CLARION_APP_SECRET", DEV_APP_SECRET),
        help="app secret (prefer CLARION_APP_SECRET: arguments are visible to "
        "other local users)",
    )

    parser.add_argument(
        "--socket-id",
        help="socket id of a connection that must not receive the event",
    )
    parser.add_argument(
        "--info",
        help="comma-separated channel attributes to print, such as "
        "subscription_count,user_count",
    )
    parser.add_argument(
        "--encryption-master-key-base64",
        metavar="KEY",
        help="32-byte base64 master key, needed for private-encrypted channels",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time limit for the request (default 10)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clarion.rest import RestClient, RestError

    data = sys.stdin.read() if args.data == "-" else args.data
    info = [part.strip() for part in (args.info or "").split(",") if part.strip()]
    scheme = "https" if args.tls else "http"
    if args.ca_file is not None and not args.tls:
        print("clarion trigger: --ca-file needs --tls", file=sys.stderr)
        return EXIT_USAGE
    try:
        ssl_context = (
            ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        print(f"clarion trigger: cannot read --ca-file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = RestClient(
            app_id=args.app_id,
            key=args.key,
            secret=args.secret,
            url=f"{scheme}://{_host_for_url(args.host)}:{args.port}",
            encryption_master_key_base64=args.encryption_master_key_base64,
            timeout=args.timeout,
            ssl_context=ssl_context,
        )
        answer = asyncio.run(_trigger(client, args, data, info))
    except ValueError as exc:
        print(f"clarion trigger: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RestError as exc:
        print(f"clarion trigger: {exc}", file=sys.stderr)
        if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            print(
                "hint: if a private CA issued the server's certificate, pass "
                "--ca-file FILE or set SSL_CERT_FILE",
                file=sys.stderr,
            )
        return EXIT_FAILED
    print(json.dumps(answer, separators=(",", ":"), ensure_ascii=False))
    return 0


async def _trigger(
    client: RestClient, args: argparse.Namespace, data: str, info: list[str]
) -> dict[str, Any]:
    async with client:
        return await client.trigger(
            args.channels, args.event, data, socket_id=args.socket_id, info=info
        )


def _host_for_url(host: str) -> str:
    """Bracket an IPv6 address, as a URL requires."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
