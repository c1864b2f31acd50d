"""Origin patterns: parsing and matching, with no server."""

from __future__ import annotations

import pytest

from clarion.protocol.apps import App
from clarion.protocol.errors import ConnectionRejected, ErrorCode
from clarion.protocol.handshake import check_origin
from clarion.protocol.origins import is_origin_allowed, parse_origin_pattern

PATTERNS = ("https://app.example.com", "https://*.example.org", "localhost")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM", True),
        ("https://app.example.com:443", True),
        ("https://app.example.com:8443", False),
        ("http://app.example.com", False),
        ("https://www.app.example.com", False),
        ("https://eu.example.org", True),
        ("https://a.b.example.org", True),
        ("https://example.org", False),
        ("https://badexample.org", False),
        ("https://example.org.evil.test", False),
        ("http://localhost", True),
        ("http://localhost:3000", True),
        ("https://sub.localhost", False),
        ("null", False),
        ("https://app.example.com/path", False),
        ("", False),
    ],
)
def test_origin_matches_patterns(origin: str, allowed: bool) -> None:
    assert is_origin_allowed(PATTERNS, origin) is allowed


def test_empty_list_allows_everything() -> None:
    assert is_origin_allowed((), "null")
    assert is_origin_allowed((), "https://any.test")


def test_star_allows_everything() -> None:
    assert is_origin_allowed(("https://app.example.com", "*"), "null")
    assert is_origin_allowed(("*",), "http://any.test:81")


def test_explicit_default_port_in_pattern() -> None:
    assert is_origin_allowed(("http://app.test:80",), "http://app.test")


def test_ipv6_origin() -> None:
    assert is_origin_allowed(("http://[::1]:8080",), "http://[::1]:8080")
    assert not is_origin_allowed(("http://[::1]:8080",), "http://[::1]:8081")


@pytest.mark.parametrize(
    "pattern",
    [
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "https://app.example.com:99999",
        "https://app.*.com",
        "https://*",
        "*.",
        "app.example.com:8080",
        "app.example.com/path",
        "",
    ],
)
def test_invalid_pattern_raises(pattern: str) -> None:
    with pytest.raises(ValueError):
        parse_origin_pattern(pattern)


def test_check_origin_rejects_with_4009() -> None:
    app = App(id="1", key="k", secret="s", allowed_origins=("https://a.test",))
    check_origin(app, "https://a.test")
    check_origin(app, None)
    with pytest.raises(ConnectionRejected) as raised:
        check_origin(app, "https://b.test")
    assert raised.value.code == ErrorCode.UNAUTHORIZED
    assert raised.value.message == "Origin https://b.test is not allowed"


def test_check_origin_shortens_long_origin() -> None:
    app = App(id="1", key="k", secret="s", allowed_origins=("https://a.test",))
    with pytest.raises(ConnectionRejected) as raised:
        check_origin(app, "https://" + "x" * 500 + ".test")
    assert len(raised.value.message) < 123


@pytest.mark.parametrize(
    "pattern", ["https://exa mple.com", "exa\tmple.com", "a\x00.com"]
)
def test_pattern_with_space_or_control_character_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="space or a control character"):
        parse_origin_pattern(pattern)


IDN_PATTERNS = ("https://münchen.example", "*.bücher.example", "ПРИМЕР.test")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://xn--mnchen-3ya.example", True),
        ("https://XN--MNCHEN-3YA.EXAMPLE", True),
        ("https://münchen.example", True),
        ("https://MÜNCHEN.example", True),
        ("http://xn--mnchen-3ya.example", False),
        ("https://munchen.example", False),
        ("https://shop.xn--bcher-kva.example", True),
        ("http://a.b.xn--bcher-kva.example:8080", True),
        ("https://xn--bcher-kva.example", False),
        ("https://xn--e1afmkfd.test", True),
        ("https://пример.test", True),
    ],
)
def test_idn_pattern_matches_punycode(origin: str, allowed: bool) -> None:
    assert is_origin_allowed(IDN_PATTERNS, origin) is allowed


def test_idn_pattern_parses_to_ascii() -> None:
    pattern = parse_origin_pattern("https://*.Bücher.example:8443")
    assert pattern.host == "xn--bcher-kva.example"
    assert pattern.port == 8443
    assert pattern.subdomains


def test_punycode_pattern_matches_unicode_origin() -> None:
    assert is_origin_allowed(
        ("https://xn--mnchen-3ya.example",), "https://münchen.example"
    )


@pytest.mark.parametrize(
    "pattern",
    [
        "https://" + "ü" * 64 + ".example",
        "straße.example",
        "https://λόγος.example",
    ],
)
def test_unencodable_idn_pattern_raises(pattern: str) -> None:
    with pytest.raises(ValueError, match="xn--"):
        parse_origin_pattern(pattern)


def test_unencodable_idn_origin_not_allowed() -> None:
    assert not is_origin_allowed(("https://münchen.example",), "https://straße.example")
    assert is_origin_allowed(("*",), "https://straße.example")
