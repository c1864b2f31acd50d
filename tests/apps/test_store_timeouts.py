"""A PostgreSQL app store whose table is locked: queries end at the statement
timeout, a starting server listens and serves its config file meanwhile, and
neither closing the store nor SIGTERM waits on the lock."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from postgres_server import PostgresServer
from store_harness import StoreTarget

from clarion.server.app_store import AppStoreError, PostgresAppStore

pytestmark = pytest.mark.timeout(60)

CONFIG = """
[[apps]]
id = "5"
key = "file-key"
secret = "file-secret"
"""


@contextmanager
def locked_table(url: str) -> Iterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on clarion_apps until the block ends."""
    connection = psycopg.connect(url)
    try:
        connection.execute("LOCK TABLE clarion_apps IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        connection.rollback()
        connection.close()


def wait_until_blocked(url: str) -> None:
    """Return once a query waits for the lock on clarion_apps."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(url, autocommit=True) as connection:
            waiting = connection.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
            ).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.05)
    raise AssertionError("no query waited for the lock")


def test_locked_table_times_out(postgres: PostgresServer) -> None:
    """A read of a locked table fails at the statement timeout, not later."""
    url = postgres.create_database()
    app_store = PostgresAppStore(url, statement_timeout=0.3)
    try:
        assert app_store.load_apps() == []
        with locked_table(url), pytest.raises(AppStoreError) as caught:
            app_store.load_apps()
        assert "statement timeout" in str(caught.value)
    finally:
        app_store.close()


def test_close_cancels_blocked_query(
    postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """close() from another thread ends a query blocked on a lock at once, and
    the query is not run again on a new connection."""
    url = postgres.create_database()
    app_store = PostgresAppStore(url, statement_timeout=30)
    assert app_store.load_apps() == []
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            app_store.load_apps()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    with locked_table(url), caplog.at_level(logging.INFO):
        reader = threading.Thread(target=read)
        reader.start()
        wait_until_blocked(url)
        app_store.close()
        reader.join(timeout=10)
        assert not reader.is_alive()
    assert isinstance(outcome[0], AppStoreError)
    assert not any("Reconnecting" in r.getMessage() for r in caplog.records)
    with pytest.raises(AppStoreError, match="closed"):
        app_store.load_apps()


def test_server_starts_and_stops_with_table_locked(
    store: StoreTarget, tmp_path: Path
) -> None:
    """With the table locked, a server listens and serves the config file app,
    and exits 0 on SIGTERM without waiting for the lock."""
    if store.postgres is None:
        pytest.skip("SQLite has no table lock held across processes")
    store.create("--id", "10", "--key", "store-key")
    with locked_table(store.env["CLARION_APP_STORE"]):
        server = store.serve(CONFIG, CLARION_APP_STORE_TIMEOUT_MS="1000")
        log = server.log_text()
        assert "Cannot read the app store" in log
        assert "Serving app 5" in log
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=10) == 0
