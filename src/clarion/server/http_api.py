"""The Pusher HTTP API: ``/apps/{app_id}/...`` routes over the adapter.

Checks run in this order: route (404, 405), app (404), signature (401), app
enabled (403), requests per second (429), JSON body (400), fields (400, 413),
events per second (429). A CORS preflight is answered before them all
(``cors.py``), and every response carries the CORS headers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import unquote

from clarion.protocol import messages
from clarion.protocol.api import (
    EventRequest,
    parse_batch_events,
    parse_event,
    parse_info,
)
from clarion.protocol.apps import App
from clarion.protocol.auth import verify_api_request
from clarion.protocol.channels import (
    ChannelKind,
    classify,
    is_cache_channel,
    is_valid_channel_name,
)
from clarion.protocol.errors import ApiError, shorten
from clarion.protocol.limits import (
    RETRY_AFTER_SECONDS,
    api_request_rate_error,
    backend_event_count,
    backend_event_rate_error,
)
from clarion.server.cors import (
    cors_headers,
    cors_headers_for_origin,
    is_preflight,
    preflight_response,
)
from clarion.server.http import Request, RequestHandler, Response, error_response
from clarion.server.hub import Hub

__all__ = ["HttpApi"]

logger = logging.getLogger(__name__)

_Handler = Callable[[App, Request, list[str]], Awaitable[object]]

OTHER_ENDPOINT = "other"
"""The metrics label of requests that match no route."""
ROUTE_TEMPLATES = {
    ("events",): "/apps/{app_id}/events",
    ("batch_events",): "/apps/{app_id}/batch_events",
    ("channels",): "/apps/{app_id}/channels",
    ("channels", "*"): "/apps/{app_id}/channels/{channel_name}",
    ("channels", "*", "users"): "/apps/{app_id}/channels/{channel_name}/users",
    ("users", "*", "terminate_connections"): (
        "/apps/{app_id}/users/{user_id}/terminate_connections"
    ),
}
"""Path shape after ``/apps/{app_id}`` to the route template that the metrics
use as the ``endpoint`` label."""

CHANNEL_INFO_ATTRIBUTES = frozenset({"user_count", "subscription_count"})
SHOW_CHANNEL_ATTRIBUTES = CHANNEL_INFO_ATTRIBUTES | {"cache"}


class HttpApi(RequestHandler):
    """The HTTP API for every app in the hub's registry."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # (method, path shape after /apps/{app_id}) -> handler; "*" is one channel name.
        self._routes: dict[tuple[str, tuple[str, ...]], _Handler] = {
            ("POST", ("events",)): self._trigger,
            ("POST", ("batch_events",)): self._trigger_batch,
            ("GET", ("channels",)): self._list_channels,
            ("GET", ("channels", "*")): self._show_channel,
            ("GET", ("channels", "*", "users")): self._list_users,
            ("POST", ("users", "*", "terminate_connections")): self._terminate_user,
        }

    async def handle(self, request: Request) -> Response:
        response: Response | None = None
        patterns = self.hub.settings.cors_origins
        try:
            if patterns and is_preflight(request):
                response = preflight_response(patterns, request)
                return response
            response = await self._answer(request)
            response.headers = (*response.headers, *cors_headers(patterns, request))
            return response
        finally:
            # An exception here becomes a 500 response in the listener.
            status = 500 if response is None else response.status
            self.hub.tally.api_requests[(endpoint_of(request.path), status)] += 1

    def error_headers(
        self, path: str, headers: Mapping[str, str]
    ) -> tuple[tuple[str, str], ...]:
        """Give the listener's own error responses to API paths the CORS
        headers too, so that a page can read why its request failed."""
        if not path.startswith("/apps/"):
            return ()
        return cors_headers_for_origin(
            self.hub.settings.cors_origins, headers.get("origin")
        )

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except ApiError as exc:
            if exc.status not in (413, 429):
                # Rejections by a limit are logged, throttled, where they happen.
                logger.info(
                    "HTTP API %s %s failed with %d: %s",
                    request.method,
                    shorten(request.path),
                    exc.status,
                    exc.message,
                )
            response = error_response(exc.status, exc.message)
            if exc.status == 429:
                response.headers = (("Retry-After", str(RETRY_AFTER_SECONDS)),)
            return response

    async def _route(self, request: Request) -> Response:
        segments = request.path.split("/")
        if segments[:2] == ["", "users"]:
            # pusher-http-python 3.3 posts terminate_connections to
            # /users/{user_id}/... without /apps/{app_id}, signing that path; the
            # app then comes from auth_key.
            app_id, rest = self._app_id_from_key(request), segments[1:]
        elif len(segments) < 4 or segments[0] or segments[1] != "apps":
            raise ApiError(404, f"Not found: {shorten(request.path)}")
        else:
            app_id, rest = segments[2], segments[3:]
        shape = _shape(rest)
        handlers = {
            method: h for (method, path), h in self._routes.items() if path == shape
        }
        if not handlers:
            raise ApiError(404, f"Not found: {shorten(request.path)}")
        handler = handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            response = error_response(
                405, f"Method {request.method} not allowed here; use {allowed}"
            )
            response.headers = (("Allow", allowed),)
            return response

        app = self.hub.apps.find_by_id(app_id)
        if app is None:
            raise ApiError(404, f"App {app_id} not found")
        decoded_path = unquote(request.path)
        paths = (
            (request.path,)
            if decoded_path == request.path
            else (request.path, decoded_path)
        )
        verify_api_request(
            key=app.key,
            secret=app.secrets,
            method=request.method,
            paths=paths,
            params=request.params,
            body=request.body,
            now=time.time(),
        )
        if not app.enabled:
            raise ApiError(403, f"App {app.id} is disabled")
        limit = app.limits.max_api_requests_per_second
        if not await self.hub.limits.take(app.id, "api_requests", 1, limit):
            error = api_request_rate_error(limit)
            self.hub.rejections.record(
                app.id, "max_api_requests_per_second", error.message
            )
            raise error
        result = await handler(app, request, [unquote(part) for part in rest])
        return Response(200, messages.dumps(result).encode())

    # Events

    async def _trigger(self, app: App, request: Request, path: list[str]) -> object:
        event = self._parse(app, lambda: [parse_event(request.body, app.limits)])[0]
        await self._check_event_rate(app, [event])
        await self.hub.publish(app, event)
        logger.debug(
            "App %s published %s to %d channel(s)",
            app.id,
            event.name,
            len(event.channels),
        )
        if not event.info:
            return {}
        return {
            "channels": {
                c: await self._info(app, c, event.info) for c in event.channels
            }
        }

    async def _trigger_batch(
        self, app: App, request: Request, path: list[str]
    ) -> object:
        events = self._parse(app, lambda: parse_batch_events(request.body, app.limits))
        await self._check_event_rate(app, events)
        for event in events:
            await self.hub.publish(app, event)
        if not any(event.info for event in events):
            return {}
        return {"batch": [await self._batch_info(app, event) for event in events]}

    def _parse(
        self, app: App, parse: Callable[[], list[EventRequest]]
    ) -> list[EventRequest]:
        """Run ``parse`` on a request body, logging a 413 as a rejection by
        ``max_event_bytes``."""
        try:
            return parse()
        except ApiError as exc:
            if exc.status == 413:
                self.hub.rejections.record(app.id, "max_event_bytes", exc.message)
            raise

    async def _check_event_rate(self, app: App, events: list[EventRequest]) -> None:
        """Count the events against ``max_backend_events_per_second``; the
        request publishes all of them or none.

        Raises:
            ApiError: 429 when they do not fit in the current second.
        """
        limit = app.limits.max_backend_events_per_second
        count = backend_event_count(events)
        if not await self.hub.limits.take(app.id, "backend_events", count, limit):
            error = backend_event_rate_error(limit, count)
            self.hub.rejections.record(
                app.id, "max_backend_events_per_second", error.message
            )
            raise error

    async def _batch_info(self, app: App, event: EventRequest) -> dict[str, int]:
        if not event.info:
            return {}
        return await self._info(app, event.channels[0], event.info)

    # Channels

    async def _list_channels(
        self, app: App, request: Request, path: list[str]
    ) -> object:
        prefix = request.params.get("filter_by_prefix", "")
        info = parse_info(request.params.get("info"), CHANNEL_INFO_ATTRIBUTES)
        if "user_count" in info and not prefix.startswith("presence-"):
            raise ApiError(
                400, "info=user_count needs filter_by_prefix starting with presence-"
            )
        channels = await self.hub.adapter.channels(app.id, prefix)
        listed = {}
        for name, state in sorted(channels.items()):
            if name.startswith("#"):
                continue
            attributes: dict[str, int] = {}
            if "user_count" in info and state.user_count is not None:
                attributes["user_count"] = state.user_count
            if "subscription_count" in info:
                attributes["subscription_count"] = state.subscription_count
            listed[name] = attributes
        return {"channels": listed}

    async def _show_channel(
        self, app: App, request: Request, path: list[str]
    ) -> object:
        channel = self._channel_name(app, path[1])
        info = parse_info(request.params.get("info"), SHOW_CHANNEL_ATTRIBUTES)
        if "user_count" in info and classify(channel) is not ChannelKind.PRESENCE:
            raise ApiError(
                400, "info=user_count is only available for presence channels"
            )
        if "cache" in info and not is_cache_channel(channel):
            raise ApiError(400, "info=cache is only available for cache channels")
        state = await self.hub.adapter.channel_info(app.id, channel)
        result: dict[str, object] = {"occupied": state.subscription_count > 0}
        result.update(await self._info(app, channel, info - {"cache"}))
        if "cache" in info:
            cached = await self.hub.adapter.get_cache(app.id, channel)
            result["cache"] = (
                None if cached is None else {"data": cached.data, "ttl": cached.ttl}
            )
        return result

    async def _list_users(self, app: App, request: Request, path: list[str]) -> object:
        channel = self._channel_name(app, path[1])
        if classify(channel) is not ChannelKind.PRESENCE:
            raise ApiError(
                400, f"Users are only available for presence channels, not {channel}"
            )
        members = await self.hub.adapter.members(app.id, channel)
        return {"users": [{"id": user_id} for user_id in members]}

    async def _terminate_user(
        self, app: App, request: Request, path: list[str]
    ) -> object:
        user_id = path[1]
        if not user_id:
            raise ApiError(400, "Missing user id in the path")
        await self.hub.users.terminate(app, user_id)
        return {}

    def _app_id_from_key(self, request: Request) -> str:
        key = request.params.get("auth_key", "")
        app = self.hub.apps.find_by_key(key)
        if app is None:
            raise ApiError(404, f"No app has the auth_key {key!r}")
        return app.id

    def _channel_name(self, app: App, name: str) -> str:
        if not is_valid_channel_name(name, app.limits.max_channel_name_length):
            raise ApiError(400, f"Invalid channel name: {name!r}")
        return name

    async def _info(
        self, app: App, channel: str, info: frozenset[str]
    ) -> dict[str, int]:
        """Return the requested attributes of ``channel``; ``user_count`` only for
        presence channels."""
        if not info:
            return {}
        state = await self.hub.adapter.channel_info(app.id, channel)
        attributes = {}
        if "user_count" in info and classify(channel) is ChannelKind.PRESENCE:
            attributes["user_count"] = state.user_count or 0
        if "subscription_count" in info:
            attributes["subscription_count"] = state.subscription_count
        return attributes


def _shape(rest: list[str]) -> tuple[str, ...]:
    """Return the path segments after ``/apps/{app_id}`` with the one variable
    segment (a channel name or user id) replaced by ``*``."""
    return tuple("*" if index == 1 else part for index, part in enumerate(rest))


def endpoint_of(path: str) -> str:
    """Return the route template that ``path`` matches, or ``other``."""
    segments = path.split("/")
    if segments[:2] == ["", "users"]:
        rest = segments[1:]
    elif len(segments) >= 4 and not segments[0] and segments[1] == "apps":
        rest = segments[3:]
    else:
        return OTHER_ENDPOINT
    return ROUTE_TEMPLATES.get(_shape(rest), OTHER_ENDPOINT)
