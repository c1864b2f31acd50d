"""The debug console's routes under ``console_path``: pages, JSON, the live log.

Every route but the login page and the static files needs a session cookie,
and every POST needs the CSRF token of its session (or, for the login form,
the login nonce). No route returns an app secret.
"""

from __future__ import annotations

import html
import json
import logging
import uuid
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote

from clarion.protocol.api import parse_event
from clarion.protocol.apps import App
from clarion.protocol.channels import ChannelKind, classify, is_valid_channel_name
from clarion.protocol.errors import ApiError, shorten
from clarion.server.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    ConsoleAuth,
    Session,
    parse_cookies,
)
from clarion.server.console.cluster import ClusterSamples
from clarion.server.console.relay import ConsoleRelay
from clarion.server.console.sampler import SAMPLE_SECONDS, Sampler
from clarion.server.console.sessions import RevokedSessions
from clarion.server.console.stream import EventStreams
from clarion.server.http import Request, Response, error_response
from clarion.server.hub import Hub

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from clarion.server.http import HttpProtocol

__all__ = ["Console"]

logger = logging.getLogger(__name__)

MAX_LISTED_CHANNELS = 1000
"""Channels listed per app; ``truncated`` in the response marks a longer list."""

_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HTML = "text/html; charset=utf-8"
_SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_NO_STORE = (("Cache-Control", "no-store"),)


def _read_static() -> dict[str, bytes]:
    folder = resources.files("clarion.server.console") / "static"
    return {
        item.name: item.read_bytes()
        for item in folder.iterdir()
        if item.is_file() and not item.name.startswith(".")
    }


