"""``clarion listen``: connect, subscribe and print events as they arrive."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import logging
import signal
import sys
from contextlib import suppress
from typing import Any

__all__ = ["add_parser"]

# The exit status is 0 after --count events, --timeout or Ctrl-C. It is 1 when
# the server rejected the connection, and 2 for invalid arguments.
EXIT_REFUSED = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "listen",
        help="subscribe to channels and print their events",
        description=(
            "Connect to a Clarion (or any Pusher protocol) server, subscribe to "
            "the channels and print each event on stdout as one JSON line: "
            '{"channel": ..., "event": ..., "data": ...}. Connection states '
            "and subscription results go to stderr."
        ),
    )
    parser.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel name")
    parser.add_argument(
        "--host", default="127.0.0.1", help="server host (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=6001, help="server port (default 6001)"
    )
    parser.add_argument("--tls", action="store_true", help="connect with wss://")
    parser.add_argument("--key", default="app-key", help="app key (default app-key)")

    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--auth-endpoint",
        metavar="URL",
        help="the app's channel authorization endpoint, for private and presence "
        "channels",
    )
    auth.add_argument(
        "--secret",
        help="app secret, to sign private and presence subscriptions locally "
        "instead of asking an auth endpoint (development only)",
    )
    parser.add_argument(
        "--user-id",
        default="clarion-listen",
        help="presence user id when signing locally with --secret "
        "(default clarion-listen)",
    )
    parser.add_argument(
        "--encryption-master-key-base64",
        metavar="KEY",
        help="the app's 32-byte encryption master key in base64, to read "
        "private-encrypted channels when signing locally with --secret",
    )

    parser.add_argument(
        "--count",
        type=int,
        metavar="N",
        help="exit after printing N events",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="exit after this many seconds",
    )
    parser.add_argument(
        "--internal",
        action="store_true",
        help="also print pusher: events such as pusher:subscription_succeeded",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        print("clarion listen: --count must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout is not None and args.timeout <= 0:
        print("clarion listen: --timeout must be a positive number", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(listen(args))
    except KeyboardInterrupt:
        return 0


def local_authorizer(
    key: str, secret: str, user_id: str, master_key: bytes | None
) -> Any:
    """Return an authorizer that signs subscriptions with the app secret itself.

    With ``master_key`` it also derives each encrypted channel's shared secret,
    SHA-256 of the channel name followed by the master key, as server SDKs do.
    """
    from clarion.client import ChannelAuthorizationRequest
    from clarion.protocol.auth import sign
    from clarion.protocol.messages import dumps

    def authorize(request: ChannelAuthorizationRequest) -> dict[str, str]:
        name = request.channel_name
        string_to_sign = f"{request.socket_id}:{name}"
        response = {}
        if name.startswith("presence-"):
            channel_data = dumps({"user_id": user_id})
            string_to_sign += f":{channel_data}"
            response["channel_data"] = channel_data
        if name.startswith("private-encrypted-") and master_key is not None:
            digest = hashlib.sha256(name.encode() + master_key).digest()
            response["shared_secret"] = base64.b64encode(digest).decode()
        response["auth"] = f"{key}:{sign(secret, string_to_sign)}"
        return response

    return authorize


def decode_master_key(text: str) -> bytes:
    """Decode a base64 encryption master key.

    Raises:
        ValueError: the text is not base64 of exactly 32 bytes.
    """
    try:
        master_key = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the master key is not valid base64: {exc}") from None
    if len(master_key) != 32:
        raise ValueError(f"the master key must be 32 bytes, got {len(master_key)}")
    return master_key


async def listen(args: argparse.Namespace) -> int:
    from clarion.client import BadChannelName, Client

    authorizer: Any = args.auth_endpoint
    if args.secret is not None:
        master_key = None
        if args.encryption_master_key_base64 is not None:
            try:
                master_key = decode_master_key(args.encryption_master_key_base64)
            except ValueError as exc:
                print(
                    f"clarion listen: invalid --encryption-master-key-base64: {exc}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
        authorizer = local_authorizer(args.key, args.secret, args.user_id, master_key)
    client = Client(
        args.key,
        host=args.host,
        port=args.port,
        tls=args.tls,
        channel_authorizer=authorizer,
    )
    done = asyncio.Event()
    printed = 0

    def on_state_change(change: Any) -> None:
        print(
            f"state: {change.previous} -> {change.current}", file=sys.stderr, flush=True
        )
        if change.current == "disconnected":
            done.set()

    def on_error(error: Any) -> None:
        print(f"error: {json.dumps(error, default=str)}", file=sys.stderr, flush=True)

    def printer(channel_name: str) -> Any:
        def print_event(event: str, data: Any) -> None:
            nonlocal printed
            if event.startswith("pusher:") and not args.internal:
                if event == "pusher:subscription_succeeded":
                    print(f"subscribed: {channel_name}", file=sys.stderr, flush=True)
                elif event == "pusher:subscription_error":
                    message = json.dumps(data, default=str)
                    print(
                        f"subscription error: {channel_name} {message}",
                        file=sys.stderr,
                        flush=True,
                    )
                return
            record = {"channel": channel_name, "event": event, "data": data}
            print(json.dumps(record, default=_plain), flush=True)
            printed += 1
            if args.count is not None and printed >= args.count:
                done.set()

        return print_event

    client.connection.bind("state_change", on_state_change)
    client.connection.bind("error", on_error)
    try:
        for name in args.channels:
            client.subscribe(name).bind_global(printer(name))
    except BadChannelName as exc:
        print(f"clarion listen: {exc}", file=sys.stderr)
        return EXIT_USAGE

    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal_number, done.set)
    client.connect()
    try:
        async with asyncio.timeout(args.timeout):
            await done.wait()
    except TimeoutError:
        pass
    refused = client.connection.state == "disconnected"
    await client.aclose()
    return EXIT_REFUSED if refused else 0


def _plain(value: Any) -> Any:
    """Encode presence members and other objects for the JSON output."""
    if hasattr(value, "__iter__"):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    return str(value)
