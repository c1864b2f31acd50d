"""Settings, read once at start-up: command-line flags over ``CLARION_*`` environment
variables over the TOML file, over the defaults."""

from __future__ import annotations

import logging
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from clarion.logs import LOG_FORMATS
from clarion.protocol.apps import App, Limits
from clarion.protocol.origins import parse_origin_pattern
from clarion.protocol.webhooks import EVENT_TYPES, PUSHER_EVENT_TYPES, WebhookTarget

__all__ = [
    "DEV_APP",
    "DEV_APP_WARNING",
    "ConfigError",
    "Settings",
    "app_from_table",
    "app_to_table",
    "check_dev_app_exposure",
    "load_settings",
    "webhook_to_table",
]

logger = logging.getLogger(__name__)

DEV_APP = App(id="1", key="app-key", secret="app-secret", client_events=True)
"""The development app served when nothing else is configured. Its secret is public."""
DEV_APP_WARNING = (
    "The development app (id 1, key app-key, secret app-secret) is active. "
    "Its credentials are public: use them for development only."
)
"""Logged whenever a server starts or goes back to serving the development app."""
DEFAULT_APPS = (DEV_APP,)
"""``Settings.apps`` when neither the config file nor the environment has apps."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
OPS_PATHS = frozenset({"/up", "/ready", "/metrics"})
"""Paths of the health and metrics endpoints, which the console cannot take."""
MIN_CONSOLE_TOKEN = 16
"""Characters a console token needs at least, so guessing it is impractical."""


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and the accepted form."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 6001
    apps: tuple[App, ...] = DEFAULT_APPS
    """Apps of the config file or the environment, else the development app."""
    activity_timeout: int = 120
    """Seconds announced to clients; the server pings a client silent this long."""
    pong_timeout: int = 30
    """Seconds a client has to respond to the server's ping before it is closed
    with 4201."""
    max_frame_bytes: int = 256 * 1024
    """Largest WebSocket message accepted from a client; larger ones close with 1009."""
    max_body_bytes: int = 1024 * 1024
    """Largest HTTP request body accepted; larger ones get 413."""
    http_idle_timeout: int = 30
    """Seconds an HTTP connection may go without completing a request."""
    fallback_path: str = "/pusher"
    """Path of pusher-js's HTTP fallback transports (its ``httpPath`` option)."""
    data_dir: str = "data"
    """Directory for the webhook outbox, relative to the working directory
    unless absolute. Nothing is written there unless an app has webhooks."""
    webhook_batch_ms: int = 50
    """Milliseconds that webhook events of one app are collected into one request."""
    webhook_delay_ms: int = 3000
    """Milliseconds ``channel_vacated`` and ``member_removed`` wait; they are
    dropped, with the matching occupied or added event, if undone meanwhile."""
    webhook_timeout: int = 10
    """Seconds a webhook receiver has to respond to one request."""
    redis_url: str = ""
    """``redis://``, ``rediss://`` or ``unix://`` URL of the Redis that a
    cluster shares; empty for one process with in-process state."""
    redis_prefix: str = "clarion"
    """Prefix of every Redis key and channel, so deployments can share a Redis."""
    workers: int = 1
    """Server processes sharing the port; more than one needs ``redis_url``."""
    node_timeout: int = 10
    """Seconds without a heartbeat after which a node counts as dead and its
    connections leave their channels (at most 30)."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT; set for the processes of ``workers``."""
    webhook_retry_window: int = 300
    """Seconds a webhook is retried for before it moves to the dead-letter store."""
    expose_dev_app: bool = False
    """Allow listening beyond loopback while the development app is configured."""
    console_token: str = ""
    """Admin token of the web debug console; empty turns the console off."""
    console_path: str = "/console"
    """Path under which the debug console is served."""
    log_level: str = "INFO"
    log_format: str = "text"
    """``text`` for readable lines, ``json`` for one JSON object per line."""
    metrics_port: int = 0
    """Port of a separate listener for ``/metrics`` on ``host``; 0 serves
    ``/metrics`` on ``port`` with everything else."""
    max_node_connections: int = 0
    """Open connections one server process takes before new ones get 4100;
    0 is unlimited."""
    memory_limit_mb: int = 0
    """Resident memory in MiB over which new connections get 4100 and /ready
    fails; 0 is no limit."""
    app_store: str = ""
    """The store of ``clarion apps``: empty or ``sqlite`` for the file
    ``apps.sqlite3`` in ``data_dir``, or a ``postgresql://`` URL."""
    app_refresh_ms: int = 5000
    """Milliseconds between reads of the app store by each server process."""
    app_store_timeout_ms: int = 5000
    """Milliseconds one query of the app store may take before it is given up,
    and that a starting server waits for its first read of the store."""
    drain_seconds: int = 10
    """Seconds over which a stopping server closes its open connections with
    4200, in paced batches; 0 closes them all at once."""
    drain_webhook_seconds: int = 5
    """Seconds a stopping server gives its webhook sender for a last attempt
    at the deliveries due in the outbox; 0 leaves them all for the next start."""
    tls_cert_file: str = ""
    """PEM file with the server certificate, then any intermediate
    certificates. When set, ``port`` serves only TLS (wss:// and https://)."""
    tls_key_file: str = ""
    """PEM file with the certificate's private key, not encrypted; empty reads
    the key from ``tls_cert_file``."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origin patterns (``protocol/origins.py``) whose pages may read HTTP API
    responses; empty sends no CORS headers."""

    @property
    def config_apps(self) -> tuple[App, ...]:
        """The apps of the config file or the environment. It is empty when the
        development app is only the default."""
        return () if self.apps is DEFAULT_APPS else self.apps

    @property
    def dev_app_allowed(self) -> bool:
        """Whether the development app may be served on ``host``."""
        return self.host in LOOPBACK_HOSTS or self.expose_dev_app

    @property
    def uses_dev_app(self) -> bool:
        """Whether any app uses the development app's public secret."""
        return any(app.secret == DEV_APP.secret for app in self.apps)

    def __repr__(self) -> str:
        # redis_url may carry a password and console_token is one, so both are
        # left out.
        return (
            f"Settings(host={self.host!r}, port={self.port}, "
            f"apps={[app.id for app in self.apps]})"
        )