class Console:
    """The console of every app in the hub's registry, for one admin token."""

    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        self.hub = hub
        self.path = settings.console_path
        self.auth = ConsoleAuth(settings.console_token)
        self.node = str(getattr(hub.adapter, "node_id", "")) or uuid.uuid4().hex[:12]
        self.streams = EventStreams(hub.monitor, self.node)
        self.relay: ConsoleRelay | None = None
        self._redis: Redis | None = None
        cluster: ClusterSamples | None = None
        if settings.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(settings.redis_url, decode_responses=True)
            cluster = ClusterSamples(
                self._redis, settings.redis_prefix, self.node, settings.node_timeout
            )
            self.relay = ConsoleRelay(
                self._redis,
                settings.redis_prefix,
                self.node,
                hub.monitor,
                lambda app_id: hub.apps.find_by_id(app_id) is not None,
                lambda: self.streams.count,
            )
        self.sampler = Sampler(hub, cluster)
        self.revoked = RevokedSessions(self._redis, settings.redis_prefix)
        self._static = _read_static()
        hub.monitor.enabled = True

    def start(self) -> None:
        self.sampler.start()
        self.revoked.start()
        if self.relay is not None:
            self.relay.start()
        logger.info("Debug console enabled at %s", self.path)

    async def stop(self) -> None:
        self.streams.close_all()
        await self.sampler.stop()
        await self.revoked.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self._redis is not None:
            await self._redis.aclose()

    def matches(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path + "/")

    # Routing

    async def handle(self, request: Request, protocol: HttpProtocol) -> Response | None:
        """Serve one request under the console path.

        Returns the response to write, or ``None`` when the live log stream was
        written to the transport directly and has ended.
        """
        try:
            return await self._route(request, protocol)
        except ApiError as exc:
            logger.info(
                "Console %s %s failed with %d: %s",
                request.method,
                shorten(request.path),
                exc.status,
                exc.message,
            )
            return error_response(exc.status, exc.message)

    async def _route(self, request: Request, protocol: HttpProtocol) -> Response | None:
        route = request.path[len(self.path) :] or "/"
        parts = [unquote(part) for part in route.strip("/").split("/")]
        method = request.method
        if parts[0] == "static" and len(parts) == 2 and method in ("GET", "HEAD"):
            return self._static_file(parts[1])
        if route == "/login":
            if method in ("GET", "HEAD"):
                return self._login_page(request, "", 200)
            if method == "POST":
                return self._login(request)
            return _not_allowed("GET, HEAD, POST")

        cookie = parse_cookies(request.headers.get("cookie", "")).get(
            SESSION_COOKIE, ""
        )
        session = await self._valid_session(cookie)
        if session is None:
            if parts[0] == "api":
                return error_response(401, "Not logged in to the console")
            return self._redirect("/login")
        if method == "POST":
            form = _form(request)
            if not self.auth.check_csrf(cookie, form.get("csrf_token", "")):
                logger.warning(
                    "Console request POST %s rejected: missing or invalid CSRF token",
                    shorten(request.path),
                )
                return error_response(403, "Missing or invalid CSRF token")
            return await self._post(request, parts, form, session)
        if method not in ("GET", "HEAD"):
            return _not_allowed("GET, HEAD, POST")
        return await self._get(request, parts, cookie, session, protocol)

    async def _valid_session(self, cookie: str) -> Session | None:
        """Return the session of ``cookie`` unless it is forged, expired or
        revoked. Raises a 503 ``ApiError`` when Redis fails before this
        process has read the revoked sessions once."""
        from redis.exceptions import RedisError

        session = self.auth.check_session(cookie)
        if session is None:
            return None
        try:
            revoked = await self.revoked.is_revoked(session)
        except RedisError as exc:
            raise ApiError(
                503,
                "Cannot check the console session: Redis failed "
                f"({shorten(str(exc))}); try again when Redis is reachable",
            ) from exc
        return None if revoked else session

    async def _get(
        self,
        request: Request,
        parts: list[str],
        cookie: str,
        session: Session,
        protocol: HttpProtocol,
    ) -> Response | None:
        csrf = self.auth.csrf_token(cookie)
        if parts == [""]:
            return self._index_page(csrf)
        if len(parts) == 2 and parts[0] == "apps":
            app = self._app(parts[1])
            return self._app_page(app, csrf)
        if len(parts) == 2 and parts == ["api", "apps"]:
            return _json({"apps": [self._app_summary(app) for app in self._apps()]})
        if len(parts) != 4 or parts[:2] != ["api", "apps"]:
            return self._not_found(request)
        app = self._app(parts[2])
        if parts[3] == "channels":
            return _json(await self._channels(app))
        if parts[3] == "members":
            return _json(await self._members(app, request.params.get("channel", "")))
        if parts[3] == "stats":
            return _json(self._stats(app))
        if parts[3] == "stream":
            if self.streams.full:
                return error_response(
                    429, "Too many console live logs are open; close one"
                )
            await self.streams.serve(
                protocol, app.id, session.id, lambda: self._valid_session(cookie)
            )
            return None
        return self._not_found(request)

    async def _post(
        self,
        request: Request,
        parts: list[str],
        form: dict[str, str],
        session: Session,
    ) -> Response:
        if parts == ["logout"]:
            return await self._logout(request, session)
        if len(parts) == 4 and parts[:2] == ["api", "apps"] and parts[3] == "events":
            app = self._app(parts[2])
            return await self._trigger(app, request, form)
        return self._not_found(request)

    # Pages

    def _page(self, name: str, values: dict[str, str], status: int = 200) -> Response:
        text = self._static[name].decode()
        for key, value in {"base": html.escape(self.path), **values}.items():
            text = text.replace("{{" + key + "}}", value)
        return Response(status, text.encode(), _HTML, _SECURITY_HEADERS + _NO_STORE)

    def _login_page(self, request: Request, error: str, status: int) -> Response:
        nonce = self.auth.new_login_nonce()
        message = f'<p class="error" role="alert">{html.escape(error)}</p>'
        response = self._page(
            "login.html",
            {"csrf": nonce, "error": message if error else ""},
            status,
        )
        cookie = (
            f"{LOGIN_COOKIE}={nonce}; Max-Age=3600; {self._cookie_attributes(request)}"
        )
        response.headers += (("Set-Cookie", cookie),)
        return response

    def _index_page(self, csrf: str) -> Response:
        rows = []
        for app in self._apps():
            summary = self._app_summary(app)
            link = f"{html.escape(self.path)}/apps/{quote(app.id, safe='')}"
            rows.append(
                "<tr>"
                f'<td><a href="{link}">{html.escape(app.id)}</a></td>'
                f"<td><code>{html.escape(app.key)}</code></td>"
                f"<td>{'enabled' if app.enabled else 'disabled'}</td>"
                f"<td>{summary['connections']}</td>"
                "</tr>"
            )
        scope = "this server process"
        if self.sampler.cluster is not None:
            scope = "every node, as of the latest sample"
        return self._page(
            "index.html",
            {"csrf": html.escape(csrf), "rows": "\n".join(rows), "scope": scope},
        )

    def _app_page(self, app: App, csrf: str) -> Response:
        return self._page(
            "app.html",
            {
                "csrf": html.escape(csrf),
                "app_id": html.escape(app.id),
                "app_key": html.escape(app.key),
                "node": html.escape(self.node),
            },
        )

    def _static_file(self, name: str) -> Response:
        suffix = name[name.rfind(".") :] if "." in name else ""
        body = self._static.get(name)
        if body is None or suffix not in _STATIC_TYPES:
            return error_response(404, f"Not found: {shorten(name)}")
        headers = (*_SECURITY_HEADERS, ("Cache-Control", "no-cache"))
        return Response(200, body, _STATIC_TYPES[suffix], headers)

    # Login

    def _login(self, request: Request) -> Response:
        form = _form(request)
        nonce = parse_cookies(request.headers.get("cookie", "")).get(LOGIN_COOKIE, "")
        if not self.auth.check_login_nonce(nonce, form.get("csrf_token", "")):
            logger.warning("Console login rejected: missing or invalid CSRF token")
            return self._login_page(
                request, "The form expired or lacks its CSRF token; try again.", 403
            )
        if not self.auth.check_token(form.get("token", "")):
            logger.warning("Console login rejected: invalid admin token")
            return self._login_page(request, "Invalid admin token.", 401)
        logger.info("Console login")
        attributes = self._cookie_attributes(request)
        cookies = (
            (
                "Set-Cookie",
                f"{SESSION_COOKIE}={self.auth.new_session()}; "
                f"Max-Age={SESSION_SECONDS}; {attributes}",
            ),
            ("Set-Cookie", f"{LOGIN_COOKIE}=; Max-Age=0; {attributes}"),
        )
        return self._redirect("/", cookies)

    async def _logout(self, request: Request, session: Session) -> Response:
        from redis.exceptions import RedisError

        try:
            await self.revoked.revoke(session)
        except RedisError as exc:
            # This process rejects the session already, and its next refresh
            # that reaches Redis writes the id there for the other nodes.
            logger.warning(
                "Console logout stored on this process only until Redis is "
                "reachable again: %s",
                exc,
            )
        closed = self.streams.close_session(session.id)
        logger.info("Console logout; closed %d live log(s) of the session", closed)
        cookie = f"{SESSION_COOKIE}=; Max-Age=0; {self._cookie_attributes(request)}"
        return self._redirect("/login", (("Set-Cookie", cookie),))

    def _cookie_attributes(self, request: Request) -> str:
        attributes = f"Path={self.path}; HttpOnly; SameSite=Strict"
        # Over TLS, on this server's port or at a TLS-terminating proxy, the
        # browser speaks HTTPS, so the cookie can be limited to it.
        forwarded = request.headers.get("x-forwarded-proto", "").lower()
        if request.tls or forwarded == "https":
            attributes += "; Secure"
        return attributes

    # JSON

    def _apps(self) -> list[App]:
        return list(self.hub.apps.all())

    def _app(self, app_id: str) -> App:
        app = self.hub.apps.find_by_id(app_id)
        if app is None:
            raise ApiError(404, f"App {shorten(app_id)} not found")
        return app

    def _app_summary(self, app: App) -> dict[str, object]:
        return {
            "id": app.id,
            "key": app.key,
            "enabled": app.enabled,
            "client_events": app.client_events,
            "connections": self.sampler.connections(app.id),
            "process_connections": self.hub.connection_count(app.id),
        }

    async def _channels(self, app: App) -> dict[str, object]:
        channels = await self.hub.adapter.channels(app.id, "")
        listed: list[dict[str, object]] = []
        for name, state in sorted(channels.items()):
            if name.startswith("#"):
                continue
            if len(listed) == MAX_LISTED_CHANNELS:
                break
            listed.append(
                {
                    "name": name,
                    "kind": classify(name).value,
                    "subscription_count": state.subscription_count,
                    "user_count": state.user_count,
                }
            )
        return {
            "channels": listed,
            "truncated": len(listed) < sum(1 for n in channels if n[:1] != "#"),
            "connections": self.sampler.connections(app.id),
            "process_connections": self.hub.connection_count(app.id),
            "node": self.node,
        }

    async def _members(self, app: App, channel: str) -> dict[str, object]:
        if not is_valid_channel_name(channel, app.limits.max_channel_name_length):
            raise ApiError(400, f"Invalid channel name: {shorten(channel)!r}")
        if classify(channel) is not ChannelKind.PRESENCE:
            raise ApiError(
                400, f"Members exist only in presence channels, not {channel}"
            )
        members = await self.hub.adapter.members(app.id, channel)
        return {
            "channel": channel,
            "members": [
                {"id": user_id, "info": info} for user_id, info in members.items()
            ],
        }

    def _stats(self, app: App) -> dict[str, object]:
        return {
            "interval": SAMPLE_SECONDS,
            "node": self.node,
            "scope": "process" if self.sampler.cluster is None else "cluster",
            "cluster_error": self.sampler.cluster_error,
            "samples": [
                [
                    sample.time,
                    sample.connections,
                    sample.opened,
                    sample.events,
                    sample.nodes,
                ]
                for sample in self.sampler.samples(app.id)
            ],
        }

    async def _trigger(
        self, app: App, request: Request, form: dict[str, str]
    ) -> Response:
        """Publish the form's event through the same checks and hub path as
        ``POST /apps/{app_id}/events``."""
        if not app.enabled:
            raise ApiError(403, f"App {app.id} is disabled")
        channels = [name.strip() for name in form.get("channel", "").split(",")]
        body = json.dumps(
            {
                "name": form.get("event", ""),
                "channels": [name for name in channels if name],
                "data": form.get("data", ""),
            }
        ).encode()
        event = parse_event(body, app.limits)
        await self.hub.publish(app, event)
        logger.info(
            "Console published %s to %s for app %s",
            event.name,
            ", ".join(event.channels),
            app.id,
        )
        if "application/json" in request.headers.get("accept", ""):
            return _json({"published": event.name, "channels": list(event.channels)})
        return self._redirect(f"/apps/{quote(app.id, safe='')}")

    # Responses

    def _redirect(
        self, route: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        location = self.path + route
        return Response(
            303,
            b"",
            "text/plain; charset=utf-8",
            (("Location", location), *_NO_STORE, *headers),
        )

    @staticmethod
    def _not_found(request: Request) -> Response:
        return error_response(404, f"Not found: {shorten(request.path)}")


def _json(payload: object) -> Response:
    body = json.dumps(payload, default=str).encode()
    return Response(200, body, "application/json", _SECURITY_HEADERS + _NO_STORE)


def _not_allowed(allowed: str) -> Response:
    response = error_response(405, f"Method not allowed here; use {allowed}")
    response.headers = (("Allow", allowed),)
    return response


def _form(request: Request) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` body; other bodies give
    no fields, so their CSRF check fails."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        text = request.body.decode()
    except UnicodeDecodeError:
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))
