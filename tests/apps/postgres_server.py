"""A throwaway PostgreSQL server for tests: initdb in a temporary directory, the
server on a free loopback port with its socket in that directory, stopped by
PID.

PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` user that the Debian ``postgresql`` package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from server_process import free_port

START_TIMEOUT = 30.0
"""Seconds PostgreSQL has to accept connections after it starts."""


def postgres_bin_dir() -> Path:
    """Return the directory of initdb and postgres: on PATH, else the newest
    under /usr/lib/postgresql, where Debian installs them."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: install the Debian package postgresql "
            "(scripts/test.sh does it)"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """One PostgreSQL server with trust authentication on 127.0.0.1."""

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.port = free_port()
        self.user = "clarion"
        # Not under pytest's tmp directory: that one is private to the current
        # user, and the server may run as another.
        self.directory = Path(tempfile.mkdtemp(prefix="clarion-postgres-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._run_as: int | None = None
        if os.geteuid() == 0:
            self._run_as = pwd.getpwnam("postgres").pw_uid
            os.chown(self.directory, self._run_as, -1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def start(self) -> None:
        data = self.directory / "data"
        subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self._run_as,
            cwd=self.directory,
        )
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                user=self._run_as,
                cwd=self.directory,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with code {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def execute(self, url: str, statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    def stop(self) -> None:
        """Stop the server by its PID, then remove its files. The data is thrown
        away, so the immediate shutdown (SIGQUIT) skips the final checkpoint."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGQUIT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)
