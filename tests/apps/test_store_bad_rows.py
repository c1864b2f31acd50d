"""Rows of the app store edited by hand into something that is no valid app:
each is skipped with one error line, checked as strictly as an [[apps]] table of
the config file, and never stops the other apps from being served or managed."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from clarion_e2e import open_socket
from store_harness import SEEN_TIMEOUT, StoreTarget

from clarion.server.app_store import SQLiteAppStore, UnreadableAppError
from clarion.server.apps import CachedAppRegistry
from server_process import ServerProcess

DEEP = "[" * 100_000 + "]" * 100_000
"""A JSON array nested far deeper than the interpreter's recursion limit."""


def make_row(store: StoreTarget, app_id: str, key: str) -> None:
    created = store.create("--id", app_id, "--key", key)
    assert created["id"] == app_id


def test_deeply_nested_value_skips_only_that_app(
    store: StoreTarget, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhooks value nested 100,000 deep skips its app; list, show and delete
    keep working."""
    make_row(store, "10", "good-key")
    make_row(store, "20", "deep-key")
    store.raw_sql("UPDATE clarion_apps SET webhooks = ? WHERE id = '20'", (DEEP,))

    listed = store.cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [app["id"] for app in listed.json()] == ["10"]
    assert "App 20" in listed.stderr
    assert "nested too deeply" in listed.stderr

    shown = store.cli("show", "20")
    assert shown.returncode == 1
    assert "App 20 in the app store cannot be read" in shown.stderr
    assert "clarion apps delete 20" in shown.stderr

    assert store.cli("delete", "20").returncode == 0
    assert [app["id"] for app in store.cli("list", "--json").json()] == ["10"]


BAD_ROWS = [
    pytest.param("key = '', secret = ''", "app.key", id="empty-key-and-secret"),
    pytest.param("secret = X'00ff'", "app.secret", id="blob-secret"),
    pytest.param(
        """limits = '{"max_event_bytes": -1}'""", "max_event_bytes", id="negative"
    ),
    pytest.param(
        """options = '{"allowed_origins": ["https://a.example/path"]}'""",
        "allowed_origins",
        id="origin-with-path",
    ),
    pytest.param(
        """options = '{"allowed_origins": [1]}'""",
        "allowed_origins",
        id="origin-not-a-string",
    ),
    pytest.param("key = 'bad key/with slash'", "app.key", id="key-with-slash"),
]


@pytest.mark.parametrize(("change", "field"), BAD_ROWS)
def test_row_checked_like_config_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str, field: str
) -> None:
    """A row the config file would refuse is skipped; the error names the app
    id and the field."""
    target = StoreTarget("sqlite", tmp_path, {"CLARION_DATA_DIR": str(tmp_path)})
    make_row(target, "10", "good-key")
    make_row(target, "30", "bad-key")
    target.raw_sql(f"UPDATE clarion_apps SET {change} WHERE id = '30'")
    with caplog.at_level(logging.ERROR):
        apps = SQLiteAppStore(target.sqlite_path).load_apps()
    assert [app.id for app in apps] == ["10"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "App 30" in errors[0]
    assert field in errors[0]
    with pytest.raises(UnreadableAppError):
        SQLiteAppStore(target.sqlite_path).find_app("30")


def test_null_id_named_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite lets a TEXT primary key be NULL: that row is skipped, not served
    as app None."""
    target = StoreTarget("sqlite", tmp_path, {"CLARION_DATA_DIR": str(tmp_path)})
    make_row(target, "10", "good-key")
    target.raw_sql(
        "INSERT INTO clarion_apps (id, key, secret, created_at, updated_at) "
        "VALUES (NULL, 'null-key', 'null-secret', 0, 0)"
    )
    with caplog.at_level(logging.ERROR):
        apps = SQLiteAppStore(target.sqlite_path).load_apps()
    assert [app.id for app in apps] == ["10"]
    assert any("with id None" in r.getMessage() for r in caplog.records)


async def test_bad_row_logged_once_until_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Refreshes log an unreadable row once, again after it changes, and keep
    applying the changes of the other rows."""
    target = StoreTarget("sqlite", tmp_path, {"CLARION_DATA_DIR": str(tmp_path)})
    make_row(target, "10", "good-key")
    make_row(target, "20", "deep-key")
    target.raw_sql("UPDATE clarion_apps SET webhooks = ? WHERE id = '20'", (DEEP,))
    registry = CachedAppRegistry(
        (), SQLiteAppStore(target.sqlite_path), refresh_interval=0.1, dev_app=None
    )

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if "App 20" in r.getMessage()]

    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert await registry.refresh()
        assert len(errors()) == 1
        make_row(target, "30", "new-key")
        target.raw_sql("UPDATE clarion_apps SET webhooks = '[[' WHERE id = '20'")
        assert await registry.refresh()
        assert await registry.refresh()
    assert len(errors()) == 2
    assert sorted(app.id for app in registry.all()) == ["10", "30"]


async def connected(server: ServerProcess, key: str) -> bool:
    client = await open_socket(
        f"ws://127.0.0.1:{server.port}/app/{key}?protocol=7&client=test"
    )
    try:
        frame = await client.recv_frame()
    finally:
        await client.close()
    return frame.event == "pusher:connection_established"


async def test_server_survives_bad_row(store: StoreTarget) -> None:
    """A server started on a store with a deeply nested row serves the other
    apps, keeps picking up changes and logs the row once."""
    make_row(store, "10", "good-key")
    make_row(store, "20", "deep-key")
    store.raw_sql("UPDATE clarion_apps SET webhooks = ? WHERE id = '20'", (DEEP,))
    server = store.serve()
    assert await connected(server, "good-key")
    assert not await connected(server, "deep-key")
    make_row(store, "30", "late-key")
    deadline = time.monotonic() + SEEN_TIMEOUT
    while not await connected(server, "late-key") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await connected(server, "late-key")
    assert server.log_text().count("App 20 in the app store cannot be read") == 1
