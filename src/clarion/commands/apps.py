"""``clarion apps``: create, list, show, update, rotate secrets of and delete the
apps of the app store.

Settings come as for ``clarion serve``: flags over ``CLARION_*`` variables over
the config file. Bad input exits with 2, an unreachable store with 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clarion.protocol.apps import App
    from clarion.server.app_store import AppStore
    from clarion.server.config import Settings

__all__ = ["add_parser"]

KEY_BYTES = 10
"""Random bytes of a new app key, printed as hex."""
SECRET_BYTES = 20
"""Random bytes of a new app secret, printed as hex (160 bits)."""
_SWITCHES = (
    ("client_events", "--client-events", "let clients trigger client- events"),
    (
        "subscription_count_events",
        "--subscription-count-events",
        "send pusher_internal:subscription_count to subscribers",
    ),
    (
        "authorized_connections",
        "--authorized-connections",
        "close connections that do not sign in or subscribe to a private channel "
        "within the authorization timeout",
    ),
    (
        "require_tls",
        "--require-tls",
        "refuse connections that do not come over TLS (4000)",
    ),
)


_DESCRIBED_APART = frozenset(
    {"id", "key", "secret", "previous_secret", "limits", "webhooks"}
)
"""App fields that ``_describe`` writes on their own, not in the field loop."""


class UsageError(Exception):
    """Bad input from the command line, which exits with 2."""


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apps",
        help="manage the apps of the app store",
        description=(
            "Manage the apps of the app store (the SQLite file apps.sqlite3 in the "
            "data directory, or the PostgreSQL database of --app-store). Running "
            "servers pick up changes within app_refresh_ms (5 s by default)."
        ),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML config file with [server] and [[apps]]"
    )
    common.add_argument(
        "--data-dir", metavar="DIR", help="data directory of the SQLite app store"
    )
    common.add_argument(
        "--app-store",
        metavar="URL",
        help="postgresql:// URL of the app store, or sqlite (the default); "
        "prefer CLARION_APP_STORE for a URL with a password, because arguments "
        "are visible to other users",
    )
    common.add_argument(
        "--json", action="store_true", help="print JSON instead of text"
    )
    commands = parser.add_subparsers(dest="apps_command", required=True)

    create = commands.add_parser(
        "create",
        parents=[common],
        help="create an app and print its credentials",
        description="Create an app with a random key and secret, and print them.",
    )
    create.add_argument("--id", help="numeric app id (default: random 7 digits)")
    create.add_argument("--key", help="app key (default: random)")
    given_secret = create.add_mutually_exclusive_group()
    given_secret.add_argument(
        "--secret-from-env",
        metavar="VAR",
        help="take the secret from environment variable VAR instead of a random "
        "one, for example to move an app of the config file into the store",
    )
    given_secret.add_argument(
        "--secret-from-stdin",
        action="store_true",
        help="take the secret from the first line of standard input",
    )
    for name, flag, text in _SWITCHES:
        create.add_argument(flag, dest=name, action="store_true", help=text)
    create.add_argument(
        "--no-watchlist-events",
        dest="watchlist_events",
        action="store_false",
        help="do not send watchlist online and offline events",
    )
    create.add_argument(
        "--disabled", action="store_true", help="create the app disabled"
    )
    _add_limit_and_webhook_options(create)
    create.set_defaults(handler=_run(_create))

    listing = commands.add_parser(
        "list", parents=[common], help="list the apps, without secrets"
    )
    listing.add_argument("--show-secret", action="store_true", help="print secrets too")
    listing.set_defaults(handler=_run(_list), read_only=True)

    show = commands.add_parser(
        "show", parents=[common], help="show one app, without its secret"
    )
    show.add_argument("id", help="app id")
    show.add_argument("--show-secret", action="store_true", help="print secrets too")
    show.set_defaults(handler=_run(_show), read_only=True)

    rotate = commands.add_parser(
        "rotate-secret",
        parents=[common],
        help="make a new secret current; the old one stays valid until retired",
        description=(
            "Make a new random secret current and keep the current one valid as "
            "the previous secret, until `clarion apps retire-secret ID`."
        ),
    )
    rotate.add_argument("id", help="app id")
    rotate.add_argument(
        "--force",
        action="store_true",
        help="rotate even though a previous secret is still valid; it stops "
        "being valid at once",
    )
    rotate.set_defaults(handler=_run(_rotate))

    retire = commands.add_parser(
        "retire-secret",
        parents=[common],
        help="stop accepting the previous secret after a rotation",
    )
    retire.add_argument("id", help="app id")
    retire.set_defaults(handler=_run(_retire))

    update = commands.add_parser(
        "update",
        parents=[common],
        help="change switches, limits or webhook URLs of an app",
        description=(
            "Change an app in place. Switches not given keep their value, "
            "--limit changes only the limits named, and --webhook replaces "
            "every webhook URL."
        ),
    )
    update.add_argument("id", help="app id")
    for name, flag, text in _SWITCHES:
        update.add_argument(
            flag, dest=name, action=argparse.BooleanOptionalAction, help=text
        )
    update.add_argument(
        "--watchlist-events",
        dest="watchlist_events",
        action=argparse.BooleanOptionalAction,
        help="send watchlist online and offline events",
    )
    _add_limit_and_webhook_options(update)
    update.add_argument(
        "--no-webhooks", action="store_true", help="remove every webhook URL"
    )
    update.set_defaults(handler=_run(_update_app))

    for name, enabled in (("enable", True), ("disable", False)):
        toggle = commands.add_parser(
            name,
            parents=[common],
            help=f"{name} an app: new connections and API requests are "
            + ("accepted" if enabled else "rejected (4003, 403)"),
        )
        toggle.add_argument("id", help="app id")
        toggle.set_defaults(handler=_run(_toggle), enabled=enabled)

    delete = commands.add_parser(
        "delete", parents=[common], help="delete an app; its connections close"
    )
    delete.add_argument("id", help="app id")
    delete.set_defaults(handler=_run(_delete))


def _add_limit_and_webhook_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one limit, for example max_connections=1000; repeatable",
    )
    parser.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="URL that receives the app's webhooks; repeatable",
    )
    parser.add_argument(
        "--allowed-origins",
        metavar="PATTERNS",
        help="comma-separated origin patterns of the pages that may connect, "
        "for example https://*.example.com; an empty value allows every origin",
    )
    parser.add_argument(
        "--webhook-events",
        metavar="TYPES",
        help="comma-separated event types for every --webhook "
        "(default: the Pusher event types)",
    )


def _run(
    action: Callable[[argparse.Namespace, Settings, AppStore], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap a subcommand: load the settings, open the store, map errors to exit
    codes."""

    def run(args: argparse.Namespace) -> int:
        from clarion.server.app_store import (
            AppStoreError,
            DuplicateAppError,
            UnreadableAppError,
            open_app_store,
        )
        from clarion.server.config import ConfigError, load_settings

        # The store logs rows it skips; the commands print them themselves.
        logging.getLogger("clarion").addHandler(logging.NullHandler())

        flags = {
            "config": args.config,
            "data_dir": args.data_dir,
            "app_store": args.app_store,
        }
        try:
            settings = load_settings(flags=flags, environ=os.environ)
            # list and show create nothing, so that a mistyped --data-dir
            # leaves no empty store behind.
            store = open_app_store(
                settings.app_store,
                settings.data_dir,
                create=not getattr(args, "read_only", False),
                timeout=settings.app_store_timeout_ms / 1000,
            )
        except (ConfigError, AppStoreError) as exc:
            print(f"clarion: {exc}", file=sys.stderr)
            return 2
        try:
            return action(args, settings, store)
        except (UsageError, ConfigError, DuplicateAppError) as exc:
            print(f"clarion: {exc}", file=sys.stderr)
            return 2
        except UnreadableAppError as exc:
            print(
                f"clarion: {exc}. Fix the row, or delete the app with "
                f"`clarion apps delete {getattr(args, 'id', '')}`".rstrip(),
                file=sys.stderr,
            )
            return 1
        except AppStoreError as exc:
            print(f"clarion: app store failed: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()

    return run


# Subcommands


def _create(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    from clarion.server.app_store import DuplicateAppError
    from clarion.server.config import app_from_table

    stored = store.load_apps()
    app_id = args.id
    if app_id is None:
        app_id = _new_app_id({app.id for app in (*stored, *settings.config_apps)})
    key = args.key if args.key is not None else secrets.token_hex(KEY_BYTES)
    secret = _given_secret(args) or secrets.token_hex(SECRET_BYTES)
    moved = None
    for app in settings.config_apps:
        if (app.id, app.key, app.secret) == (app_id, key, secret):
            # The same credentials: the app moves from the config file to the
            # store, and the config file keeps serving it until its table goes.
            moved = app
        elif app.id == app_id or app.key == key:
            which = f"id {app_id}" if app.id == app_id else f"key {key}"
            option = "--id" if app.id == app_id else "--key"
            raise UsageError(
                f"An app of the config file already has {which}; choose another "
                f"{option}, or, to move that app into the store, give its id, key "
                "and secret (--secret-from-env or --secret-from-stdin)"
            )
    config_apps = [app for app in settings.config_apps if app is not moved]
    taken_ids = {app.id for app in (*stored, *config_apps)}
    taken_keys = {app.key for app in (*stored, *config_apps)}

    if moved is not None and _gives_settings(args):
        raise UsageError(
            f"Moving app {app_id} copies every setting of its [[apps]] table; give "
            "only --id, --key and the secret, then change it with "
            "`clarion apps update`"
        )
    table: dict[str, Any] = {
        "id": app_id,
        "key": key,
        "secret": secret,
        "enabled": not args.disabled,
        "watchlist_events": args.watchlist_events,
        **{name: getattr(args, name) for name, _, _ in _SWITCHES},
        **_parse_limits(args.limit),
    }
    webhooks = _webhook_tables(args)
    if webhooks is not None:
        table["webhooks"] = webhooks
    if args.allowed_origins is not None:
        table["allowed_origins"] = _split_list(args.allowed_origins)
    app = moved if moved is not None else app_from_table(table, "app")

    if app.id in taken_ids or app.key in taken_keys:
        which = f"id {app.id}" if app.id in taken_ids else f"key {app.key}"
        raise UsageError(f"An app with {which} already exists; choose another")
    try:
        store.insert_app(app)
    except DuplicateAppError:
        # Taken since the list above, or by a row that cannot be read.
        taken = store.find_app(app.id) is not None
        which = f"id {app.id}" if taken else f"key {app.key}"
        message = f"An app with {which} already exists; choose another"
        raise UsageError(message) from None

    if args.json:
        _print_json(_describe(app, show_secret=True))
        return 0
    print(f"Created app {app.id} in {store.description}.")
    print(f"app_id = {app.id}")
    print(f"key    = {app.key}")
    print(f"secret = {app.secret}")
    print(
        "Keep the secret now: list and show print it only with --show-secret. "
        f"Servers serve the app within {_refresh_text(settings)}."
    )
    if moved is not None:
        print(
            f"App {app.id} is also in the config file, with the same credentials, "
            "and servers serve that one while it is there. Remove its [[apps]] "
            "table and restart the servers one by one: they serve this one in its "
            "place, and signatures made with the secret keep working."
        )
    if not stored and not settings.config_apps:
        print(
            "It is the first app of the store: servers without apps in their "
            "config file stop serving the development app (key app-key) within "
            f"{_refresh_text(settings)}, and close its connections with 4001."
        )
    return 0


def _gives_settings(args: argparse.Namespace) -> bool:
    """Return whether `create` got any option besides the id, the key and the
    secret."""
    return (
        args.disabled
        or not args.watchlist_events
        or any(getattr(args, name) for name, _, _ in _SWITCHES)
        or bool(args.limit or args.webhook or args.webhook_events)
        or args.allowed_origins is not None
    )


def _list(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    apps = store.load_apps()
    for reason in store.skipped:
        print(f"clarion: skipped: {reason}", file=sys.stderr)
    if args.json:
        _print_json([_describe(app, show_secret=args.show_secret) for app in apps])
        return 0
    if not apps:
        print(f"No apps in {store.description}{_absent_note(store)}.")
        return 0
    rows = [["ID", "KEY", "ENABLED", "CLIENT EVENTS", "WEBHOOKS", "SECRETS"]]
    if args.show_secret:
        rows[0] += ["SECRET", "PREVIOUS SECRET"]
    for app in apps:
        row = [
            app.id,
            app.key,
            _yes_no(app.enabled),
            _yes_no(app.client_events),
            str(len(app.webhooks)),
            "2 (rotating)" if app.previous_secret else "1",
        ]
        if args.show_secret:
            row += [app.secret, app.previous_secret or "-"]
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip())
    return 0


def _show(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    app = _find(store, args.id)
    description = _describe(app, show_secret=args.show_secret)
    if args.json:
        _print_json(description)
        return 0
    for name, value in description.items():
        if isinstance(value, dict):
            print(f"{name}:")
            for inner, inner_value in value.items():
                print(f"  {inner} = {json.dumps(inner_value)}")
        elif isinstance(value, list):
            print(f"{name}: {len(value)}")
            for item in value:
                print(f"  - {json.dumps(item, sort_keys=True)}")
        else:
            print(f"{name} = {json.dumps(value)}")
    return 0


def _rotate(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    def rotate(app: App) -> App:
        if app.previous_secret and not args.force:
            raise UsageError(
                f"App {app.id} still has a valid previous secret from the last "
                "rotation. Retire it first with "
                f"`clarion apps retire-secret {app.id}`, or pass --force to drop "
                "it at once"
            )
        return dataclasses.replace(
            app, secret=secrets.token_hex(SECRET_BYTES), previous_secret=app.secret
        )

    rotated = _modify(store, args.id, rotate)
    if args.json:
        _print_json({"id": rotated.id, "secret": rotated.secret})
        return 0
    print(f"New secret of app {rotated.id}: {rotated.secret}")
    print(
        f"Servers accept it within {_refresh_text(settings)}, and sign webhooks "
        "with it. The previous secret stays valid until "
        f"`clarion apps retire-secret {rotated.id}`."
    )
    return 0


def _retire(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    def retire(app: App) -> App:
        if not app.previous_secret:
            raise UsageError(f"App {app.id} has no previous secret to retire")
        return dataclasses.replace(app, previous_secret="")

    app = _modify(store, args.id, retire)
    if not args.json:
        print(
            f"Retired the previous secret of app {app.id}; servers reject it "
            f"within {_refresh_text(settings)}."
        )
    return 0


def _update_app(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    from clarion.server.config import app_from_table, app_to_table

    webhooks = _webhook_tables(args)
    if webhooks is not None and args.no_webhooks:
        raise UsageError("Give either --webhook or --no-webhooks, not both")
    changes: dict[str, Any] = {
        name: getattr(args, name)
        for name in (*(name for name, _, _ in _SWITCHES), "watchlist_events")
        if getattr(args, name) is not None
    }
    changes.update(_parse_limits(args.limit))
    if args.allowed_origins is not None:
        changes["allowed_origins"] = _split_list(args.allowed_origins)
    if webhooks is not None:
        changes["webhooks"] = webhooks
    elif args.no_webhooks:
        changes["webhooks"] = []

    def update(app: App) -> App:
        # Checked as a config table; the previous secret, which the table
        # lacks, is kept.
        checked = app_from_table({**app_to_table(app), **changes}, "app")
        return dataclasses.replace(checked, previous_secret=app.previous_secret)

    updated = _modify(store, args.id, update)
    if args.json:
        _print_json(_describe(updated, show_secret=False))
    else:
        print(
            f"Updated app {updated.id}; servers apply it within "
            f"{_refresh_text(settings)}."
        )
    return 0


def _split_list(value: str) -> list[str]:
    """Return the non-empty items of a comma-separated option value."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _webhook_tables(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """Return the webhook tables of --webhook and --webhook-events, or None
    when no --webhook is given."""
    if not args.webhook:
        if args.webhook_events:
            raise UsageError("--webhook-events needs at least one --webhook URL")
        return None
    webhook: dict[str, Any] = {}
    if args.webhook_events:
        webhook["event_types"] = _split_list(args.webhook_events)
    return [{"url": url, **webhook} for url in args.webhook]


def _toggle(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    app = _modify(
        store, args.id, lambda app: dataclasses.replace(app, enabled=args.enabled)
    )
    if not args.json:
        state = "Enabled" if args.enabled else "Disabled"
        print(
            f"{state} app {app.id}; servers apply it within {_refresh_text(settings)}."
        )
    return 0


def _delete(args: argparse.Namespace, settings: Settings, store: AppStore) -> int:
    if not store.delete_app(args.id):
        raise UsageError(f"App {args.id} not found in {store.description}")
    if not args.json:
        print(
            f"Deleted app {args.id}; servers close its connections within "
            f"{_refresh_text(settings)}."
        )
        if not settings.config_apps and not store.load_apps() and not store.skipped:
            print(
                "The store has no apps left: servers without apps in their "
                "config file serve the development app again, on loopback "
                "addresses or with expose_dev_app."
            )
    return 0


# Helpers


def _find(store: AppStore, app_id: str) -> App:
    app = store.find_app(app_id)
    if app is None:
        raise UsageError(
            f"App {app_id} not found in {store.description}{_absent_note(store)}"
        )
    return app


def _absent_note(store: AppStore) -> str:
    """Return a note for a SQLite file that does not exist, else ""."""
    if getattr(store, "absent", False):
        return " (the file does not exist: check --data-dir or CLARION_DATA_DIR)"
    return ""


def _modify(store: AppStore, app_id: str, change: Callable[[App], App]) -> App:
    """Apply ``change`` to the app in one transaction; return the app stored."""
    app = store.modify_app(app_id, change)
    if app is None:
        raise UsageError(f"App {app_id} not found in {store.description}")
    return app


def _given_secret(args: argparse.Namespace) -> str:
    """Return the secret of --secret-from-env or --secret-from-stdin, or "" when
    neither is given. Neither takes the secret itself, which would show in the
    process list."""
    if args.secret_from_env is not None:
        secret = os.environ.get(args.secret_from_env, "")
        if not secret:
            raise UsageError(
                f"--secret-from-env {args.secret_from_env}: that environment "
                "variable is not set or empty"
            )
        return secret
    if args.secret_from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise UsageError("--secret-from-stdin: standard input has no secret")
        return secret
    return ""


def _new_app_id(taken: set[str]) -> str:
    # Seven digits, like the ids of Pusher's hosted service.
    while True:
        app_id = str(1_000_000 + secrets.randbelow(9_000_000))
        if app_id not in taken:
            return app_id


def _parse_limits(values: list[str]) -> dict[str, int]:
    from clarion.protocol.apps import Limits

    known = [field.name for field in dataclasses.fields(Limits)]
    limits: dict[str, int] = {}
    for value in values:
        name, equals, number = value.partition("=")
        name = name.strip()
        if not equals:
            raise UsageError(f"Invalid --limit {value!r}: expected NAME=VALUE")
        if name not in known:
            raise UsageError(
                f"Unknown limit {name!r}; expected one of {', '.join(known)}"
            )
        try:
            limits[name] = int(number)
        except ValueError:
            raise UsageError(
                f"Invalid --limit {value!r}: expected an integer value"
            ) from None
    return limits


def _describe(app: App, *, show_secret: bool) -> dict[str, Any]:
    """Return the app as JSON-ready values, with its secrets only if
    ``show_secret`` is true."""
    from clarion.server.config import webhook_to_table

    description: dict[str, Any] = {"id": app.id, "key": app.key}
    if show_secret:
        description["secret"] = app.secret
        description["previous_secret"] = app.previous_secret
    description["rotating"] = bool(app.previous_secret)
    for field in dataclasses.fields(app):
        if field.name in (
            "id",
            "key",
            "secret",
            "previous_secret",
            "limits",
            "webhooks",
        ):
            continue
        description[field.name] = getattr(app, field.name)
    description["limits"] = dataclasses.asdict(app.limits)
    description["webhooks"] = [webhook_to_table(target) for target in app.webhooks]
    return description


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: object) -> object:
    if isinstance(value, tuple | frozenset | set):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _refresh_text(settings: Settings) -> str:
    return f"{settings.app_refresh_ms / 1000:g} s"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"
