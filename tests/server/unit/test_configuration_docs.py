"""docs/configuration.md describes every setting: each server setting with its
flag, environment variable and default, and each key of an ``[[apps]]`` table.

The tables are parsed from the Markdown, so a setting added to the code without
a row, or a row left behind for a removed setting, fails here.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, Field, fields
from pathlib import Path

import pytest

from clarion.commands import serve
from clarion.protocol.apps import Limits
from clarion.server import config
from clarion.server.config import Settings

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"

Row = dict[str, str]


def read_table(heading: str) -> dict[str, Row]:
    """Return the first table under ``heading``, keyed by its first column
    without backticks; each row maps column titles to cells."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    lines = text[start:].splitlines()
    table_lines: list[str] = []
    for line in lines[2:]:
        if line.startswith("|"):
            table_lines.append(line)
        elif table_lines or line.startswith("#"):
            break
    titles = split_row(table_lines[0])
    rows: dict[str, Row] = {}
    for line in table_lines[2:]:
        cells = split_row(line)
        row = dict(zip(titles, cells, strict=True))
        name = row[titles[0]].strip("`")
        # Two rows for one setting, as a merge may leave, would hide each other.
        assert name not in rows, f"{heading} in {DOCS.name} has two rows for {name}"
        rows[name] = row
    return rows


def split_row(line: str) -> list[str]:
    # A cell may contain an escaped pipe, as in `a \| b`.
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip() for cell in cells]


SERVER_TABLE = read_table("## Server settings")
APP_TABLE = read_table("## Apps")
WEBHOOK_TABLE = read_table("### Webhook URLs")
SETTINGS = [field for field in fields(Settings) if field.name != "apps"]


def serve_flags() -> dict[str, str]:
    """Return the visible flags of ``clarion serve`` by their setting name."""
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    subparser = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {}
    for action in subparser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        # --config names the file, which the text above the table describes.
        if action.dest == "config":
            continue
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        flag = action.option_strings[-1]
        flags[flag.removeprefix("--").replace("-", "_")] = flag
    return flags


def expected_default(default: object) -> str:
    """Render a default as the Default column writes it."""
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    if isinstance(default, int):
        return f"`{default}`"
    if isinstance(default, str):
        return f"`{default}`" if default else "empty"
    assert isinstance(default, tuple)
    return "`[" + ", ".join(f'"{item}"' for item in default) + "]`"


@pytest.mark.parametrize("field", SETTINGS, ids=lambda field: field.name)
def test_server_setting_documented(field: Field[object]) -> None:
    """The setting has a row with its environment variable and default."""
    row = SERVER_TABLE.get(field.name)
    assert row is not None, f"docs/configuration.md has no row for {field.name}"
    assert row["Environment variable"] == f"`CLARION_{field.name.upper()}`"
    assert field.default is not MISSING
    assert row["Default"] == expected_default(field.default)


@pytest.mark.parametrize("name", sorted(serve_flags()))
def test_flag_is_in_its_row(name: str) -> None:
    flag = serve_flags()[name]
    row = SERVER_TABLE.get(name)
    assert row is not None, f"{flag} has no row in docs/configuration.md"
    assert row["Flag"] == f"`{flag}`"


def test_server_rows_are_settings() -> None:
    """Every row of the server table is a setting that the code reads."""
    names = {field.name for field in SETTINGS}
    assert set(SERVER_TABLE) - names == set()


APP_KEYS = sorted(config._APP_KEYS | {limit.name for limit in fields(Limits)})


@pytest.mark.parametrize("name", APP_KEYS)
def test_app_key_has_row(name: str) -> None:
    """Each key of an [[apps]] table, switches and limits included, has a row."""
    assert name in APP_TABLE, f"docs/configuration.md has no [[apps]] row for {name}"


@pytest.mark.parametrize("limit", fields(Limits), ids=lambda limit: limit.name)
def test_limit_row_states_default(limit: Field[int]) -> None:
    row = APP_TABLE.get(limit.name)
    assert row is not None, f"docs/configuration.md has no row for {limit.name}"
    assert row["Default"] == f"`{limit.default}`"


def test_app_rows_are_keys() -> None:
    assert set(APP_TABLE) - set(APP_KEYS) == set()


def test_webhook_keys_have_rows() -> None:
    assert set(WEBHOOK_TABLE) == config._WEBHOOK_KEYS
