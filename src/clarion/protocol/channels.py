"""Channel kinds by name prefix, and the channel name rules."""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "MAX_USER_ID_LENGTH",
    "SERVER_TO_USER_PREFIX",
    "ChannelKind",
    "classify",
    "is_cache_channel",
    "is_valid_channel_name",
]

SERVER_TO_USER_PREFIX = "#server-to-user-"
MAX_USER_ID_LENGTH = 200
"""Characters in a signed-in user's id."""

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-=@,.;]+")


class ChannelKind(Enum):
    """The kind of channel that a name's prefix denotes, with its rules."""

    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    ENCRYPTED = "private-encrypted"
    SERVER_TO_USER = "server-to-user"

    @property
    def needs_auth(self) -> bool:
        return self in (
            ChannelKind.PRIVATE,
            ChannelKind.PRESENCE,
            ChannelKind.ENCRYPTED,
        )

    @property
    def allows_client_events(self) -> bool:
        # Official clients refuse to send client events on encrypted channels, and
        # the server rejects them there too, because the server cannot check them.
        return self in (ChannelKind.PRIVATE, ChannelKind.PRESENCE)


# Most specific prefix first; the first match wins. Cache variants are plain
# channels of the same kind for now.
_PREFIXES: tuple[tuple[str, ChannelKind, bool], ...] = (
    ("private-encrypted-cache-", ChannelKind.ENCRYPTED, True),
    ("private-encrypted-", ChannelKind.ENCRYPTED, False),
    ("private-cache-", ChannelKind.PRIVATE, True),
    ("private-", ChannelKind.PRIVATE, False),
    ("presence-cache-", ChannelKind.PRESENCE, True),
    ("presence-", ChannelKind.PRESENCE, False),
    ("cache-", ChannelKind.PUBLIC, True),
    (SERVER_TO_USER_PREFIX, ChannelKind.SERVER_TO_USER, False),
)


def classify(name: str) -> ChannelKind:
    """Return the kind of channel that ``name`` denotes."""
    for prefix, kind, _ in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return ChannelKind.PUBLIC


def is_cache_channel(name: str) -> bool:
    """Return whether ``name`` has one of the four cache channel prefixes."""
    for prefix, _, cached in _PREFIXES:
        if name.startswith(prefix):
            return cached
    return False


def is_valid_channel_name(name: str, max_length: int) -> bool:
    """Return whether ``name`` follows the character and length rules.

    Allowed characters are ``A-Z a-z 0-9 _ - = @ , . ;``. ``#`` is reserved: the
    only accepted form is ``#server-to-user-{user_id}`` with a user id of the same
    characters, at most ``MAX_USER_ID_LENGTH`` long whatever ``max_length`` is,
    because sign-in accepts ids of that length.
    """
    if name.startswith(SERVER_TO_USER_PREFIX):
        name = name[len(SERVER_TO_USER_PREFIX) :]
        max_length = MAX_USER_ID_LENGTH
    if not name or len(name) > max_length:
        return False
    return _NAME_PATTERN.fullmatch(name) is not None
