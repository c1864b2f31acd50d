"""Channel authorization and user authentication for the client.

Either kind of auth is an HTTP endpoint of the app, as in pusher-js, or a
Python callable. The endpoint gets a form-encoded POST (``socket_id``, plus
``channel_name`` for channels, plus the configured extra parameters) and must
respond 200 with a JSON object. A callable gets a request object and returns
that JSON object as a mapping, or an awaitable of it. A plain function runs in
a worker thread, so it may block.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clarion.client.errors import AuthError

__all__ = [
    "AUTH_TIMEOUT",
    "Authorizer",
    "ChannelAuthorizationRequest",
    "EndpointAuthorizer",
    "UserAuthenticationRequest",
    "resolve_authorizer",
]

AUTH_TIMEOUT = 10.0
"""Seconds an auth request may take before it fails."""


@dataclass(frozen=True, slots=True)
class ChannelAuthorizationRequest:
    """The argument of a channel authorizer."""

    socket_id: str
    channel_name: str


@dataclass(frozen=True, slots=True)
class UserAuthenticationRequest:
    """The argument of a user authenticator."""

    socket_id: str


AuthRequest = ChannelAuthorizationRequest | UserAuthenticationRequest
Authorizer = Callable[[Any], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
"""A callable from a request object to the auth response's JSON object."""


class EndpointAuthorizer:
    """Posts auth requests to an HTTP endpoint, as pusher-js's ``ajax`` transport.

    ``params`` are sent as extra form fields and ``headers`` as extra request
    headers.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = AUTH_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.params = dict(params or {})
        self.headers = dict(headers or {})
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"EndpointAuthorizer({self.endpoint!r})"

    async def __call__(self, request: AuthRequest) -> Mapping[str, Any]:
        form = {"socket_id": request.socket_id}
        if isinstance(request, ChannelAuthorizationRequest):
            form["channel_name"] = request.channel_name
        form.update(self.params)
        body = urllib.parse.urlencode(form).encode()
        return await asyncio.to_thread(self._post, body)

    def _post(self, body: bytes) -> Mapping[str, Any]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        headers.update(self.headers)
        http_request = urllib.request.Request(
            self.endpoint, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as reply:
                status = reply.status
                text = reply.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            raise AuthError(
                f"Unable to retrieve auth string from auth endpoint - received "
                f"status: {exc.code} from {self.endpoint}",
                status=exc.code,
            ) from None
        except (OSError, ValueError) as exc:
            raise AuthError(f"Auth request to {self.endpoint} failed: {exc}") from exc
        if status != 200:
            raise AuthError(
                f"Unable to retrieve auth string from auth endpoint - received "
                f"status: {status} from {self.endpoint}",
                status=status,
            )
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AuthError(
                f"JSON returned from auth endpoint {self.endpoint} was invalid, yet "
                f"status code was 200. Data was: {text[:200]}",
                status=200,
            )
        return data


def resolve_authorizer(
    value: str | Authorizer | None,
    *,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
) -> Authorizer | None:
    """Turn an endpoint URL into an :class:`EndpointAuthorizer`; keep callables."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        return EndpointAuthorizer(value, params=params, headers=headers)
    raise TypeError(
        f"an authorizer must be an endpoint URL or a callable, not {type(value)!r}"
    )


async def run_authorizer(
    authorizer: Authorizer | None, request: AuthRequest, timeout: float
) -> dict[str, Any]:
    """Call ``authorizer`` and return its JSON object.

    Raises:
        AuthError: no authorizer is configured, it raised, timed out or
        returned something other than a mapping with a string ``auth``.
    """
    if authorizer is None:
        kind = (
            "channel_authorizer"
            if isinstance(request, ChannelAuthorizationRequest)
            else "user_authenticator"
        )
        raise AuthError(f"No {kind} is configured on the client")
    try:
        async with asyncio.timeout(timeout):
            if _is_async_callable(authorizer):
                result = await authorizer(request)  # type: ignore[misc]
            else:
                result = await asyncio.to_thread(authorizer, request)
                if inspect.isawaitable(result):
                    result = await result
    except AuthError:
        raise
    except TimeoutError:
        raise AuthError(f"Auth request timed out after {timeout} s") from None
    except Exception as exc:
        raise AuthError(f"Authorizer {authorizer!r} raised {exc!r}") from exc
    if not isinstance(result, Mapping) or not isinstance(result.get("auth"), str):
        raise AuthError(
            f"Authorizer {authorizer!r} returned {result!r}; expected a mapping "
            "with a string 'auth'"
        )
    return dict(result)


def _is_async_callable(value: object) -> bool:
    if inspect.iscoroutinefunction(value):
        return True
    call = getattr(value, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)
