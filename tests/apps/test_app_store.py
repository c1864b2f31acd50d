"""The app store and the cached registry in-process: every App field survives
the round trip, unknown or bad stored values do not break loading, and the
rules for conflicts, the development app and failed reads."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from postgres_server import PostgresServer
from store_harness import StoreTarget

from clarion.protocol.apps import App, Limits
from clarion.protocol.webhooks import WebhookTarget
from clarion.server.app import open_registry
from clarion.server.app_store import (
    AppStore,
    DuplicateAppError,
    PostgresAppStore,
    SQLiteAppStore,
    open_app_store,
)
from clarion.server.apps import MAX_RETRY_DELAY, CachedAppRegistry
from clarion.server.config import DEV_APP, ConfigError, load_settings

FULL_APP = App(
    id="31",
    key="full-key",
    secret="full-secret",
    previous_secret="old-secret",
    enabled=False,
    client_events=True,
    subscription_count_events=True,
    watchlist_events=False,
    authorized_connections=True,
    limits=Limits(max_connections=9, max_presence_members=250, cache_ttl=60),
    webhooks=(
        WebhookTarget(
            "http://127.0.0.1:9/a",
            frozenset({"channel_occupied", "user_online"}),
            "private-",
            {"X-Team": "blue"},
        ),
        WebhookTarget("http://127.0.0.1:9/b"),
    ),
)


def open_store(target: StoreTarget) -> AppStore:
    return open_app_store(
        target.env.get("CLARION_APP_STORE", ""),
        target.env["CLARION_DATA_DIR"],
        create=True,
    )


def test_round_trip_keeps_every_field(store: StoreTarget) -> None:
    """An app read back equals the app written, field for field."""
    app_store = open_store(store)
    try:
        app_store.insert_app(FULL_APP)
        assert app_store.load_apps() == [FULL_APP]
        assert app_store.find_app("31") == FULL_APP
        assert app_store.find_app("32") is None
    finally:
        app_store.close()


def test_insert_duplicate_raises(store: StoreTarget) -> None:
    """A second app with the same id or key raises DuplicateAppError."""
    app_store = open_store(store)
    try:
        app_store.insert_app(FULL_APP)
        with pytest.raises(DuplicateAppError):
            app_store.insert_app(App(id="31", key="other-key", secret="s"))
        with pytest.raises(DuplicateAppError):
            app_store.insert_app(App(id="32", key="full-key", secret="s"))
        assert len(app_store.load_apps()) == 1
    finally:
        app_store.close()


def test_update_and_delete_report_missing(store: StoreTarget) -> None:
    """update_app and delete_app return False for an id the store lacks."""
    app_store = open_store(store)
    try:
        assert app_store.update_app(FULL_APP) is False
        assert app_store.delete_app("31") is False
        app_store.insert_app(FULL_APP)
        assert app_store.delete_app("31") is True
    finally:
        app_store.close()


def write_raw_row(path: Path, options: str, limits: str) -> None:
    import sqlite3

    connection = sqlite3.connect(path)
    with connection:
        connection.execute(
            "INSERT INTO clarion_apps (id, key, secret, options, limits, webhooks, "
            "created_at, updated_at) VALUES ('40', 'raw-key', 'raw', ?, ?, '[]', 0, 0)",
            (options, limits),
        )
    connection.close()


def test_unknown_keys_ignored_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys written by a newer version are ignored with one warning each."""
    app_store = SQLiteAppStore(tmp_path / "apps.sqlite3")
    app_store.load_apps()
    write_raw_row(
        app_store.path,
        '{"client_events": true, "future_switch": true}',
        '{"max_connections": 4, "future_limit": 7}',
    )
    with caplog.at_level(logging.WARNING):
        apps = app_store.load_apps()
        app_store.load_apps()
    assert apps == [
        App(
            id="40",
            key="raw-key",
            secret="raw",
            client_events=True,
            limits=Limits(max_connections=4),
        )
    ]
    warnings = [record.getMessage() for record in caplog.records]
    assert sum("'future_switch'" in text for text in warnings) == 1
    assert sum("'future_limit'" in text for text in warnings) == 1


