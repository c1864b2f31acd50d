"""Fixtures for the app store tests: a PostgreSQL server for the session, and a
store of each kind (SQLite file, PostgreSQL database) with the `clarion apps`
command and `clarion serve` pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The wire-level clients and the webhook receiver live with other test folders.
TESTS = Path(__file__).resolve().parent.parent
for folder in ("server", "cluster", "fallback", "interop"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))

from postgres_server import PostgresServer  # noqa: E402
from store_harness import StoreTarget  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test gets its own database."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    """An empty app store of each kind; servers started on it stop at the end."""
    env = {"CLARION_DATA_DIR": str(tmp_path / "data")}
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        env["CLARION_APP_STORE"] = postgres.create_database()
    target = StoreTarget(request.param, tmp_path, env, postgres)
    yield target
    for server in target.started:
        server.stop()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[StoreTarget]:
    """An empty SQLite app store, for tests about that backend alone."""
    target = StoreTarget(
        "sqlite", tmp_path, {"CLARION_DATA_DIR": str(tmp_path / "data")}
    )
    yield target
    for server in target.started:
        server.stop()
