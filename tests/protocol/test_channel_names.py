"""Channel kinds by prefix, and the channel name rules."""

from __future__ import annotations

import pytest

from clarion.protocol.channels import (
    ChannelKind,
    classify,
    is_cache_channel,
    is_valid_channel_name,
)

# (name, kind, cache channel)
PREFIX_ROWS = [
    pytest.param(
        "private-encrypted-cache-x", ChannelKind.ENCRYPTED, True, id="encrypted-cache"
    ),
    pytest.param("private-encrypted-x", ChannelKind.ENCRYPTED, False, id="encrypted"),
    pytest.param("private-cache-x", ChannelKind.PRIVATE, True, id="private-cache"),
    pytest.param("private-x", ChannelKind.PRIVATE, False, id="private"),
    pytest.param("presence-cache-x", ChannelKind.PRESENCE, True, id="presence-cache"),
    pytest.param("presence-x", ChannelKind.PRESENCE, False, id="presence"),
    pytest.param("cache-x", ChannelKind.PUBLIC, True, id="public-cache"),
    pytest.param(
        "#server-to-user-42", ChannelKind.SERVER_TO_USER, False, id="server-to-user"
    ),
    pytest.param("my-channel", ChannelKind.PUBLIC, False, id="public"),
    pytest.param("Private-x", ChannelKind.PUBLIC, False, id="case-sensitive"),
    pytest.param("PRESENCE-x", ChannelKind.PUBLIC, False, id="uppercase-presence"),
    pytest.param("my-private-x", ChannelKind.PUBLIC, False, id="prefix-not-anchored"),
    pytest.param("presence", ChannelKind.PUBLIC, False, id="no-dash"),
    pytest.param("private-encrypted", ChannelKind.PRIVATE, False, id="bare-encrypted"),
    pytest.param("cachex", ChannelKind.PUBLIC, False, id="cache-no-dash"),
]


@pytest.mark.parametrize(("name", "kind", "cached"), PREFIX_ROWS)
def test_classify_by_prefix(name: str, kind: ChannelKind, cached: bool) -> None:
    """classify() picks the kind of the first matching prefix."""
    assert classify(name) is kind


@pytest.mark.parametrize(("name", "kind", "cached"), PREFIX_ROWS)
def test_is_cache_channel_by_prefix(name: str, kind: ChannelKind, cached: bool) -> None:
    """is_cache_channel() is true for the four cache prefixes only."""
    assert is_cache_channel(name) is cached


# (kind, needs auth, allows client events)
KIND_RULES = [
    pytest.param(ChannelKind.PUBLIC, False, False, id="public"),
    pytest.param(ChannelKind.PRIVATE, True, True, id="private"),
    pytest.param(ChannelKind.PRESENCE, True, True, id="presence"),
    pytest.param(ChannelKind.ENCRYPTED, True, False, id="encrypted"),
    pytest.param(ChannelKind.SERVER_TO_USER, False, False, id="server-to-user"),
]


@pytest.mark.parametrize(("kind", "needs_auth", "client_events"), KIND_RULES)
def test_channel_kind_needs_auth(
    kind: ChannelKind, needs_auth: bool, client_events: bool
) -> None:
    """Private, presence and encrypted channels need a signed auth token."""
    assert kind.needs_auth is needs_auth


@pytest.mark.parametrize(("kind", "needs_auth", "client_events"), KIND_RULES)
def test_channel_kind_allows_client_events(
    kind: ChannelKind, needs_auth: bool, client_events: bool
) -> None:
    """Client events are allowed on private and presence channels only."""
    assert kind.allows_client_events is client_events


SERVER_TO_USER = "#server-to-user-"

VALID_NAMES = [
    pytest.param("a", id="one-character"),
    pytest.param("AZaz09_-=@,.;", id="every-allowed-character"),
    pytest.param("x" * 164, id="164-characters"),
    pytest.param("presence-" + "x" * 155, id="164-with-prefix"),
    pytest.param(SERVER_TO_USER + "42", id="server-to-user"),
    pytest.param(SERVER_TO_USER + "a_b=c@d,e.f;g-h", id="server-to-user-charset"),
    pytest.param(SERVER_TO_USER + "x" * 200, id="server-to-user-id-200"),
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_channel_name_valid(name: str) -> None:
    """Names of allowed characters up to 164 long are valid."""
    assert is_valid_channel_name(name, 164)


INVALID_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 165, id="165-characters"),
    pytest.param(SERVER_TO_USER + "x" * 201, id="server-to-user-id-201"),
    pytest.param("my channel", id="space"),
    pytest.param("tab\tname", id="tab"),
    pytest.param("trailing-newline\n", id="trailing-newline"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("a+b", id="plus"),
    pytest.param("a*b", id="asterisk"),
    pytest.param("a'b", id="quote"),
    pytest.param("chañnel", id="latin-letter"),
    pytest.param("ｃｈａｎｎｅｌ", id="fullwidth-letters"),
    pytest.param("１２３", id="fullwidth-digits"),
    pytest.param("٣", id="arabic-indic-digit"),
    pytest.param("emoji-😀", id="emoji"),
    pytest.param("#", id="hash-alone"),
    pytest.param("#foo", id="hash-prefix"),
    pytest.param("a#b", id="hash-inside"),
    pytest.param("#server-to-user", id="server-to-user-no-dash"),
    pytest.param(SERVER_TO_USER, id="server-to-user-empty-id"),
    pytest.param(SERVER_TO_USER + "a#b", id="server-to-user-hash-in-id"),
    pytest.param(SERVER_TO_USER + "a b", id="server-to-user-space-in-id"),
    pytest.param(SERVER_TO_USER + SERVER_TO_USER + "1", id="server-to-user-twice"),
    pytest.param("private-" + SERVER_TO_USER + "1", id="server-to-user-inside"),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_channel_name_invalid(name: str) -> None:
    """Empty, over-long, reserved and out-of-charset names are invalid."""
    assert not is_valid_channel_name(name, 164)


def test_channel_name_custom_max_length() -> None:
    """The length limit is the one passed in, not a fixed 164."""
    assert is_valid_channel_name("x" * 200, 200)


def test_channel_name_over_custom_max() -> None:
    """A name one over the passed limit is invalid."""
    assert not is_valid_channel_name("x" * 11, 10)