def test_bad_stored_value_skips_app(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A value of the wrong type skips that app with an error; others load."""
    app_store = SQLiteAppStore(tmp_path / "apps.sqlite3")
    app_store.insert_app(App(id="1", key="good-key", secret="good"))
    write_raw_row(app_store.path, "{}", '{"max_connections": "many"}')
    with caplog.at_level(logging.ERROR):
        apps = app_store.load_apps()
    assert [app.id for app in apps] == ["1"]
    assert any("App 40" in record.getMessage() for record in caplog.records)


def test_server_side_sqlite_not_created(tmp_path: Path) -> None:
    """The server reads a missing SQLite file as empty and does not create it."""
    path = tmp_path / "data" / "apps.sqlite3"
    assert SQLiteAppStore(path, create=False).load_apps() == []
    assert not path.parent.exists()


# The cached registry


CONFIG_APP = App(id="5", key="file-key", secret="file-secret")


def registry_for(
    tmp_path: Path, config_apps: tuple[App, ...] = (), dev_app: App | None = DEV_APP
) -> tuple[CachedAppRegistry, SQLiteAppStore]:
    app_store = SQLiteAppStore(tmp_path / "apps.sqlite3")
    registry = CachedAppRegistry(
        config_apps, app_store, refresh_interval=0.1, dev_app=dev_app
    )
    return registry, app_store


async def test_config_wins_conflicts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store app sharing an id or key with a config app is not served."""
    registry, app_store = registry_for(tmp_path, (CONFIG_APP,))
    app_store.insert_app(App(id="5", key="store-key", secret="s"))
    app_store.insert_app(App(id="6", key="file-key", secret="s"))
    app_store.insert_app(App(id="7", key="own-key", secret="s"))
    with caplog.at_level(logging.WARNING):
        assert await registry.refresh()
        assert await registry.refresh()
    assert registry.find_by_id("5") == CONFIG_APP
    assert registry.find_by_key("file-key") == CONFIG_APP
    assert registry.find_by_key("store-key") is None
    assert registry.find_by_id("6") is None
    assert registry.find_by_key("own-key") is not None
    conflicts = [r for r in caplog.records if "config file wins" in r.getMessage()]
    assert len(conflicts) == 2


async def test_dev_app_rule(tmp_path: Path) -> None:
    """The development app is served only while no app exists anywhere."""
    registry, app_store = registry_for(tmp_path)
    assert registry.all() == ()
    assert await registry.refresh()
    assert registry.all() == (DEV_APP,)
    app_store.insert_app(App(id="7", key="own-key", secret="s"))
    assert await registry.refresh()
    assert registry.find_by_key(DEV_APP.key) is None
    app_store.delete_app("7")
    assert await registry.refresh()
    assert registry.all() == (DEV_APP,)


async def test_no_dev_app_beyond_loopback(tmp_path: Path) -> None:
    """Without an allowed development app an empty store serves nothing."""
    registry, _ = registry_for(tmp_path, dev_app=None)
    assert await registry.refresh()
    assert registry.all() == ()


async def test_failed_read_keeps_apps(tmp_path: Path) -> None:
    """A failed read keeps the apps served and backs off; success resets it."""
    registry, app_store = registry_for(tmp_path)
    app_store.insert_app(App(id="7", key="own-key", secret="s"))
    assert await registry.refresh()

    app_store.path.rename(tmp_path / "away.sqlite3")
    app_store.path.mkdir()
    delays = []
    for _ in range(8):
        assert not await registry.refresh()
        delays.append(registry.next_delay())
    assert registry.find_by_key("own-key") is not None
    assert delays[1] > delays[0]
    assert max(delays) <= MAX_RETRY_DELAY

    app_store.path.rmdir()
    (tmp_path / "away.sqlite3").rename(app_store.path)
    assert await registry.refresh()
    assert registry.failures == 0
    assert registry.next_delay() <= registry.refresh_interval


async def test_unreadable_store_hides_dev_app(tmp_path: Path) -> None:
    """A store never read successfully does not bring the development app."""
    registry, app_store = registry_for(tmp_path)
    app_store.path.mkdir()
    assert not await registry.refresh()
    assert registry.all() == ()


async def test_dev_app_beyond_loopback_refused(tmp_path: Path) -> None:
    """On a public address, start-up fails while the development app would be
    the only app, and passes once the store has an app."""
    settings = load_settings(
        flags={"host": "0.0.0.0", "data_dir": str(tmp_path)}, environ={}
    )
    with pytest.raises(ConfigError) as caught:
        await open_registry(settings)
    assert "0.0.0.0" in str(caught.value)

    SQLiteAppStore(tmp_path / "apps.sqlite3").insert_app(
        App(id="7", key="own-key", secret="s")
    )
    registry = await open_registry(settings)
    assert [app.id for app in registry.all()] == ["7"]
    await registry.stop()


def test_sqlite_file_private(tmp_path: Path) -> None:
    """The SQLite file, which contains the secrets, is readable by its owner only."""
    app_store = SQLiteAppStore(tmp_path / "apps.sqlite3")
    app_store.insert_app(FULL_APP)
    assert app_store.path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://apps:pw@db.internal:5432/clarion", "apps@db.internal:5432"),
        ("postgresql://db.internal/clarion?password=pw", "db.internal/clarion"),
        ("postgres://apps@db.internal/clarion", "apps@db.internal/clarion"),
    ],
)
def test_postgres_description_hides_password(url: str, shown: str) -> None:
    """The store's description, used in logs and messages, has no password."""
    description = PostgresAppStore(url).description
    assert "pw" not in description
    assert shown in description


def test_invalid_app_store_setting() -> None:
    """An app_store that is neither sqlite nor a PostgreSQL URL is a ConfigError."""
    with pytest.raises(ConfigError) as caught:
        load_settings(flags={"app_store": "mysql://127.0.0.1/apps"}, environ={})
    assert "Invalid app_store" in str(caught.value)


def test_postgres_reconnects_after_disconnect(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A kept connection closed by the database is replaced without an error."""
    url = postgres.create_database()
    app_store = PostgresAppStore(url)
    try:
        app_store.insert_app(FULL_APP)
        name = url.rsplit("/", 1)[1]
        postgres.execute(
            postgres.url(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}'",
        )
        with caplog.at_level(logging.INFO):
            assert app_store.load_apps() == [FULL_APP]
        assert any("Reconnecting" in r.getMessage() for r in caplog.records)
    finally:
        app_store.close()
