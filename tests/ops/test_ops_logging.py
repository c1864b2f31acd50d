"""Log output: readable text lines by default, JSON lines with
--log-format json that carry app_id and socket_id, and no secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable

import pytest
from clarion_e2e import ApiClient, open_established, wait_for_log
from ops_helpers import lines_of

from clarion.logs import JsonFormatter
from clarion.server.config import ConfigError, load_settings
from server_process import ServerProcess

SECRET = "secret-that-must-never-be-logged"
CONFIG = f"""
[[apps]]
id = "7"
key = "logged-key"
secret = "{SECRET}"
"""
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO clarion\.server\.app: Listening on"
)


async def test_json_logs_carry_app_and_socket_ids(
    start_server: Callable[..., ServerProcess],
) -> None:
    """With --log-format json every line parses, and a connection's error line
    carries its app_id and socket_id."""
    server = start_server(CONFIG, args=("--log-format", "json"))
    server.key = "logged-key"
    client = await open_established(server.ws_url)
    await client.send_text("not json")
    await client.recv_frame()
    socket_id = client.socket_id
    matches = await wait_for_log(
        server.log_path, 0, lambda line: socket_id is not None and socket_id in line
    )
    api = ApiClient(server.host, server.port, "7", "logged-key", SECRET)
    await api.trigger({"name": "e", "channel": "c", "data": "d"})
    await client.close()
    server.stop()

    records = [json.loads(line) for line in lines_of(server.log_text())]
    rejected = [
        record for record in records if record["message"].startswith("[app 7, socket")
    ]
    assert matches
    assert all(
        set(record) >= {"time", "level", "logger", "message"} for record in records
    )
    assert rejected
    assert rejected[0]["app_id"] == "7"
    assert rejected[0]["socket_id"] == socket_id
    assert rejected[0]["level"] == "INFO"
    assert any(record["message"] == "Stopped" for record in records)
    assert SECRET not in server.log_text()


def test_environment_app_warning_logged_as_json(
    start_server: Callable[..., ServerProcess],
) -> None:
    """serve logs the warning that CLARION_APP_* replace the file's apps in the
    configured format, once logging is set up."""
    environment = {
        "CLARION_APP_ID": "42",
        "CLARION_APP_KEY": "environment-key",
        "CLARION_APP_SECRET": "environment-secret-value",
    }
    server = start_server(CONFIG, args=("--log-format", "json"), env=environment)
    server.stop()

    records = [json.loads(line) for line in lines_of(server.log_text())]
    warnings = [
        record for record in records if record["logger"] == "clarion.server.config"
    ]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "WARNING"
    assert "(ids: 7)" in warnings[0]["message"]
    assert SECRET not in server.log_text()
    assert "environment-secret-value" not in server.log_text()


def test_text_logs_are_readable_lines(server: ServerProcess) -> None:
    """By default the log is plain lines: time, level, logger, message."""
    server.stop()
    first = next(line for line in lines_of(server.log_text()) if "Listening on" in line)
    assert TEXT_LINE.match(first), first


def test_json_formatter_keeps_only_context_fields() -> None:
    """A JSON line has app_id and socket_id from `extra`, the traceback, and
    no other extra attribute."""
    try:
        raise ValueError("broken")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "clarion.test", logging.ERROR, __file__, 1, "Failed %s", ("here",), exc_info
    )
    record.app_id = "7"
    record.socket_id = "1.2"
    record.secret = SECRET
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Failed here"
    assert line["level"] == "ERROR"
    assert line["logger"] == "clarion.test"
    assert line["app_id"] == "7"
    assert line["socket_id"] == "1.2"
    assert "ValueError: broken" in line["exception"]
    assert line["time"].endswith("Z")
    assert SECRET not in json.dumps(line)


def test_settings_reject_unknown_log_format() -> None:
    """CLARION_LOG_FORMAT accepts only text and json."""
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(environ={"CLARION_LOG_FORMAT": "xml"})


def test_settings_read_operations_variables() -> None:
    """The metrics, capacity and log settings come from CLARION_* variables."""
    settings = load_settings(
        environ={
            "CLARION_METRICS_PORT": "9100",
            "CLARION_MAX_NODE_CONNECTIONS": "5000",
            "CLARION_MEMORY_LIMIT_MB": "2048",
            "CLARION_LOG_FORMAT": "json",
        }
    )
    assert settings.metrics_port == 9100
    assert settings.max_node_connections == 5000
    assert settings.memory_limit_mb == 2048
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("CLARION_METRICS_PORT", "6001"),
        ("CLARION_METRICS_PORT", "70000"),
        ("CLARION_MAX_NODE_CONNECTIONS", "-1"),
        ("CLARION_MEMORY_LIMIT_MB", "-5"),
    ],
)
def test_settings_reject_invalid_operations_values(variable: str, raw: str) -> None:
    """A metrics port equal to the main port or out of range, and negative
    limits, are configuration errors."""
    with pytest.raises(ConfigError, match=variable.removeprefix("CLARION_").lower()):
        load_settings(environ={variable: raw})