# Setting name -> (environment variable, parser). Flags use the same names.
_SERVER_KEYS = {
    "host": str,
    "port": int,
    "activity_timeout": int,
    "pong_timeout": int,
    "max_frame_bytes": int,
    "max_body_bytes": int,
    "http_idle_timeout": int,
    "fallback_path": str,
    "data_dir": str,
    "webhook_batch_ms": int,
    "webhook_delay_ms": int,
    "webhook_timeout": int,
    "webhook_retry_window": int,
    "redis_url": str,
    "redis_prefix": str,
    "workers": int,
    "node_timeout": int,
    "reuse_port": bool,
    "expose_dev_app": bool,
    "console_token": str,
    "console_path": str,
    "log_level": str,
    "log_format": str,
    "metrics_port": int,
    "max_node_connections": int,
    "memory_limit_mb": int,
    "app_store": str,
    "app_refresh_ms": int,
    "app_store_timeout_ms": int,
    "drain_seconds": int,
    "drain_webhook_seconds": int,
    "tls_cert_file": str,
    "tls_key_file": str,
    "cors_origins": tuple,
}

_APP_SWITCHES = (
    "enabled",
    "client_events",
    "subscription_count_events",
    "watchlist_events",
    "authorized_connections",
    "require_tls",
)
MAX_KEY_LENGTH = 128
"""Characters of an app key, at most."""
_KEY_CHARACTERS = string.ascii_letters + string.digits + "._~-"
"""The characters of an app key: those a URL path carries without escaping."""
_APP_KEYS = {"id", "key", "secret", "webhooks", "allowed_origins", *_APP_SWITCHES}
_WEBHOOK_KEYS = {"url", "event_types", "channel_prefix", "headers"}
_LIMIT_KEYS = {limit.name for limit in fields(Limits)}


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from ``flags`` (None values are unset) over ``environ``.

    ``CLARION_CONFIG`` or the ``config`` flag names the TOML file. The
    ``CLARION_APP_ID``, ``CLARION_APP_KEY`` and ``CLARION_APP_SECRET`` variables
    define one app that replaces the apps of the file, with a warning logged
    when the file has apps.

    Raises:
        ConfigError: a value is invalid, or the development app would be exposed
        beyond loopback without ``expose_dev_app``.
    """
    flags = {name: value for name, value in (flags or {}).items() if value is not None}
    environ = environ or {}

    config_path = flags.get("config") or environ.get("CLARION_CONFIG")
    document = _read_toml(Path(config_path)) if config_path else {}
    unknown_tables = set(document) - {"server", "apps"}
    if unknown_tables:
        raise ConfigError(
            f"Unknown key(s) in config file {config_path}: "
            f"{', '.join(sorted(unknown_tables))}; expected [server] and [[apps]]"
        )
    server_table = document.get("server", {})
    if not isinstance(server_table, dict):
        raise ConfigError("[server] in the config file must be a table")

    values: dict[str, Any] = {}
    for name, kind in _SERVER_KEYS.items():
        variable = f"CLARION_{name.upper()}"
        if name in flags:
            values[name] = flags[name]
        elif variable in environ:
            values[name] = _parse(environ[variable], kind, variable)
        elif name in server_table:
            values[name] = _check_type(server_table[name], kind, f"server.{name}")
    unknown = set(server_table) - set(_SERVER_KEYS)
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) in [server]: {', '.join(sorted(unknown))}"
        )

    apps = _apps_from_environ(environ)
    if apps:
        _warn_replaced_apps(apps[0], document, config_path)
    else:
        apps = _apps_from_document(document)
    if apps:
        values["apps"] = apps
    settings = Settings(**values)
    _check(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid TOML in config file {path}: {exc}") from exc


def _parse(raw: str, kind: type, variable: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"Invalid {variable}={raw!r}: expected true or false")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"Invalid {variable}={raw!r}: expected an integer"
            ) from None
    if kind is tuple:
        # A comma-separated list; an empty value is an empty list.
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


def _check_type(value: Any, kind: type, name: str) -> Any:
    if kind is tuple:
        # A TOML array of strings.
        if not isinstance(value, list) or not all(
            isinstance(item, str) for item in value
        ):
            raise ConfigError(
                f"Invalid {name} = {value!r}: expected an array of strings"
            )
        return tuple(value)
    # bool is a subclass of int; a TOML boolean is no valid integer setting.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"Invalid {name} = {value!r}: expected {kind.__name__}")
    return value


def _apps_from_environ(environ: Mapping[str, str]) -> tuple[App, ...]:
    names = ("CLARION_APP_ID", "CLARION_APP_KEY", "CLARION_APP_SECRET")
    given = [name for name in names if environ.get(name)]
    if not given:
        return ()
    if len(given) != len(names):
        missing = sorted(set(names) - set(given))
        raise ConfigError(
            f"Set all of {', '.join(names)}; missing: {', '.join(missing)}"
        )
    table: dict[str, Any] = {
        "id": environ["CLARION_APP_ID"],
        "key": environ["CLARION_APP_KEY"],
        "secret": environ["CLARION_APP_SECRET"],
    }
    if "CLARION_APP_CLIENT_EVENTS" in environ:
        table["client_events"] = _parse(
            environ["CLARION_APP_CLIENT_EVENTS"], bool, "CLARION_APP_CLIENT_EVENTS"
        )
    if "CLARION_APP_ALLOWED_ORIGINS" in environ:
        table["allowed_origins"] = list(
            _parse(
                environ["CLARION_APP_ALLOWED_ORIGINS"],
                tuple,
                "CLARION_APP_ALLOWED_ORIGINS",
            )
        )
    return (_build_app(table, "CLARION_APP_*"),)


def _warn_replaced_apps(
    app: App, document: Mapping[str, Any], config_path: str | None
) -> None:
    """Log a warning naming the config file's apps that ``app``, defined by the
    ``CLARION_APP_*`` variables, replaces."""
    tables = document.get("apps")
    if not isinstance(tables, list) or not tables:
        return
    ids = [str(table.get("id")) for table in tables if isinstance(table, dict)]
    logger.warning(
        "CLARION_APP_ID, CLARION_APP_KEY and CLARION_APP_SECRET define app %s, "
        "which replaces the apps of %s (ids: %s). Unset those variables to "
        "serve the file's apps.",
        app.id,
        config_path,
        ", ".join(ids),
    )


def _apps_from_document(document: Mapping[str, Any]) -> tuple[App, ...]:
    tables = document.get("apps", [])
    if not isinstance(tables, list):
        raise ConfigError(
            "apps in the config file must be an array of tables: [[apps]]"
        )
    apps = tuple(
        _build_app(table, f"apps[{index}]") for index, table in enumerate(tables)
    )
    return apps


def app_from_table(table: Mapping[str, Any], where: str) -> App:
    """Build an app from a table shaped like an ``[[apps]]`` table of the config
    file, with the same checks. ``where`` names it in error messages.

    Raises:
        ConfigError: a value is missing or invalid.
    """
    return _build_app(dict(table), where)


def _build_app(table: Any, where: str) -> App:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - _APP_KEYS - _LIMIT_KEYS
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) in {where}: {', '.join(sorted(unknown))}"
        )
    for name in ("id", "key", "secret"):
        value = table.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "id":
            table = {**table, "id": str(value)}
        elif not isinstance(value, str) or not value:
            raise ConfigError(
                f"{where}.{name} is required and must be a non-empty string"
            )
    if not (table["id"].isascii() and table["id"].isdecimal()):
        raise ConfigError(
            f"{where}.id = {table['id']!r}: use digits only, because the official "
            "Python server SDK accepts only numeric app ids"
        )
    if table["id"] != "0" and table["id"].startswith("0"):
        raise ConfigError(
            f"{where}.id = {table['id']!r}: write it without leading zeros, so "
            f"that it cannot be told apart from {table['id'].lstrip('0') or '0'!r} "
            "only by them"
        )
    key = table["key"]
    if len(key) > MAX_KEY_LENGTH or key.strip(_KEY_CHARACTERS):
        raise ConfigError(
            f"{where}.key = {key[:40]!r}{'...' if len(key) > 40 else ''}: use at "
            f"most {MAX_KEY_LENGTH} letters, digits, '.', '_', '~' and '-', "
            "because clients send the key in the connection URL"
        )
    limits = {
        name: _check_type(table[name], int, f"{where}.{name}")
        for name in _LIMIT_KEYS
        if name in table
    }
    for name, value in limits.items():
        if value < 0:
            raise ConfigError(f"{where}.{name} = {value}: must be 0 or more")
    switches = {
        name: _check_type(table[name], bool, f"{where}.{name}")
        for name in _APP_SWITCHES
        if name in table
    }
    allowed_origins = _check_type(
        table.get("allowed_origins", []), tuple, f"{where}.allowed_origins"
    )
    _check_origin_patterns(allowed_origins, f"{where}.allowed_origins")
    webhooks = table.get("webhooks", [])
    if not isinstance(webhooks, list):
        raise ConfigError(
            f"{where}.webhooks must be an array of tables: [[apps.webhooks]]"
        )
    return App(
        id=table["id"],
        key=table["key"],
        secret=table["secret"],
        limits=Limits(**limits),
        webhooks=tuple(
            _build_webhook(webhook, f"{where}.webhooks[{index}]")
            for index, webhook in enumerate(webhooks)
        ),
        allowed_origins=allowed_origins,
        **switches,
    )


def app_to_table(app: App) -> dict[str, Any]:
    """Return the app as an ``[[apps]]`` table of the config file, which
    ``app_from_table`` turns back into the same app, bar ``previous_secret``."""
    table: dict[str, Any] = {
        "id": app.id,
        "key": app.key,
        "secret": app.secret,
        **{name: getattr(app, name) for name in _APP_SWITCHES},
        **{name: getattr(app.limits, name) for name in _LIMIT_KEYS},
        "allowed_origins": list(app.allowed_origins),
    }
    table["webhooks"] = [webhook_to_table(target) for target in app.webhooks]
    return table


def webhook_to_table(target: WebhookTarget) -> dict[str, Any]:
    """Return a webhook target as an ``[[apps.webhooks]]`` table, with its
    event types sorted."""
    return {
        "url": target.url,
        "event_types": sorted(target.event_types),
        "channel_prefix": target.channel_prefix,
        "headers": dict(target.headers),
    }


def _check_origin_patterns(patterns: tuple[str, ...], name: str) -> None:
    for pattern in patterns:
        try:
            parse_origin_pattern(pattern)
        except ValueError as exc:
            raise ConfigError(f"Invalid {name}: {exc}") from None


def _build_webhook(table: Any, where: str) -> WebhookTarget:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - _WEBHOOK_KEYS
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) in {where}: {', '.join(sorted(unknown))}"
        )
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}.url is required and must start with http:// or https://"
        )
    event_types = table.get("event_types", sorted(PUSHER_EVENT_TYPES))
    if not isinstance(event_types, list) or not event_types:
        raise ConfigError(f"{where}.event_types must be a non-empty array of strings")
    unknown_types = set(event_types) - EVENT_TYPES
    if unknown_types:
        raise ConfigError(
            f"Unknown webhook event type(s) in {where}: "
            f"{', '.join(sorted(map(str, unknown_types)))}; "
            f"expected some of {', '.join(sorted(EVENT_TYPES))}"
        )
    prefix = _check_type(
        table.get("channel_prefix", ""), str, f"{where}.channel_prefix"
    )
    headers = table.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(value, str) for value in headers.values()
    ):
        raise ConfigError(f"{where}.headers must be a table of strings")
    reserved = [name for name in headers if name.lower().startswith("x-pusher-")]
    if reserved:
        raise ConfigError(f"{where}.headers cannot set {', '.join(reserved)}")
    return WebhookTarget(url, frozenset(event_types), prefix, dict(headers))


def _check(settings: Settings) -> None:
    if not settings.apps:
        raise ConfigError("No apps configured: add at least one [[apps]] table")
    for name in ("webhook_batch_ms", "webhook_delay_ms"):
        if getattr(settings, name) < 0:
            raise ConfigError(
                f"Invalid {name} = {getattr(settings, name)}: must be 0 or more"
            )
    if settings.workers < 1:
        raise ConfigError(f"Invalid workers = {settings.workers}: must be 1 or more")
    if settings.workers > 1 and not settings.redis_url:
        raise ConfigError(
            f"workers = {settings.workers} needs redis_url (CLARION_REDIS_URL), "
            "because the processes share their state through Redis"
        )
    if settings.redis_url and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("Invalid redis_url: expected redis://, rediss:// or unix://")
    if not 1 <= settings.node_timeout <= 30:
        raise ConfigError(
            f"Invalid node_timeout = {settings.node_timeout}: expected 1 to 30 seconds"
        )
    if settings.console_token and len(settings.console_token) < MIN_CONSOLE_TOKEN:
        raise ConfigError(
            f"Invalid console_token: use at least {MIN_CONSOLE_TOKEN} characters, "
            "for example the output of `openssl rand -hex 24`"
        )
    path = settings.console_path
    if not path.startswith("/") or path == "/" or path.endswith("/") or " " in path:
        raise ConfigError(
            f"Invalid console_path {path!r}: expected an absolute path such as "
            "/console, without a trailing slash"
        )
    if path.rstrip("/") in (settings.fallback_path.rstrip("/"), "/app", "/apps"):
        raise ConfigError(
            f"Invalid console_path {path!r}: it is already used by the Pusher endpoints"
        )
    if path in OPS_PATHS:
        raise ConfigError(
            f"Invalid console_path {path!r}: it is already used by the health and "
            "metrics endpoints"
        )
    if settings.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"Invalid log_level {settings.log_level!r}: "
            f"expected one of {', '.join(LOG_LEVELS)}"
        )
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"Invalid log_format {settings.log_format!r}: "
            f"expected one of {', '.join(LOG_FORMATS)}"
        )
    _check_operations(settings)
    for attribute in ("id", "key"):
        seen: set[str] = set()
        for app in settings.apps:
            value = getattr(app, attribute)
            if value in seen:
                raise ConfigError(f"Two apps share the {attribute} {value!r}")
            seen.add(value)
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"Invalid server.port {settings.port}: expected 0 to 65535")
    for name in (
        "activity_timeout",
        "pong_timeout",
        "max_frame_bytes",
        "max_body_bytes",
        "http_idle_timeout",
        "webhook_timeout",
        "webhook_retry_window",
        "app_refresh_ms",
        "app_store_timeout_ms",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(
                f"Invalid {name} = {getattr(settings, name)}: must be positive"
            )
    # When the development app is only the default, the server makes this
    # check once it has read the app store, which may define apps in its place.
    if settings.config_apps and not settings.dev_app_allowed:
        check_dev_app_exposure(settings, settings.uses_dev_app)
    if settings.app_store not in ("", "sqlite") and not settings.app_store.startswith(
        ("postgresql://", "postgres://")
    ):
        raise ConfigError(
            "Invalid app_store: expected empty or sqlite (the SQLite file "
            "apps.sqlite3 in data_dir), or a postgresql:// URL"
        )


def check_dev_app_exposure(settings: Settings, serves_dev_app: bool) -> None:
    """Check that the development app is not served beyond loopback without
    ``expose_dev_app``.

    Raises:
        ConfigError: naming the host and the way out.
    """
    if serves_dev_app and not settings.dev_app_allowed:
        raise ConfigError(
            f"Refusing to listen on {settings.host} with the development app, whose "
            "secret is public. Configure your own apps (in the config file or with "
            "`clarion apps create`), or pass --expose-dev-app "
            "(CLARION_EXPOSE_DEV_APP=true) to do it anyway."
        )


def _check_operations(settings: Settings) -> None:
    if not 0 <= settings.metrics_port <= 65535:
        raise ConfigError(
            f"Invalid metrics_port {settings.metrics_port}: expected 0 to 65535, "
            "where 0 serves /metrics on the main port"
        )
    if settings.metrics_port and settings.metrics_port == settings.port:
        raise ConfigError(
            f"Invalid metrics_port {settings.metrics_port}: it is the main port; "
            "use 0 to serve /metrics there"
        )
    for name in ("drain_seconds", "drain_webhook_seconds"):
        if getattr(settings, name) < 0:
            raise ConfigError(
                f"Invalid {name} = {getattr(settings, name)}: must be 0 or more seconds"
            )
    if settings.tls_key_file and not settings.tls_cert_file:
        raise ConfigError(
            "tls_key_file (CLARION_TLS_KEY_FILE) is set but tls_cert_file "
            "(CLARION_TLS_CERT_FILE) is not: set both to serve TLS"
        )
    _check_origin_patterns(settings.cors_origins, "cors_origins")
    for name in ("max_node_connections", "memory_limit_mb"):
        if getattr(settings, name) < 0:
            raise ConfigError(
                f"Invalid {name} = {getattr(settings, name)}: must be 0 (no limit) "
                "or more"
            )
