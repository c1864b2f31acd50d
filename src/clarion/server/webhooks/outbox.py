"""The webhook outbox: deliveries waiting to be sent, and the dead-letter store.

The outbox is an interface so that a shared store (Redis) can replace the
SQLite file when several servers share the work.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from clarion.protocol.webhooks import restamp_body

__all__ = ["Delivery", "Outbox", "SQLiteOutbox"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request: a signed body for one URL of one app."""

    id: int
    app_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    """Extra headers configured for the URL."""
    created_at: float
    """Unix time when the webhook was created."""
    attempts: int
    last_error: str = ""


class Outbox(Protocol):
    """Pending deliveries and the dead-letter store.

    ``due`` leases what it returns: those deliveries are not returned again
    until the lease ends, so a delivery in flight is not sent twice, and one
    whose sender died is retried once the lease runs out.
    """

    async def add(
        self,
        app_id: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        created_at: float,
    ) -> None: ...

    async def due(self, now: float, limit: int, lease: float) -> list[Delivery]: ...

    async def delivered(self, delivery_id: int) -> None: ...

    async def retry_later(
        self, delivery_id: int, attempts: int, next_attempt_at: float, error: str
    ) -> None: ...

    async def bury(
        self, delivery_id: int, attempts: int, error: str, now: float
    ) -> None:
        """Move a delivery to the dead-letter store."""

    async def dead(self, limit: int = 100) -> list[Delivery]: ...

    async def replay(self, delivery_ids: Iterable[int] | None, now: float) -> int:
        """Move dead deliveries (all of them for ``None``) back to the outbox as
        new webhooks, with ``time_ms`` set to ``now``; return how many moved."""

    async def pending_count(self) -> int: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (next_attempt_at);
CREATE TABLE IF NOT EXISTS webhook_dead (
    id INTEGER PRIMARY KEY,
    app_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""

_COLUMNS = "id, app_id, url, body, headers, created_at, attempts, last_error"


class SQLiteOutbox:
    """An outbox in one SQLite file, written from one worker thread so the
    event loop never waits on the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None)
            # WAL with synchronous=NORMAL keeps every committed delivery when the
            # process is killed; only a crash of the whole machine may lose the
            # last transactions.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=5000")
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connect()))

    async def add(
        self,
        app_id: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        created_at: float,
    ) -> None:
        encoded = json.dumps(dict(headers))

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO webhook_outbox"
                " (app_id, url, body, headers, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (app_id, url, body, encoded, created_at, created_at),
            )

        await self._run(insert)

    async def due(self, now: float, limit: int, lease: float) -> list[Delivery]:
        def claim(db: sqlite3.Connection) -> list[Delivery]:
            with db:
                db.execute("BEGIN IMMEDIATE")
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM webhook_outbox"
                    " WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                    (now, limit),
                ).fetchall()
                db.executemany(
                    "UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ?",
                    [(now + lease, row[0]) for row in rows],
                )
            return [_delivery(row) for row in rows]

        return await self._run(claim)

    async def delivered(self, delivery_id: int) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM webhook_outbox WHERE id = ?", (delivery_id,)
            )
        )

    async def retry_later(
        self, delivery_id: int, attempts: int, next_attempt_at: float, error: str
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?,"
                " last_error = ? WHERE id = ?",
                (attempts, next_attempt_at, error, delivery_id),
            )
        )

    async def bury(
        self, delivery_id: int, attempts: int, error: str, now: float
    ) -> None:
        def move(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO webhook_dead"
                    " (id, app_id, url, body, headers, created_at, attempts,"
                    " last_error, failed_at)"
                    " SELECT id, app_id, url, body, headers, created_at, ?, ?, ?"
                    " FROM webhook_outbox WHERE id = ?",
                    (attempts, error, now, delivery_id),
                )
                db.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery_id,))

        await self._run(move)

    async def dead(self, limit: int = 100) -> list[Delivery]:
        def select(db: sqlite3.Connection) -> list[Delivery]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM webhook_dead ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
            return [_delivery(row) for row in rows]

        return await self._run(select)

    async def replay(self, delivery_ids: Iterable[int] | None, now: float) -> int:
        ids = None if delivery_ids is None else list(delivery_ids)
        time_ms = int(now * 1000)

        def move(db: sqlite3.Connection) -> int:
            where, params = ("", ()) if ids is None else _in_clause(ids)
            with db:
                db.execute("BEGIN IMMEDIATE")
                rows = db.execute(
                    "SELECT id, app_id, url, body, headers, last_error"
                    f" FROM webhook_dead{where}",
                    params,
                ).fetchall()
                db.executemany(
                    "INSERT INTO webhook_outbox"
                    " (id, app_id, url, body, headers, created_at, attempts,"
                    " next_attempt_at, last_error)"
                    " VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    [
                        (
                            row[0],
                            row[1],
                            row[2],
                            restamp_body(bytes(row[3]), time_ms),
                            row[4],
                            now,
                            now,
                            row[5],
                        )
                        for row in rows
                    ],
                )
                db.execute(f"DELETE FROM webhook_dead{where}", params)
            return len(rows)

        return await self._run(move)

    async def pending_count(self) -> int:
        def count(db: sqlite3.Connection) -> int:
            return int(db.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()[0])

        return await self._run(count)

    async def close(self) -> None:
        def close_connection(_: sqlite3.Connection) -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        if self._connection is not None:
            await self._run(close_connection)
        self._executor.shutdown(wait=True)


def _in_clause(ids: list[int]) -> tuple[str, tuple[int, ...]]:
    placeholders = ", ".join("?" for _ in ids) or "NULL"
    return f" WHERE id IN ({placeholders})", tuple(ids)


def _delivery(row: tuple[object, ...]) -> Delivery:
    delivery_id, app_id, url, body, headers, created_at, attempts, last_error = row
    return Delivery(
        id=int(delivery_id),  # type: ignore[call-overload]
        app_id=str(app_id),
        url=str(url),
        body=bytes(body),  # type: ignore[call-overload]
        headers=json.loads(str(headers)),
        created_at=float(created_at),  # type: ignore[arg-type]
        attempts=int(attempts),  # type: ignore[call-overload]
        last_error=str(last_error),
    )
