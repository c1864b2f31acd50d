"""``clarion listen``: connect, subscribe and print events as they arrive."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import signal
import ssl
import sys
from contextlib import suppress
from typing import Any

__all__ = ["add_parser"]

DEV_APP_KEY = "app-key"
"""The key of the development app that ``clarion serve`` runs by default."""

EXIT_NOT_CONNECTED = 1
"""The server refused the connection, or none was open when --timeout ended."""
EXIT_USAGE = 2
EXIT_SUBSCRIPTION_FAILED = 3
"""The server or the auth endpoint rejected a subscription."""

EXIT_STATUS_HELP = """\
exit status:
  0  --count events printed, --timeout reached while connected, or Ctrl-C
  1  the server refused the connection, or --timeout ended with no connection
  2  invalid arguments
  3  a subscription failed (pusher:subscription_error, such as an auth
     endpoint's 401 or 403); listen stops at the first one
"""


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "listen",
        help="subscribe to channels and print their events",
        description=(
            "Connect to a Clarion (or any Pusher protocol) server, subscribe to "
            "the channels and print each event on stdout as one JSON line: "
            '{"channel": ..., "event": ..., "data": ...}. Connection states '
            "and subscription results go to stderr. CLARION_APP_KEY and "
            "CLARION_APP_SECRET set the defaults of --key and --secret, as for "
            "clarion trigger. With --tls, the server certificate is checked "
            "against the system's CAs, or the file in SSL_CERT_FILE, or --ca-file."
        ),
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("channels", nargs="+", metavar="CHANNEL", help="channel name")
    parser.add_argument(
        "--host", default="127.0.0.1", help="server host (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=6001, help="server port (default 6001)"
    )
    parser.add_argument("--tls", action="store_true", help="connect with wss://")
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help="PEM file of the CA certificates to trust for --tls instead of the "
        "system's, such as a private CA",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("CLARION_APP_KEY", DEV_APP_KEY),
        help="app key (default: CLARION_APP_KEY, else app-key)",
    )

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
        "instead of asking an auth endpoint (development only; default: "
        "CLARION_APP_SECRET, which --auth-endpoint overrides)",
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
    if args.ca_file is not None and not args.tls:
        print("clarion listen: --ca-file needs --tls", file=sys.stderr)
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
    secret = args.secret
    if secret is None and args.auth_endpoint is None:
        secret = os.environ.get("CLARION_APP_SECRET") or None
    if secret is not None:
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
        authorizer = local_authorizer(args.key, secret, args.user_id, master_key)
    try:
        ssl_context = _ssl_context(args.ca_file)
    except (OSError, ssl.SSLError) as exc:
        print(f"clarion listen: cannot read --ca-file: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = Client(
        args.key,
        host=args.host,
        port=args.port,
        tls=args.tls,
        channel_authorizer=authorizer,
        ssl_context=ssl_context,
    )
    done = asyncio.Event()
    printed = 0
    subscription_failed = False

    def on_state_change(change: Any) -> None:
        print(
            f"state: {change.previous} -> {change.current}", file=sys.stderr, flush=True
        )
        if change.current == "unavailable":
            _print_not_connected(client.connection.last_error, args, retrying=True)
        if change.current == "disconnected":
            done.set()

    def on_error(error: Any) -> None:
        print(f"error: {json.dumps(error, default=str)}", file=sys.stderr, flush=True)

    def printer(channel_name: str) -> Any:
        def print_event(event: str, data: Any) -> None:
            nonlocal printed, subscription_failed
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
            else:
                record = {"channel": channel_name, "event": event, "data": data}
                print(json.dumps(record, default=_plain), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    done.set()
            if event == "pusher:subscription_error":
                subscription_failed = True
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
    timed_out = False
    try:
        async with asyncio.timeout(args.timeout):
            await done.wait()
    except TimeoutError:
        timed_out = True
    state = client.connection.state
    await client.aclose()
    if subscription_failed:
        return EXIT_SUBSCRIPTION_FAILED
    if state == "disconnected":
        return EXIT_NOT_CONNECTED
    if timed_out and state != "connected":
        print(
            f"clarion listen: not connected when --timeout {args.timeout:g} ended",
            file=sys.stderr,
        )
        _print_not_connected(client.connection.last_error, args, retrying=False)
        return EXIT_NOT_CONNECTED
    return 0


def _ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Return a context that trusts ``ca_file`` only, or None for the default.

    Raises:
        OSError: the file cannot be read.
        ssl.SSLError: the file contains no valid PEM certificate.
    """
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=ca_file)


def _print_not_connected(
    error: BaseException | None, args: argparse.Namespace, *, retrying: bool
) -> None:
    """Print why no connection is open and what may fix it."""
    suffix = "; still trying" if retrying else ""
    if error is None:
        print(f"not connected{suffix}", file=sys.stderr, flush=True)
        return
    print(
        f"not connected: the last attempt failed: {error}{suffix}",
        file=sys.stderr,
        flush=True,
    )
    hint = _hint(error, args)
    if hint:
        print(f"hint: {hint}", file=sys.stderr, flush=True)


def _hint(error: BaseException, args: argparse.Namespace) -> str:
    from websockets.exceptions import InvalidMessage

    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            "the server's certificate is not trusted; if a private CA issued "
            "it, pass --ca-file FILE or set SSL_CERT_FILE"
        )
    if isinstance(error, ssl.SSLError):
        return "the server may not serve TLS on this port; try without --tls"
    if isinstance(error, ConnectionRefusedError):
        return f"no server accepts connections on {args.host} port {args.port}"
    if isinstance(error, InvalidMessage) and not args.tls:
        # A TLS server reads the plain HTTP request as a broken TLS handshake
        # and closes the connection without an HTTP response.
        return "if the server serves TLS (wss://) on this port, add --tls"
    return ""


def _plain(value: Any) -> Any:
    """Encode presence members and other objects for the JSON output."""
    if hasattr(value, "__iter__"):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: getattr(value, name) for name in value.__dataclass_fields__}
    return str(value)
