"""Running `clarion apps` and `clarion serve` against one app store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postgres_server import PostgresServer

from clarion.cli import main
from server_process import ServerProcess, launch

REFRESH_MS = 200
"""app_refresh_ms of the servers under test."""
SEEN_TIMEOUT = 5.0
"""Seconds a test waits for a running server to apply a change of the store:
the refresh interval plus generous room for a loaded machine."""


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class StoreTarget:
    """One app store, and how to run `clarion apps` and `clarion serve` on it."""

    kind: str
    directory: Path
    env: dict[str, str]
    postgres: PostgresServer | None = None
    started: list[ServerProcess] = field(default_factory=list)

    def cli(self, *args: str, child_process: bool = False) -> CliResult:
        """Run `clarion apps ARGS` with this store's CLARION_* variables and
        return its exit code and output.

        It runs in this process (the same `main` that the `clarion` script
        calls, with the variables swapped in for the call) because a child
        process per call would take most of this folder's time. With
        ``child_process`` it runs as `python -m clarion` instead.
        """
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("CLARION_")
        }
        env.update(self.env)
        if child_process:
            completed = subprocess.run(
                [sys.executable, "-m", "clarion", "apps", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            return CliResult(completed.returncode, completed.stdout, completed.stderr)

        stdout, stderr = io.StringIO(), io.StringIO()
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            with redirect_stdout(stdout), redirect_stderr(stderr):
                main(["apps", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = 0
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return CliResult(code, stdout.getvalue(), stderr.getvalue())

    def create(self, *args: str) -> dict[str, Any]:
        """Create an app with `clarion apps create --json ARGS`; return it."""
        result = self.cli("create", "--json", *args)
        assert result.returncode == 0, result.stderr
        created: dict[str, Any] = result.json()
        return created

    def serve(
        self, config: str | None = None, *, args: tuple[str, ...] = (), **env: str
    ) -> ServerProcess:
        """Start `clarion serve ARGS` on this store, refreshing every
        REFRESH_MS; ``env`` adds CLARION_* variables."""
        server_env = {**self.env, "CLARION_APP_REFRESH_MS": str(REFRESH_MS), **env}
        server = launch(config, self.directory, args=args, env=server_env)
        self.started.append(server)
        return server

    def raw_sql(self, statement: str, parameters: tuple[object, ...] = ()) -> None:
        """Run one statement on the store's database directly, as an operator
        editing it by hand would; ``?`` marks the parameters."""
        if self.postgres is None:
            import sqlite3

            connection = sqlite3.connect(self.sqlite_path)
            with connection:
                connection.execute(statement, parameters)
            connection.close()
            return
        import psycopg

        with psycopg.connect(self.env["CLARION_APP_STORE"], autocommit=True) as db:
            db.execute(statement.replace("?", "%s"), parameters)  # type: ignore[arg-type]

    # Outages

    def make_unreachable(self) -> None:
        """Make the store fail every read until ``make_reachable``.

        SQLite: a directory takes the place of the file. PostgreSQL: the
        database stops accepting connections and its sessions are ended.
        """
        if self.postgres is None:
            path = self.sqlite_path
            path.rename(path.with_name(path.name + ".away"))
            path.mkdir()
            return
        name = self.env["CLARION_APP_STORE"].rsplit("/", 1)[1]
        admin = self.postgres.url()
        self.postgres.execute(admin, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        self.postgres.execute(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}'",
        )

    def make_reachable(self) -> None:
        if self.postgres is None:
            path = self.sqlite_path
            path.rmdir()
            path.with_name(path.name + ".away").rename(path)
            return
        name = self.env["CLARION_APP_STORE"].rsplit("/", 1)[1]
        self.postgres.execute(
            self.postgres.url(), f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'
        )

    @property
    def sqlite_path(self) -> Path:
        return Path(self.env["CLARION_DATA_DIR"]) / "apps.sqlite3"
