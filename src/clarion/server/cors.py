"""CORS for the HTTP API: which browser pages may read its responses.

HTTP API requests are signed with the app secret, so CORS grants no access
that a signature does not: it only lets a page of an allowed origin read the
responses of the requests it sends. The headers go on every response, errors
included, so that a page can read why a request failed.
"""

from __future__ import annotations

from clarion.protocol.origins import is_origin_allowed
from clarion.server.http import Request, Response, error_response

__all__ = [
    "PREFLIGHT_MAX_AGE",
    "cors_headers",
    "cors_headers_for_origin",
    "is_preflight",
    "preflight_response",
]

ALLOWED_METHODS = "GET, POST, OPTIONS"
DEFAULT_ALLOWED_HEADERS = "Content-Type"
PREFLIGHT_MAX_AGE = 7200
"""Seconds a browser may cache a preflight response; Chromium caps it at 2 hours."""

Headers = tuple[tuple[str, str], ...]


def is_preflight(request: Request) -> bool:
    """Whether ``request`` is a CORS preflight: OPTIONS with the method to come."""
    return request.method == "OPTIONS" and (
        "access-control-request-method" in request.headers
    )


def cors_headers(patterns: tuple[str, ...], request: Request) -> Headers:
    """Return the CORS headers of a response to ``request``.

    ``*`` among ``patterns`` allows any origin with ``Access-Control-Allow-Origin:
    *``, because no request carries credentials (cookies or HTTP
    authentication). Other patterns echo the request's origin when it matches
    and add ``Vary: Origin`` so that caches keep the responses apart. A request
    without an ``Origin`` header, or from an origin that matches nothing, gets
    no ``Access-Control-Allow-Origin``.
    """
    return cors_headers_for_origin(patterns, request.headers.get("origin"))


def cors_headers_for_origin(patterns: tuple[str, ...], origin: str | None) -> Headers:
    """Return the CORS headers of a response to a request from ``origin``, the
    value of its ``Origin`` header if it has one (see ``cors_headers``)."""
    if not patterns:
        return ()
    if "*" in patterns:
        return (("Access-Control-Allow-Origin", "*"),)
    if origin is None or not is_origin_allowed(patterns, origin):
        return (("Vary", "Origin"),)
    return (("Access-Control-Allow-Origin", origin), ("Vary", "Origin"))


def preflight_response(patterns: tuple[str, ...], request: Request) -> Response:
    """Build the response to a preflight: 204 with the allowed methods and
    headers, or 403 when the origin is not allowed, which the browser reports
    as a CORS error."""
    headers = cors_headers(patterns, request)
    if not any(name == "Access-Control-Allow-Origin" for name, _ in headers):
        response = error_response(
            403,
            f"Origin {request.headers.get('origin', '')[:100]} is not allowed "
            "by cors_origins",
        )
        response.headers = headers
        return response
    # Every requested header is allowed, because without credentials a header
    # gives a page no more than a signed request already can.
    requested = request.headers.get("access-control-request-headers", "")
    return Response(
        204,
        content_type="text/plain",
        headers=(
            *headers,
            ("Access-Control-Allow-Methods", ALLOWED_METHODS),
            ("Access-Control-Allow-Headers", requested or DEFAULT_ALLOWED_HEADERS),
            ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
        ),
    )
