"""The process's log output, configured once by the CLI: text lines stamped in UTC
(ISO 8601 with ``Z``) or one JSON object per line, and the optional HTTP access log."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")
ACCESS_LOGGER = "aiohttp.access"
ACCESS_FORMAT = '%a "%r" %s %b %Tf "%{User-Agent}i"'
"""One access-log message: client address, request line, status, response bytes, seconds
taken, user agent. No timestamp of its own: the log line carries one (in UTC)."""


def utc_iso(created: float) -> str:
    """``2026-11-28T07:15:00.123Z`` for a ``LogRecord.created`` (epoch seconds)."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``, the traceback on the following lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_iso(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, as in the text format), ``level``, ``logger``,
    ``message``, and ``exc`` (the formatted traceback) only when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, log_format: str, access_log: bool = False) -> None:
    """Send every record to stderr in ``log_format`` ("text" or "json") from ``level`` up.
    Like ``logging.basicConfig``, it leaves a root logger that already has handlers alone
    (a program embedding ``main()``, or pytest). ``access_log`` turns on aiohttp's access
    log at INFO whatever ``level`` says: asking for it means wanting it."""
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
