"""Console sign-in: the admin token, session cookies and CSRF tokens.

A session cookie contains its expiry time, a random session id and an HMAC of
both under a key derived from the admin token, so every worker and cluster
node with the same token accepts it, and changing the token ends every
session. Logging out ends one session before its expiry: ``RevokedSessions``
keeps its id until then. The CSRF token of a session is another HMAC of the
session cookie. The login form, which has no session yet, uses a
double-submit nonce: a random value in a cookie that must match the form's
hidden field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "ConsoleAuth",
    "Session",
    "parse_cookies",
]

SESSION_COOKIE = "clarion_console_session"
LOGIN_COOKIE = "clarion_console_login"
SESSION_SECONDS = 12 * 3600
"""Seconds a session lasts after login."""


@dataclass(frozen=True, slots=True)
class Session:
    """A session cookie whose signature and expiry have been checked."""

    id: str
    """Random id that logging out revokes."""
    expires: int
    """Unix time, in seconds, at which the cookie stops being valid."""


class ConsoleAuth:
    """Checks of the admin token and of the cookies and tokens derived from it."""

    def __init__(self, token: str) -> None:
        self._token_digest = hashlib.sha256(token.encode()).digest()
        self._key = hmac.new(
            token.encode(), b"clarion console session key", hashlib.sha256
        ).digest()

    def check_token(self, candidate: str) -> bool:
        """Compare ``candidate`` with the admin token in constant time."""
        digest = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(digest, self._token_digest)

    def new_session(self, now: float | None = None) -> str:
        """Return a new session cookie value valid for ``SESSION_SECONDS``."""
        expires = int((time.time() if now is None else now) + SESSION_SECONDS)
        session_id = secrets.token_urlsafe(18)
        return f"{expires}.{session_id}.{self._sign(f'session|{expires}|{session_id}')}"

    def check_session(self, value: str, now: float | None = None) -> Session | None:
        """Return the session of cookie ``value`` if it was signed here and has
        not expired, else ``None``. Revocation is checked separately."""
        expires, _, rest = value.partition(".")
        session_id, _, signature = rest.partition(".")
        if not expires.isdecimal() or not session_id or not signature:
            return None
        expected = self._sign(f"session|{expires}|{session_id}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        if int(expires) <= (time.time() if now is None else now):
            return None
        return Session(session_id, int(expires))

    def csrf_token(self, session: str) -> str:
        """Return the CSRF token that forms of ``session`` must carry."""
        return self._sign(f"csrf|{session}")

    def check_csrf(self, session: str, candidate: str) -> bool:
        expected = self.csrf_token(session)
        return hmac.compare_digest(candidate.encode(), expected.encode())

    @staticmethod
    def new_login_nonce() -> str:
        return secrets.token_urlsafe(24)

    @staticmethod
    def check_login_nonce(cookie: str, field: str) -> bool:
        """Whether the login form's hidden field matches its cookie."""
        if not cookie or not field:
            return False
        return hmac.compare_digest(cookie.encode(), field.encode())

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()


def parse_cookies(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` request header; a repeated name keeps its first value."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, separator, value = part.strip().partition("=")
        if separator and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies
