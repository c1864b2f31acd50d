"""The SQL app store: apps managed with ``clarion apps``, in SQLite or PostgreSQL.

One table, ``clarion_apps``, created on first use. Credentials have their own
columns, and everything else an ``App`` carries is stored as JSON built from the
dataclass fields, so a field added to ``App`` or ``Limits`` needs no schema
change. A key in the JSON that this version does not know is ignored with a
warning, so a store written by a newer version still loads.

The methods are blocking: the server calls them in a worker thread
(``asyncio.to_thread``) and the CLI calls them directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from clarion.protocol.apps import App, Limits
from clarion.protocol.webhooks import PUSHER_EVENT_TYPES, WebhookTarget
from clarion.server.config import app_from_table, app_to_table, webhook_to_table

__all__ = [
    "AppStore",
    "AppStoreError",
    "DuplicateAppError",
    "PostgresAppStore",
    "SQLiteAppStore",
    "UnreadableAppError",
    "open_app_store",
]

logger = logging.getLogger(__name__)

SQLITE_FILE_NAME = "apps.sqlite3"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
POSTGRES_INSTALL = (
    "pip install 'clarion[postgres]' (from a clone: pip install '.[postgres]')"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clarion_apps (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    previous_secret TEXT NOT NULL DEFAULT '',
    options TEXT NOT NULL DEFAULT '{}',
    limits TEXT NOT NULL DEFAULT '{}',
    webhooks TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)
"""
_COLUMNS = "id, key, secret, previous_secret, options, limits, webhooks"

_STORED_APART = frozenset({"id", "key", "secret", "previous_secret", "limits"})
_OPTION_FIELDS = {
    field.name: field
    for field in dataclasses.fields(App)
    if field.name not in _STORED_APART and field.name != "webhooks"
}
"""App fields kept in the ``options`` JSON column: switches and the like."""
_LIMIT_FIELDS = {field.name: field for field in dataclasses.fields(Limits)}

_warned_keys: set[tuple[str, str]] = set()
"""(app id, JSON key) pairs already reported as unknown, so that a refresh
every few seconds does not repeat the warning."""


class AppStoreError(Exception):
    """The app store could not be read or written, for the reason in the message."""


class DuplicateAppError(AppStoreError):
    """Another app in the store has the same id or key."""


class AppStore(Protocol):
    """The storage that ``clarion apps`` writes apps to and the server reads
    them from."""

    description: str
    """The store's location, for messages, without any password."""
    skipped: tuple[str, ...]
    """The reason, per app id, that each row skipped by the last ``load_apps``
    cannot be read."""

    def load_apps(self) -> list[App]:
        """Return every app, ordered by id. Rows that cannot be read are
        skipped with an error in the log.

        Raises:
            AppStoreError: the store cannot be reached or read.
        """
        ...

    def find_app(self, app_id: str) -> App | None: ...

    def insert_app(self, app: App) -> None:
        """Raises: DuplicateAppError when the id or key is taken."""
        ...

    def update_app(self, app: App) -> bool:
        """Replace the app with ``app.id``, or return False when there is none."""
        ...

    def modify_app(self, app_id: str, change: Callable[[App], App]) -> App | None:
        """Read the app, replace it with ``change(app)`` and return that, in one
        transaction that other writers wait for, so that no change is lost;
        return None when there is no such app. An exception from ``change``
        leaves the app as it was.

        Raises:
            UnreadableAppError: the row is not a valid app.
        """
        ...

    def delete_app(self, app_id: str) -> bool:
        """Delete the app, or return False when there is none."""
        ...

    def close(self) -> None: ...


