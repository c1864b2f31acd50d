"""User sign-in: checking ``pusher:signin`` and decoding its ``user_data``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from clarion.protocol.apps import App
from clarion.protocol.auth import verify_signin_auth
from clarion.protocol.channels import MAX_USER_ID_LENGTH
from clarion.protocol.errors import ErrorCode, ProtocolError
from clarion.protocol.messages import dumps, loads

__all__ = ["MAX_USER_ID_LENGTH", "User", "check_signin"]

_USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in user, as the app's user authentication endpoint described it."""

    id: str
    user_info: object
    watchlist: tuple[str, ...]
    """The watched user ids, cut to the app's limit."""
    dropped_watchlist: tuple[str, ...]
    """Watched ids beyond the limit, reported to the client with 4302."""
    user_data: str
    """The ``user_data`` string exactly as signed, echoed in ``signin_success``."""


def check_signin(app: App, socket_id: str, data: dict[str, Any]) -> User:
    """Check a ``pusher:signin`` request's signature and decode its user data.

    Raises:
        ProtocolError: code 4009 for a forged or malformed sign-in; the
        connection stays open.
    """
    user_data = data.get("user_data")
    if not isinstance(user_data, str):
        raise _unauthorized("Sign-in rejected: 'user_data' must be a JSON string")
    verify_signin_auth(
        key=app.key,
        secret=app.secrets,
        socket_id=socket_id,
        user_data=user_data,
        auth=data.get("auth"),
    )
    try:
        decoded = loads(user_data)
    except (ValueError, RecursionError):
        raise _unauthorized("Sign-in rejected: user_data is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise _unauthorized("Sign-in rejected: user_data must be a JSON object")

    user_id = decoded.get("id")
    if not isinstance(user_id, str) or not user_id:
        raise _unauthorized(
            "Sign-in rejected: user_data must have a non-empty string 'id'"
        )
    if len(user_id) > MAX_USER_ID_LENGTH or not _USER_ID_PATTERN.fullmatch(user_id):
        raise _unauthorized(
            f"Sign-in rejected: user id must be at most {MAX_USER_ID_LENGTH} of the "
            "characters A-Z a-z 0-9 _ - = @ , . ;"
        )

    user_info = decoded.get("user_info")
    info_size = len(dumps(user_info).encode())
    limit = app.limits.max_presence_user_info_bytes
    if info_size > limit:
        raise _unauthorized(
            f"Sign-in rejected: user_info is {info_size} bytes, over the limit of "
            f"{limit} bytes"
        )

    watchlist = decoded.get("watchlist", [])
    if not isinstance(watchlist, list) or not all(
        isinstance(watched, str) and watched for watched in watchlist
    ):
        raise _unauthorized(
            "Sign-in rejected: 'watchlist' must be an array of user id strings"
        )
    unique = list(dict.fromkeys(watchlist))
    size = app.limits.max_watchlist_size
    return User(
        id=user_id,
        user_info=user_info,
        watchlist=tuple(unique[:size]),
        dropped_watchlist=tuple(unique[size:]),
        user_data=user_data,
    )


def _unauthorized(message: str) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.UNAUTHORIZED)
