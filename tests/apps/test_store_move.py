"""Moving an app of the config file into the store without changing its
credentials: the recipe of docs/apps.md, end to end with the official SDK."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pusher
import pusher.errors
import pytest
from clarion_e2e import StdlibBackend
from store_harness import StoreTarget

from server_process import ServerProcess

pytestmark = pytest.mark.timeout(60)

SECRET = "chat-secret-kept-across-the-move"
CONFIG = f"""
[[apps]]
id = "100"
key = "chat-key"
secret = "{SECRET}"
"""


async def trigger_status(server: ServerProcess, secret: str) -> int:
    """Trigger an event for app 100 signed with ``secret``; return the status."""
    client = pusher.Pusher(
        app_id="100",
        key="chat-key",
        secret=secret,
        host="127.0.0.1",
        port=server.port,
        ssl=False,
        backend=StdlibBackend,
    )
    try:
        await asyncio.to_thread(client.trigger, "moves", "probe", {})
    except pusher.errors.PusherBadAuth:
        return 401
    except pusher.errors.PusherBadStatus as exc:
        return int(str(exc).split(":", 1)[0])
    return 200


async def test_config_app_moves_to_store(store: StoreTarget) -> None:
    """create with the config app's id, key and secret succeeds with --config;
    a server restarted without the [[apps]] table serves the store app, and
    signatures made with the old secret keep working."""
    config = store.directory / "clarion.toml"
    config.write_text(CONFIG, encoding="utf-8")
    before = store.serve(CONFIG)
    assert await trigger_status(before, SECRET) == 200

    store.env["CHAT_SECRET"] = SECRET
    created = store.cli(
        "create",
        "--id",
        "100",
        "--key",
        "chat-key",
        "--secret-from-env",
        "CHAT_SECRET",
        "--config",
        str(config),
    )
    assert created.returncode == 0, created.stderr
    assert "Remove its [[apps]] table" in created.stdout
    assert await trigger_status(before, SECRET) == 200
    before.stop()

    after = store.serve()
    assert await trigger_status(after, SECRET) == 200
    assert await trigger_status(after, "another-secret") == 401
    assert "Serving app 100" in after.log_text()


def test_other_secret_still_conflicts(sqlite_store: StoreTarget) -> None:
    """The same id and key with another secret is no move: exit 2."""
    config = sqlite_store.directory / "clarion.toml"
    config.write_text(CONFIG, encoding="utf-8")
    sqlite_store.env["CHAT_SECRET"] = "not-the-same"
    result = sqlite_store.cli(
        "create", "--id", "100", "--key", "chat-key", "--config", str(config),
        "--secret-from-env", "CHAT_SECRET",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--secret-from-env" in result.stderr


def test_secret_from_stdin(sqlite_store: StoreTarget) -> None:
    """--secret-from-stdin reads the first line of standard input; an empty
    one or a missing variable exits 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLARION_")}
    env.update(sqlite_store.env)
    command = [sys.executable, "-m", "clarion", "apps", "create", "--json"]
    completed = subprocess.run(
        [*command, "--secret-from-stdin"],
        input="piped-secret\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    assert '"secret": "piped-secret"' in completed.stdout
    empty = subprocess.run(
        [*command, "--secret-from-stdin"],
        input="",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert empty.returncode == 2
    missing = sqlite_store.cli("create", "--secret-from-env", "NO_SUCH_VARIABLE")
    assert missing.returncode == 2
    assert "NO_SUCH_VARIABLE" in missing.stderr


SETTINGS_CONFIG = f"""
[[apps]]
id = "100"
key = "chat-key"
secret = "{SECRET}"
enabled = false
require_tls = true
allowed_origins = ["https://chat.example.com"]
max_connections = 7

[[apps.webhooks]]
url = "http://127.0.0.1:9/hooks"
"""


def test_move_copies_every_setting(sqlite_store: StoreTarget) -> None:
    """The store copy of a moved app has the switches, origins, limits and
    webhooks of its [[apps]] table, so removing the table changes nothing; other
    options with a move exit 2."""
    config = sqlite_store.directory / "clarion.toml"
    config.write_text(SETTINGS_CONFIG, encoding="utf-8")
    sqlite_store.env["CHAT_SECRET"] = SECRET
    move = ("create", "--id", "100", "--key", "chat-key", "--config", str(config),
            "--secret-from-env", "CHAT_SECRET")  # fmt: skip

    refused = sqlite_store.cli(*move, "--client-events")
    assert refused.returncode == 2
    assert "clarion apps update" in refused.stderr

    assert sqlite_store.cli(*move).returncode == 0
    shown = sqlite_store.cli("show", "100", "--json").json()
    assert shown["enabled"] is False
    assert shown["require_tls"] is True
    assert shown["allowed_origins"] == ["https://chat.example.com"]
    assert shown["limits"]["max_connections"] == 7
    assert [target["url"] for target in shown["webhooks"]] == [
        "http://127.0.0.1:9/hooks"
    ]
