"""Error and close codes of the Pusher protocol, and the exceptions that carry them.

Close code ranges (Pusher protocol): 4000-4099 tell the client not to reconnect
unchanged, 4100-4199 to reconnect after backing off, 4200-4299 to reconnect at
once. 4300-4399 are reported in ``pusher:error`` only: pusher-js treats a close
with such a code as a refusal, so the server never closes a socket with one.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "shorten",
    "ApiError",
    "ConnectionRejected",
    "ErrorCode",
    "ProtocolError",
    "PusherError",
    "SubscriptionError",
]


def shorten(text: str, limit: int = 100) -> str:
    """Cut peer-supplied ``text`` that an error message repeats, so that a huge
    input does not come back, or fill the log, at full length."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ErrorCode(IntEnum):
    """Codes sent in ``pusher:error`` and as WebSocket close codes."""

    TLS_ONLY = 4000
    APP_NOT_FOUND = 4001
    APP_DISABLED = 4003
    OVER_CONNECTION_QUOTA = 4004
    PATH_NOT_FOUND = 4005
    UNSUPPORTED_PROTOCOL = 4007
    NO_PROTOCOL = 4008
    UNAUTHORIZED = 4009
    OVER_CAPACITY = 4100
    RECONNECT = 4200
    PONG_NOT_RECEIVED = 4201
    CLIENT_EVENT_RATE_LIMIT = 4301
    WATCHLIST_LIMIT = 4302


class PusherError(Exception):
    """Root of every error that Clarion reports to a peer in protocol terms."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(PusherError):
    """A client frame broke a rule: ``pusher:error`` is sent, the socket stays open."""

    def __init__(
        self, message: str, code: int | None = None, channel: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.channel = channel


class ConnectionRejected(PusherError):
    """A connection must end: ``pusher:error`` with ``code``, then a close with it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class SubscriptionError(PusherError):
    """A subscribe request was refused; reported as ``pusher:subscription_error``."""

    def __init__(
        self, error_type: str, message: str, status: int, limit: str | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status
        self.limit = limit
        """For ``LimitReached``, the name of the ``Limits`` field reached."""


class ApiError(PusherError):
    """An HTTP API request failed; the response has ``status`` and a JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