class _SqlAppStore:
    """The SQL shared by both databases. Subclasses open the connection."""

    description = ""
    skipped: tuple[str, ...] = ()
    _placeholder = "?"

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        raise NotImplementedError

    def _execute(
        self, query: str, parameters: Sequence[object] = ()
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement and return its rows and the number of rows changed."""
        query = query.replace("?", self._placeholder)
        with self._connection() as connection, closing(connection.cursor()) as cursor:
            cursor.execute(query, parameters)
            rows = cursor.fetchall() if cursor.description else []
            return [tuple(row) for row in rows], cursor.rowcount

    def load_apps(self) -> list[App]:
        rows, _ = self._execute(f"SELECT {_COLUMNS} FROM clarion_apps ORDER BY id")
        apps: list[App] = []
        skipped: list[str] = []
        for row in rows:
            try:
                apps.append(_read_row(row))
            except UnreadableAppError as exc:
                _report_unreadable(row, exc)
                skipped.append(str(exc))
            else:
                _reported_rows.pop(row[0], None)
        # A row deleted and written again later is logged again.
        for app_id in _reported_rows.keys() - {row[0] for row in rows}:
            del _reported_rows[app_id]
        self.skipped = tuple(skipped)
        return apps

    def find_app(self, app_id: str) -> App | None:
        """Return the app, or None when there is none.

        Raises:
            UnreadableAppError: the row exists but is not a valid app.
        """
        rows, _ = self._execute(
            f"SELECT {_COLUMNS} FROM clarion_apps WHERE id = ?", (app_id,)
        )
        return _read_row(rows[0]) if rows else None

    def insert_app(self, app: App) -> None:
        now = time.time()
        self._execute(
            f"INSERT INTO clarion_apps ({_COLUMNS}, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*_write_row(app), now, now),
        )

    def update_app(self, app: App) -> bool:
        row = _write_row(app)
        _, changed = self._execute(
            "UPDATE clarion_apps SET key = ?, secret = ?, previous_secret = ?, "
            "options = ?, limits = ?, webhooks = ?, updated_at = ? WHERE id = ?",
            (*row[1:], time.time(), app.id),
        )
        return changed > 0

    def delete_app(self, app_id: str) -> bool:
        _, changed = self._execute("DELETE FROM clarion_apps WHERE id = ?", (app_id,))
        return changed > 0

    _lock_row = ""
    """The clause that makes a SELECT lock the row it reads until the
    transaction ends."""

    @contextmanager
    def _transaction(self) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        raise NotImplementedError

    def modify_app(self, app_id: str, change: Callable[[App], App]) -> App | None:
        with self._transaction() as execute:
            rows = execute(
                f"SELECT {_COLUMNS} FROM clarion_apps WHERE id = ?{self._lock_row}",
                (app_id,),
            )
            if not rows:
                return None
            app = change(_read_row(rows[0]))
            execute(
                "UPDATE clarion_apps SET key = ?, secret = ?, previous_secret = ?, "
                "options = ?, limits = ?, webhooks = ?, updated_at = ? WHERE id = ?",
                (*_write_row(app)[1:], time.time(), app_id),
            )
            return app


class SQLiteAppStore(_SqlAppStore):
    """Apps in a SQLite file, shared by the processes of one machine.

    With ``create`` false (the server) a missing file reads as a store without
    apps and is not created. ``clarion apps`` creates it and its directory.
    """

    def __init__(
        self, path: Path, *, create: bool = True, timeout: float = 5.0
    ) -> None:
        self.path = path
        self._timeout = timeout
        self.description = f"SQLite file {path}"
        self._create = create
        self._schema_ready = False

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._create:
            self._create_file()
        try:
            connection = sqlite3.connect(self.path, timeout=self._timeout)
        except sqlite3.Error as exc:
            raise AppStoreError(f"Cannot open {self.description}: {exc}") from exc
        try:
            if not self._schema_ready:
                # WAL lets the servers read while the CLI writes.
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(_SCHEMA)
                self._schema_ready = True
            with connection:
                yield connection
        except sqlite3.IntegrityError as exc:
            raise DuplicateAppError(str(exc)) from exc
        except sqlite3.Error as exc:
            raise AppStoreError(f"{self.description}: {exc}") from exc
        finally:
            connection.close()

    @contextmanager
    def _transaction(self) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        with self._connection() as connection:
            # BEGIN IMMEDIATE takes the write lock before the read, so a second
            # writer waits instead of reading what the first is replacing.
            connection.isolation_level = None
            connection.execute("BEGIN IMMEDIATE")

            def execute(
                query: str, parameters: Sequence[object] = ()
            ) -> list[tuple[Any, ...]]:
                return [tuple(row) for row in connection.execute(query, parameters)]

            try:
                yield execute
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _create_file(self) -> None:
        # The file contains the app secrets, so only its owner may read it.
        # SQLite gives the -wal and -shm files the same permissions.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except (FileExistsError, NotADirectoryError) as exc:
            raise AppStoreError(
                f"Cannot create {self.description}: the data directory "
                f"{self.path.parent} is a file or lies under one; point data_dir "
                "at a directory"
            ) from exc
        except OSError as exc:
            raise AppStoreError(
                f"Cannot create {self.description}: {exc.strerror}"
            ) from exc

    @property
    def absent(self) -> bool:
        """Whether the file does not exist, which reads as a store without apps."""
        return not self.path.exists()

    def load_apps(self) -> list[App]:
        if not self._create and self.absent:
            self.skipped = ()
            return []
        return super().load_apps()

    def find_app(self, app_id: str) -> App | None:
        if not self._create and self.absent:
            return None
        return super().find_app(app_id)

    def close(self) -> None:
        pass


class PostgresAppStore(_SqlAppStore):
    """Apps in PostgreSQL, shared by every server of a deployment.

    One connection is kept open and replaced after an error. It needs the
    ``psycopg`` package (``pip install 'clarion[postgres]'``). Each query may
    take ``statement_timeout`` seconds at most.
    """

    _placeholder = "%s"

    def __init__(
        self, url: str, *, connect_timeout: int = 5, statement_timeout: float = 5.0
    ) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise AppStoreError(
                "app_store is a PostgreSQL URL but psycopg is not installed; "
                f"install it with: {POSTGRES_INSTALL}"
            ) from exc
        self._psycopg = psycopg
        self._url = url
        self._connect_timeout = connect_timeout
        self._statement_timeout_ms = max(1, round(statement_timeout * 1000))
        self.description = f"PostgreSQL {_without_password(url)}"
        self._open: Any = None
        self._closed = False

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        psycopg = self._psycopg
        if self._closed:
            raise AppStoreError(f"{self.description}: the store is closed")
        try:
            if self._open is None or self._open.closed:
                self._open = psycopg.connect(
                    self._url, autocommit=True, connect_timeout=self._connect_timeout
                )
                # A locked table or a slow server ends the query with an error
                # instead of holding up a refresh, the start or the exit.
                self._open.execute(
                    "SELECT set_config('statement_timeout', %s, false)",
                    (str(self._statement_timeout_ms),),
                )
                self._create_schema(self._open)
            yield self._open
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateAppError(self._scrub(exc)) from exc
        except psycopg.Error as exc:
            self._drop_connection()
            raise AppStoreError(f"{self.description}: {self._scrub(exc)}") from exc

    def _scrub(self, exc: Exception) -> str:
        """Return the driver's message without the URL's password, which
        libpq repeats in some of its errors."""
        return _scrub_url(str(exc).strip(), self._url)

    def _execute(
        self, query: str, parameters: Sequence[object] = ()
    ) -> tuple[list[tuple[Any, ...]], int]:
        # A kept connection may have been closed by a database restart or an
        # idle timeout since the last call: that is retried once on a new one.
        # A query cancelled by the statement timeout or by ``close`` is not.
        reused = self._open is not None and not self._open.closed
        try:
            return super()._execute(query, parameters)
        except DuplicateAppError:
            raise
        except AppStoreError as exc:
            cause = exc.__cause__
            if (
                not reused
                or self._closed
                or not isinstance(cause, self._psycopg.OperationalError)
                or isinstance(cause, self._psycopg.errors.QueryCanceled)
            ):
                raise
            logger.info("Reconnecting to %s after: %s", self.description, exc)
            return super()._execute(query, parameters)

    _lock_row = " FOR UPDATE"

    @contextmanager
    def _transaction(self) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
        with self._connection() as connection, connection.transaction():

            def execute(
                query: str, parameters: Sequence[object] = ()
            ) -> list[tuple[Any, ...]]:
                cursor = connection.execute(query.replace("?", "%s"), parameters)
                rows = cursor.fetchall() if cursor.description else []
                return [tuple(row) for row in rows]

            yield execute

    def _create_schema(self, connection: Any) -> None:
        try:
            connection.execute(_SCHEMA)
        except self._psycopg.errors.UniqueViolation:
            # Two processes creating the table at once: one of them wins, and
            # the table exists for both.
            pass

    def _drop_connection(self) -> None:
        connection, self._open = self._open, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the connection for good. A query running in another thread
        is cancelled, so that nothing waits on it."""
        self._closed = True
        connection = self._open
        if connection is not None and not connection.closed:
            cancel = getattr(connection, "cancel_safe", None)
            try:
                if cancel is not None:
                    cancel(timeout=self._connect_timeout)
                else:
                    connection.cancel()
            except Exception as exc:
                logger.info(
                    "Cannot cancel the query on %s: %s",
                    self.description,
                    self._scrub(exc),
                )
        self._drop_connection()


def open_app_store(
    app_store: str, data_dir: str, *, create: bool, timeout: float = 5.0
) -> AppStore:
    """Return the store that the ``app_store`` setting names: the SQLite file
    ``apps.sqlite3`` in ``data_dir`` for an empty value or ``sqlite``, else the
    ``postgresql://`` URL.

    Raises:
        AppStoreError: the value is neither, or psycopg is missing.
    """
    if app_store in ("", "sqlite"):
        return SQLiteAppStore(
            Path(data_dir) / SQLITE_FILE_NAME, create=create, timeout=timeout
        )
    if app_store.startswith(POSTGRES_SCHEMES):
        return PostgresAppStore(app_store, statement_timeout=timeout)
    raise AppStoreError(
        "Invalid app_store: expected empty or sqlite (the SQLite file in "
        "data_dir), or a postgresql:// URL"
    )


def _scrub_url(text: str, url: str) -> str:
    """Return ``text`` with ``url`` and its password replaced by the URL
    without password."""
    text = text.replace(url, _without_password(url))
    location, _, query = url.partition("://")[2].partition("?")
    passwords = [location.rpartition("@")[0].partition(":")[2]]
    # libpq also takes password= and sslpassword= in the query string.
    for parameter in query.split("&"):
        name, _, value = parameter.partition("=")
        if "password" in name.lower():
            passwords.append(value)
    for password in passwords:
        for form in (password, unquote(password)):
            if form:
                text = text.replace(form, "***")
    return re.sub(r"(password\s*=\s*)('[^']*'|[^\s&'\"]+)", r"\1***", text)


def _without_password(url: str) -> str:
    """Return the URL without its password and query, which may carry one."""
    scheme, _, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    credentials, at, location = rest.rpartition("@")
    if not at:
        return f"{scheme}://{rest}"
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{location}"


# Rows


def _write_row(app: App) -> tuple[str, str, str, str, str, str, str]:
    options = {
        name: _to_json_value(getattr(app, name)) for name in sorted(_OPTION_FIELDS)
    }
    limits = dataclasses.asdict(app.limits)
    webhooks = [webhook_to_table(target) for target in app.webhooks]
    return (
        app.id,
        app.key,
        app.secret,
        app.previous_secret,
        json.dumps(options, sort_keys=True),
        json.dumps(limits, sort_keys=True),
        json.dumps(webhooks, sort_keys=True),
    )


def _to_json_value(value: object) -> object:
    if isinstance(value, tuple | frozenset | set):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    return value


class UnreadableAppError(AppStoreError):
    """A row of the store is not a valid app; the message says why."""


def _read_row(row: Sequence[Any]) -> App:
    """Return the app of a row, checked as an ``[[apps]]`` table of the config
    file is.

    Raises:
        UnreadableAppError: a column is missing, not JSON, or has a value that
            the config file would refuse.
    """
    app_id = row[0]
    try:
        return _parse_row(row)
    except RecursionError:
        reason = "a JSON value is nested too deeply"
    # Any failure on a stored value skips that one app, whatever its kind: a
    # row edited by hand must not stop the store from being read.
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
    name = f"App {app_id}" if isinstance(app_id, str) else f"An app with id {app_id!r}"
    raise UnreadableAppError(f"{name} in the app store cannot be read: {reason}")


def _parse_row(row: Sequence[Any]) -> App:
    app_id, key, secret, previous_secret, options, limits, webhooks = row
    app = App(
        id=app_id,
        key=key,
        secret=secret,
        previous_secret=previous_secret or "",
        limits=Limits(
            **_read_fields(app_id, "limits", json.loads(limits), _LIMIT_FIELDS)
        ),
        webhooks=tuple(_read_webhook(table) for table in json.loads(webhooks)),
        **_read_fields(app_id, "options", json.loads(options), _OPTION_FIELDS),
    )
    if not isinstance(app.previous_secret, str):
        raise ValueError("previous_secret is not a string")
    # The same checks as for the config file, so that a row edited by hand
    # cannot serve an app with an empty secret or a broken origin pattern.
    checked = app_from_table(app_to_table(app), "app")
    return dataclasses.replace(checked, previous_secret=app.previous_secret)


_reported_rows: dict[object, int] = {}
"""App id -> hash of the unreadable row last logged for it, so that a refresh
every few seconds logs a bad row once, and again only after it changes."""


def _report_unreadable(row: Sequence[Any], error: UnreadableAppError) -> None:
    app_id = row[0]
    fingerprint = hash(repr(tuple(row)))
    if _reported_rows.get(app_id) == fingerprint:
        return
    _reported_rows[app_id] = fingerprint
    logger.error(
        "%s; skipped until it changes",
        error,
        extra={"app_id": app_id if isinstance(app_id, str) else repr(app_id)},
    )


def _read_fields(
    app_id: str,
    column: str,
    values: object,
    known: Mapping[str, dataclasses.Field[Any]],
) -> dict[str, Any]:
    """Return the known fields of a JSON object with their types checked;
    unknown keys are logged once and ignored."""
    if not isinstance(values, dict):
        raise ValueError(f"{column} is not a JSON object")
    result: dict[str, Any] = {}
    for name, value in values.items():
        field = known.get(name)
        if field is None:
            if (app_id, name) not in _warned_keys:
                _warned_keys.add((app_id, name))
                logger.warning(
                    "App %s in the app store has an unknown %s key %r: ignored",
                    app_id,
                    column,
                    name,
                    extra={"app_id": app_id},
                )
            continue
        result[name] = _typed(field, value, f"{column}.{name}")
    return result


def _typed(field: dataclasses.Field[Any], value: object, where: str) -> object:
    """Convert a JSON value to the type of the field's default, or raise."""
    default = _default_of(field)
    if isinstance(default, tuple | frozenset) and isinstance(value, list):
        value = type(default)(value)
    # bool is a subclass of int, so the types are compared exactly.
    if default is not None and type(value) is not type(default):
        raise ValueError(f"{where} = {value!r} is not of type {type(default).__name__}")
    return value


def _default_of(field: dataclasses.Field[Any]) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    factory: Callable[[], object] | Any = field.default_factory
    if factory is not dataclasses.MISSING:
        return factory()
    return None


def _read_webhook(table: object) -> WebhookTarget:
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise ValueError("a webhook has no url")
    return WebhookTarget(
        url=table["url"],
        event_types=frozenset(table.get("event_types", ())) or PUSHER_EVENT_TYPES,
        channel_prefix=str(table.get("channel_prefix", "")),
        headers=dict(table.get("headers", {})),
    )
