"""Parallel `clarion apps` processes changing one app: each read-modify-write
is one transaction, so no rotated secret or changed limit is lost."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from store_harness import StoreTarget

pytestmark = pytest.mark.timeout(90)

ROTATIONS = 3
UPDATES = 3
HOLD_SECONDS = 4.0
"""How long the test keeps other writers out while the processes start, so
that they all read the app before any of them may write. SQLite creates its
table in a write transaction, so there the processes wait before their read
even without the fix; PostgreSQL shows the lost updates without it."""


@contextmanager
def writes_held(store: StoreTarget) -> Iterator[None]:
    """Keep other writers of clarion_apps waiting until the block ends; plain
    reads still pass."""
    if store.postgres is None:
        connection = sqlite3.connect(store.sqlite_path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    with psycopg.connect(store.env["CLARION_APP_STORE"]) as connection:
        connection.execute("LOCK TABLE clarion_apps IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()


def start_cli(store: StoreTarget, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update(store.env, CLARION_APP_STORE_TIMEOUT_MS="30000")
    return subprocess.Popen(
        [sys.executable, "-m", "clarion", "apps", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_parallel_rotations_and_updates_keep_every_change(store: StoreTarget) -> None:
    """Rotations and limit updates started together while the store is locked
    all apply, one after another, once the lock goes."""
    created = store.create("--id", "70", "--key", "busy-key")
    with writes_held(store):
        processes = [
            start_cli(store, "rotate-secret", "--force", "--json", "70")
            for _ in range(ROTATIONS)
        ] + [
            start_cli(store, "update", "70", "--limit", f"max_connections={value}")
            for value in range(1, UPDATES + 1)
        ]
        time.sleep(HOLD_SECONDS)
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    printed = {json.loads(stdout)["secret"] for stdout, _ in outputs[:ROTATIONS]}
    assert len(printed) == ROTATIONS

    final = store.cli("show", "--json", "--show-secret", "70").json()
    # One after another: the last rotation's secret is current, the one before
    # it is the previous secret, and no update wrote back an older secret.
    assert final["secret"] in printed
    assert final["previous_secret"] in printed
    assert final["secret"] != created["secret"]
    assert final["limits"]["max_connections"] in range(1, UPDATES + 1)
