"""Origin patterns: which browser origins may connect to an app, or read the
HTTP API's responses.

A pattern is one of:

- ``*``: every origin;
- ``https://app.example.com`` or ``http://localhost:3000``: that origin
  exactly (scheme, host and port; a default port may be written or left out);
- ``https://*.example.com``: any subdomain of ``example.com``, at any depth,
  with that scheme and port, but not ``example.com`` itself;
- ``app.example.com`` or ``*.example.com`` without a scheme: that host, or its
  subdomains, with any scheme and port.

Hosts compare without regard to case, and in their ASCII (IDNA, punycode)
form: the pattern ``https://münchen.example`` matches the origin
``https://xn--mnchen-3ya.example`` that browsers send, and either spelling works
on either side. The origin ``null``, which browsers send from sandboxed frames
and ``file:`` pages, matches only ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from encodings import idna
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["OriginPattern", "is_origin_allowed", "parse_origin_pattern"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
"""ß, ς, and the zero-width joiners: IDNA 2003 (Python's ``idna`` codec) maps
them away, where browsers, following IDNA 2008 and UTS #46 without transitional
processing, keep and encode them. A host with one of them gets no ASCII form
here."""


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """One parsed pattern; ``None`` fields match anything."""

    scheme: str | None
    host: str | None
    """The host, or the parent domain when ``subdomains`` is set."""
    port: int | None
    subdomains: bool = False

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.host is None:
            return True
        if self.scheme is not None and (scheme != self.scheme or port != self.port):
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


def parse_origin_pattern(text: str) -> OriginPattern:
    """Parse one pattern of the forms in the module docstring.

    Raises:
        ValueError: the pattern has a space or control character, a path, a
        query, user info, an invalid port, an empty host, a ``*`` anywhere
        but as the first label, or a non-ASCII host with no IDNA form.
    """
    text = text.strip()
    if text == "*":
        return OriginPattern(None, None, None)
    if not text.isprintable() or any(character.isspace() for character in text):
        raise ValueError(
            f"invalid origin pattern {text!r}: it contains a space or a control "
            "character"
        )
    if "://" in text:
        scheme, host, port = _split_origin(text)
    else:
        if any(character in text for character in "/?#@:"):
            raise ValueError(
                f"invalid origin pattern {text!r}: write a host such as "
                "app.example.com, or an origin such as https://app.example.com"
            )
        scheme, host, port = None, text.lower(), None
    subdomains = host.startswith("*.")
    if subdomains:
        host = host[2:]
    if not host or "*" in host:
        raise ValueError(
            f"invalid origin pattern {text!r}: a * may only stand for the "
            "subdomains, as in https://*.example.com"
        )
    try:
        host = _ascii_host(host)
    except ValueError as exc:
        raise ValueError(f"invalid origin pattern {text!r}: {exc}") from None
    return OriginPattern(scheme, host, port, subdomains)


def is_origin_allowed(patterns: tuple[str, ...], origin: str) -> bool:
    """Return True when ``origin``, an ``Origin`` header value, matches one of
    ``patterns``. An empty ``patterns`` allows every origin."""
    if not patterns:
        return True
    compiled = _compile(patterns)
    try:
        scheme, host, port = _split_origin(origin)
        host = _ascii_host(host)
    except ValueError:
        # Only a pattern that matches everything lets an unparsable origin,
        # such as "null", through.
        return any(pattern.host is None for pattern in compiled)
    return any(pattern.matches(scheme, host, port) for pattern in compiled)


@lru_cache(maxsize=1024)
def _compile(patterns: tuple[str, ...]) -> tuple[OriginPattern, ...]:
    return tuple(parse_origin_pattern(pattern) for pattern in patterns)


def _ascii_host(host: str) -> str:
    """Return ``host``, lower case, with each non-ASCII label in its IDNA
    ASCII form (``xn--...``).

    Raises:
        ValueError: a label cannot be encoded (too long, or a character that
        IDNA prohibits or that browsers encode differently).
    """
    if host.isascii():
        return host.lower()
    labels = []
    for label in host.split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        if _IDNA_DEVIATIONS.intersection(label):
            raise ValueError(
                f"the label {label!r} has ß, ς or a zero-width joiner, which "
                "browsers encode another way; write its xn-- form"
            )
        try:
            labels.append(idna.ToASCII(label).decode("ascii").lower())
        except UnicodeError as exc:
            raise ValueError(
                f"the label {label!r} has no IDNA form ({exc}); write its xn-- form"
            ) from None
    return ".".join(labels)


def _split_origin(text: str) -> tuple[str, str, int | None]:
    """Split ``scheme://host[:port]`` into its parts, the port made explicit
    for http and https.

    Raises:
        ValueError: ``text`` is not of that form.
    """
    parts = urlsplit(text)
    if (
        not parts.scheme
        or parts.path
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
        or not parts.hostname
    ):
        raise ValueError(
            f"invalid origin {text!r}: expected scheme://host or scheme://host:port"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid origin {text!r}: the port is invalid") from None
    scheme = parts.scheme.lower()
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return scheme, parts.hostname.lower(), port
