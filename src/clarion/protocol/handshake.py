"""Admission checks for a new WebSocket connection, in the order the server runs
them."""

from __future__ import annotations

import secrets

from clarion.protocol.apps import App
from clarion.protocol.errors import ConnectionRejected, ErrorCode, shorten
from clarion.protocol.origins import is_origin_allowed

__all__ = [
    "SUPPORTED_PROTOCOLS",
    "app_key_from_path",
    "check_app",
    "check_connection_quota",
    "check_origin",
    "check_protocol_version",
    "check_tls",
    "new_socket_id",
]

SUPPORTED_PROTOCOLS = range(4, 8)
"""Protocol versions 4 to 7 behave the same here; 1 to 3 are retired."""


def app_key_from_path(path: str) -> str:
    """Return ``{key}`` from a path of exactly ``/app/{key}``.

    Raises:
        ConnectionRejected: 4005 for any other path.
    """
    prefix, _, key = path.partition("/app/")
    if prefix or not key or "/" in key:
        raise ConnectionRejected(ErrorCode.PATH_NOT_FOUND, "Path not found")
    return key


def check_app(app: App | None, key: str) -> App:
    """Check that the app exists and is enabled.

    Raises:
        ConnectionRejected: 4001 or 4003.
    """
    if app is None:
        raise ConnectionRejected(
            ErrorCode.APP_NOT_FOUND, f"App key {key} does not exist"
        )
    if not app.enabled:
        raise ConnectionRejected(ErrorCode.APP_DISABLED, "Application disabled")
    return app


def check_origin(app: App, origin: str | None) -> None:
    """Check the request's ``Origin`` header against the app's allowed origins.

    A request without the header passes. Browsers always send it on WebSocket
    upgrades and on the fallback's POST requests, while any other client can
    send whatever it likes. So the check keeps pages of other sites out, and
    does not authenticate programs.

    Raises:
        ConnectionRejected: 4009 when the origin matches none of the patterns.
    """
    if origin is None or is_origin_allowed(app.allowed_origins, origin):
        return
    raise ConnectionRejected(
        ErrorCode.UNAUTHORIZED, f"Origin {shorten(origin, 60)} is not allowed"
    )


def check_connection_quota(app: App, open_connections: int) -> None:
    """Check that the app has room for one more connection.

    Raises:
        ConnectionRejected: 4004 when ``max_connections`` are already open.
    """
    quota = app.limits.max_connections
    if quota and open_connections >= quota:
        raise ConnectionRejected(
            ErrorCode.OVER_CONNECTION_QUOTA, "Application is over connection quota"
        )


def check_protocol_version(raw: str | None) -> int:
    """Check the ``protocol`` query parameter.

    Raises:
        ConnectionRejected: 4008 when it is missing, 4007 when it is not a
        supported version (4 to 7).
    """
    if raw is None:
        raise ConnectionRejected(ErrorCode.NO_PROTOCOL, "No protocol version supplied")
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 3):
        raise ConnectionRejected(
            ErrorCode.UNSUPPORTED_PROTOCOL, "Unsupported protocol version"
        )
    if int(raw) not in SUPPORTED_PROTOCOLS:
        raise ConnectionRejected(
            ErrorCode.UNSUPPORTED_PROTOCOL, "Unsupported protocol version"
        )
    return int(raw)


def check_tls(app: App, is_tls: bool) -> None:
    """Check that a connection to an app with ``require_tls`` uses TLS.

    Raises:
        ConnectionRejected: 4000, on which pusher-js switches to TLS and
        reconnects at once.
    """
    if app.require_tls and not is_tls:
        raise ConnectionRejected(
            ErrorCode.TLS_ONLY,
            "Application only accepts SSL connections, reconnect using wss://",
        )


def new_socket_id() -> str:
    """Draw a random ``socket_id`` of two integers in 0..10^10, joined by a dot.

    The caller re-draws on a collision with an open connection.
    """
    return f"{secrets.randbelow(10**10 + 1)}.{secrets.randbelow(10**10 + 1)}"
