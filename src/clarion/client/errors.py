"""Exceptions raised by the client library."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadChannelName",
    "BadEventName",
    "ClientError",
    "UnsupportedFeature",
]


class ClientError(Exception):
    """Root of the client library's exceptions."""


class AuthError(ClientError):
    """Channel authorization or user authentication failed.

    ``status`` is the HTTP status of the auth endpoint's reply, when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BadEventName(ClientError, ValueError):
    """A client event's name does not start with ``client-``."""


class BadChannelName(ClientError, ValueError):
    """The channel name is reserved (it starts with ``#``) or empty."""


class UnsupportedFeature(ClientError):
    """The channel does not support the operation, such as client events on
    private-encrypted channels."""
