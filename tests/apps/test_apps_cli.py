"""`clarion apps`: each subcommand checked by its output and by its effect on the
store, on SQLite and on PostgreSQL, and bad input rejected with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_harness import StoreTarget

from clarion.server.config import ConfigError, load_settings


def test_create_prints_credentials_once(store: StoreTarget) -> None:
    """create prints id, key and secret; list and show then hide the secret."""
    result = store.cli("create", "--client-events", child_process=True)
    assert result.returncode == 0, result.stderr
    pairs = [line.split("=", 1) for line in result.stdout.splitlines() if "=" in line]
    lines = {name.strip(): value.strip() for name, value in pairs}
    app_id, key, secret = lines["app_id"], lines["key"], lines["secret"]
    assert app_id.isdecimal()
    assert len(app_id) == 7
    assert len(key) == 20
    assert len(secret) == 40

    listing = store.cli("list", child_process=True)
    assert listing.returncode == 0
    assert app_id in listing.stdout
    assert key in listing.stdout
    assert secret not in listing.stdout
    shown = store.cli("show", app_id)
    assert shown.returncode == 0
    assert key in shown.stdout
    assert secret not in shown.stdout
    assert "client_events = true" in shown.stdout


def test_secret_printed_on_request(store: StoreTarget) -> None:
    """--show-secret prints the secret in list and show."""
    app = store.create()
    assert app["secret"] in store.cli("list", "--show-secret").stdout
    shown = store.cli("show", app["id"], "--show-secret", "--json").json()
    assert shown["secret"] == app["secret"]
    assert "secret" not in store.cli("show", app["id"], "--json").json()


def test_create_with_options(store: StoreTarget) -> None:
    """Switches, limits and webhooks given to create are stored."""
    app = store.create(
        "--id",
        "4242",
        "--key",
        "chosen-key",
        "--subscription-count-events",
        "--authorized-connections",
        "--no-watchlist-events",
        "--disabled",
        "--limit",
        "max_connections=3",
        "--limit",
        "max_presence_members=500",
        "--webhook",
        "http://127.0.0.1:9/hooks",
        "--webhook-events",
        "channel_occupied,user_online",
    )
    shown = store.cli("show", "4242", "--json").json()
    assert app["id"] == "4242"
    assert shown["key"] == "chosen-key"
    assert shown["enabled"] is False
    assert shown["client_events"] is False
    assert shown["subscription_count_events"] is True
    assert shown["authorized_connections"] is True
    assert shown["watchlist_events"] is False
    assert shown["limits"]["max_connections"] == 3
    assert shown["limits"]["max_presence_members"] == 500
    assert shown["limits"]["client_event_rate"] == 10
    assert shown["webhooks"] == [
        {
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["channel_occupied", "user_online"],
            "channel_prefix": "",
            "headers": {},
        }
    ]


def test_list_json(store: StoreTarget) -> None:
    """list --json returns every app ordered by id, without secrets."""
    assert store.cli("list", "--json").json() == []
    store.create("--id", "20")
    store.create("--id", "10")
    listed = store.cli("list", "--json").json()
    assert [app["id"] for app in listed] == ["10", "20"]
    assert all("secret" not in app for app in listed)


def test_rotate_and_retire_secret(store: StoreTarget) -> None:
    """rotate-secret keeps the old secret as previous; retire-secret drops it."""
    app = store.create()
    rotated = store.cli("rotate-secret", app["id"], "--json")
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.json()["secret"]
    assert new_secret != app["secret"]

    shown = store.cli("show", app["id"], "--show-secret", "--json").json()
    assert shown["secret"] == new_secret
    assert shown["previous_secret"] == app["secret"]
    assert shown["rotating"] is True
    assert "2 (rotating)" in store.cli("list").stdout

    retired = store.cli("retire-secret", app["id"])
    assert retired.returncode == 0, retired.stderr
    shown = store.cli("show", app["id"], "--show-secret", "--json").json()
    assert shown["secret"] == new_secret
    assert shown["previous_secret"] == ""
    assert shown["rotating"] is False


def test_second_rotation_needs_retire_or_force(store: StoreTarget) -> None:
    """A second rotation while one is under way is refused unless forced."""
    app = store.create()
    first = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    refused = store.cli("rotate-secret", app["id"])
    assert refused.returncode == 2
    assert "retire-secret" in refused.stderr
    forced = store.cli("rotate-secret", app["id"], "--force", "--json").json()
    shown = store.cli("show", app["id"], "--show-secret", "--json").json()
    assert shown["secret"] == forced["secret"]
    assert shown["previous_secret"] == first


def test_update_changes_only_given(store: StoreTarget) -> None:
    """update changes the switches and limits named and keeps the rest."""
    app = store.create(
        "--client-events",
        "--limit",
        "max_connections=5",
        "--webhook",
        "http://127.0.0.1:9/hooks",
    )
    rotated = store.cli("rotate-secret", app["id"], "--json").json()["secret"]
    updated = store.cli(
        "update",
        app["id"],
        "--no-client-events",
        "--subscription-count-events",
        "--limit",
        "cache_ttl=60",
    )
    assert updated.returncode == 0, updated.stderr

    shown = store.cli("show", app["id"], "--show-secret", "--json").json()
    assert shown["client_events"] is False
    assert shown["subscription_count_events"] is True
    assert shown["limits"]["cache_ttl"] == 60
    assert shown["limits"]["max_connections"] == 5
    assert [target["url"] for target in shown["webhooks"]] == [
        "http://127.0.0.1:9/hooks"
    ]
    assert shown["secret"] == rotated
    assert shown["previous_secret"] == app["secret"]


def test_update_replaces_webhooks(store: StoreTarget) -> None:
    """--webhook replaces every webhook URL and --no-webhooks removes them."""
    app = store.create("--webhook", "http://127.0.0.1:9/old")
    store.cli("update", app["id"], "--webhook", "http://127.0.0.1:9/new")
    shown = store.cli("show", app["id"], "--json").json()
    assert [target["url"] for target in shown["webhooks"]] == ["http://127.0.0.1:9/new"]
    store.cli("update", app["id"], "--no-webhooks")
    assert store.cli("show", app["id"], "--json").json()["webhooks"] == []


def test_bad_update_exits_2(sqlite_store: StoreTarget) -> None:
    """An invalid update exits with 2 and leaves the app unchanged."""
    app = sqlite_store.create()
    before = sqlite_store.cli("show", app["id"], "--json").json()
    for args in (
        ("--limit", "max_connections=-2"),
        ("--webhook", "ftp://127.0.0.1/x"),
        ("--webhook", "http://127.0.0.1/x", "--no-webhooks"),
    ):
        result = sqlite_store.cli("update", app["id"], *args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("clarion: "), args
    assert sqlite_store.cli("show", app["id"], "--json").json() == before


def test_disable_enable_delete(store: StoreTarget) -> None:
    """disable and enable flip the switch; delete removes the app."""
    app = store.create()
    assert store.cli("disable", app["id"]).returncode == 0
    assert store.cli("show", app["id"], "--json").json()["enabled"] is False
    assert store.cli("enable", app["id"]).returncode == 0
    assert store.cli("show", app["id"], "--json").json()["enabled"] is True
    deleted = store.cli("delete", app["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert store.cli("list", "--json").json() == []


@pytest.mark.parametrize(
    "command",
    ["show", "update", "delete", "rotate-secret", "retire-secret", "disable"],
)
def test_unknown_id_exits_2(store: StoreTarget, command: str) -> None:
    """A subcommand given an id that the store lacks exits with 2."""
    result = store.cli(command, "123")
    assert result.returncode == 2
    assert "App 123 not found" in result.stderr
    assert result.stdout == ""


# Input checks run before the store is written, the same on either backend.
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--id", "abc"), "use digits only", id="non-numeric-id"),
        pytest.param(("--limit", "max_sockets=1"), "Unknown limit", id="unknown-limit"),
        pytest.param(
            ("--limit", "max_connections=many"),
            "expected an integer",
            id="limit-not-integer",
        ),
        pytest.param(
            ("--limit", "max_connections"),
            "expected NAME=VALUE",
            id="limit-without-value",
        ),
        pytest.param(
            ("--limit", "max_connections=-1"), "must be 0 or more", id="negative-limit"
        ),
        pytest.param(
            ("--webhook", "ftp://127.0.0.1/x"),
            "must start with http://",
            id="webhook-scheme",
        ),
        pytest.param(
            ("--webhook", "http://127.0.0.1/x", "--webhook-events", "nope"),
            "Unknown webhook event type",
            id="webhook-event-type",
        ),
        pytest.param(
            ("--webhook-events", "channel_occupied"),
            "needs at least one --webhook",
            id="webhook-events-alone",
        ),
        pytest.param(
            ("--key", "bad key/with slash"), "app.key = 'bad key", id="key-slash"
        ),
        pytest.param(("--key", "k" * 100_000), "use at most 128", id="key-long"),
        pytest.param(("--id", "0001"), "without leading zeros", id="id-zeros"),
    ],
)
def test_bad_create_input_exits_2(
    sqlite_store: StoreTarget, args: tuple[str, ...], message: str
) -> None:
    """Bad input to create exits with 2, names the problem and stores nothing."""
    result = sqlite_store.cli("create", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert sqlite_store.cli("list", "--json").json() == []


def test_duplicate_id_or_key_exits_2(store: StoreTarget) -> None:
    """An id or key that another app has is rejected, and nothing changes."""
    store.create("--id", "77", "--key", "taken-key")
    same_id = store.cli("create", "--id", "77")
    assert same_id.returncode == 2
    assert "id 77 already exists" in same_id.stderr
    same_key = store.cli("create", "--key", "taken-key")
    assert same_key.returncode == 2
    assert "key taken-key already exists" in same_key.stderr
    assert len(store.cli("list", "--json").json()) == 1


def test_config_conflict_names_id_or_key(sqlite_store: StoreTarget) -> None:
    """A conflict with the config file says whether the id or the key is taken."""
    config = sqlite_store.directory / "apps.toml"
    config.write_text('[[apps]]\nid = "5"\nkey = "file-key"\nsecret = "s"\n')
    by_key = sqlite_store.cli(
        "create", "--id", "6", "--key", "file-key", "--config", str(config)
    )
    assert by_key.returncode == 2
    assert "already has key file-key" in by_key.stderr
    assert "id 6" not in by_key.stderr
    by_id = sqlite_store.cli("create", "--id", "5", "--config", str(config))
    assert "already has id 5" in by_id.stderr


@pytest.mark.parametrize(
    ("key", "message"),
    [("a/b", "key = .a/b"), ("", "non-empty"), ("x" * 129, "at most 128")],
)
def test_config_file_key_checked(tmp_path: Path, key: str, message: str) -> None:
    """Keys of the config file follow the same rule as those of the store."""
    config = tmp_path / "apps.toml"
    config.write_text(f'[[apps]]\nid = "5"\nkey = "{key}"\nsecret = "s"\n')
    with pytest.raises(ConfigError, match=message):
        load_settings(flags={"config": str(config)}, environ={})


def test_config_app_conflict_exits_2(store: StoreTarget) -> None:
    """An id that an app of the config file has is rejected."""
    config = store.directory / "apps.toml"
    config.write_text('[[apps]]\nid = "5"\nkey = "file-key"\nsecret = "file-secret"\n')
    result = store.cli("create", "--id", "5", "--config", str(config))
    assert result.returncode == 2
    assert "config file" in result.stderr
    assert store.cli("list", "--json").json() == []


def test_invalid_app_store_setting_exits_2(sqlite_store: StoreTarget) -> None:
    """An app_store that is neither sqlite nor a PostgreSQL URL exits with 2."""
    result = sqlite_store.cli("list", "--app-store", "mysql://127.0.0.1/apps")
    assert result.returncode == 2
    assert "Invalid app_store" in result.stderr


def test_unreachable_postgres_exits_1(sqlite_store: StoreTarget) -> None:
    """A PostgreSQL store that does not answer exits with 1 and says so."""
    from server_process import free_port

    url = f"postgresql://clarion@127.0.0.1:{free_port()}/apps"
    result = sqlite_store.cli("list", "--app-store", url)
    assert result.returncode == 1
    assert "app store failed" in result.stderr
    assert "127.0.0.1" in result.stderr


def test_sqlite_file_in_data_dir(sqlite_store: StoreTarget) -> None:
    """The default store is apps.sqlite3 in the data directory."""
    sqlite_store.create()
    assert (sqlite_store.directory / "data" / "apps.sqlite3").is_file()


def test_origins_and_tls_switch_round_trip(store: StoreTarget) -> None:
    """--allowed-origins and --require-tls are stored by create, replaced by
    update, and cleared by an empty --allowed-origins."""
    app = store.create(
        "--require-tls", "--allowed-origins", "https://app.example.com, *.example.org"
    )
    shown = store.cli("show", app["id"], "--json").json()
    assert shown["require_tls"] is True
    assert shown["allowed_origins"] == ["https://app.example.com", "*.example.org"]

    result = store.cli(
        "update",
        app["id"],
        "--no-require-tls",
        "--allowed-origins",
        "https://other.example.com",
    )
    assert result.returncode == 0, result.stderr
    shown = store.cli("show", app["id"], "--json").json()
    assert shown["require_tls"] is False
    assert shown["allowed_origins"] == ["https://other.example.com"]

    assert store.cli("update", app["id"], "--allowed-origins", "").returncode == 0
    assert store.cli("show", app["id"], "--json").json()["allowed_origins"] == []


def test_bad_origin_pattern_exits_2(sqlite_store: StoreTarget) -> None:
    """An origin pattern that cannot match a browser origin is refused."""
    result = sqlite_store.cli("create", "--allowed-origins", "https://exa mple.com")
    assert result.returncode == 2
    assert "allowed_origins" in result.stderr
    assert sqlite_store.cli("list", "--json").json() == []
