"""Log output of the ``clarion`` commands: readable text lines, or one JSON
object per line for log collectors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "configure_logging",
    "held_records",
    "replay_records",
]

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("app_id", "socket_id")
"""Attributes that a log call may pass with ``extra=`` for JSON lines to carry.
Other ``extra`` attributes are left out, so that nothing unexpected, such as a
secret, reaches the output."""


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: ``time`` (UTC, ISO 8601), ``level``,
    ``logger`` and ``message``, then ``app_id`` and ``socket_id`` when the call
    passed them, and ``exception`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send log records of ``level`` and above to standard error in
    ``log_format``, ``text`` or ``json``."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


class _RecordList(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def held_records() -> Iterator[list[logging.LogRecord]]:
    """Collect the records that ``clarion`` loggers emit inside the block,
    without emitting them, for ``replay_records`` to emit once
    ``configure_logging`` has run."""
    records: list[logging.LogRecord] = []
    handler = _RecordList(records)
    logger = logging.getLogger("clarion")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def replay_records(records: list[logging.LogRecord]) -> None:
    """Emit records collected by ``held_records`` at the configured level."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
