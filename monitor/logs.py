"""Structured logs to stderr: one JSON object per line (or plain text for people at a terminal)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from monitor.escapes import logged, single_line

# uvicorn adds `color_message` (its message with ANSI colours) to its records: the plain message is already there
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines with time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """Format records for people: time, level, logger, message, then `extra=` fields as key=value (logfmt), then
    a traceback or stack. A record's first line is all of it but the traceback: line breaks in its message (a
    completion's, a receiver's error) are escaped (`\\n`), as their control characters are (`\\x1b`, as the console
    writes them) and a backslash (`\\\\`, so no escape is mistaken for what was logged), so text others wrote can not
    forge a record of its own; a field value needing any escape is quoted as a JSON string, as logfmt tools read
    one (`reply="a\\nb"`). Each line of a traceback or stack begins with `  | `, marking it as the record's, and is
    escaped as the message is."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # not logging's: it caches a traceback's text on the record, where another handler's formatter may have put
        # it unmarked
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        lines = [self.formatMessage(record)]
        if record.exc_info:
            lines += _continued(self.formatException(record.exc_info))
        if record.stack_info:
            lines += _continued(self.formatStack(record.stack_info))
        return "\n".join(lines)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        extras = [f" {logged(k)}={_logfmt(v)}" for k, v in vars(record).items() if k not in _STD]
        return logged(super().formatMessage(record)) + "".join(extras)


def _continued(text: str) -> list[str]:
    """A traceback's or stack's lines, each marked as a record's continuation; breaks within a line escaped."""
    return [_CONTINUED + logged(line) for line in text.rstrip("\n").split("\n")]


_CONTINUED = "  | "


def _logfmt(value: object) -> str:
    """A field's value as logfmt writes it: bare, or quoted as a JSON string (ASCII, every escape JSON's) when it is
    empty or holds a space, tab, `"`, `=`, a backslash or a character `single_line` escapes."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    plain = text and not any(c in text for c in ' "=\t\\') and single_line(text) == text
    return text if plain else json.dumps(text)  # ASCII-only: every control, DEL and non-ASCII character escaped


NOISY_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "apscheduler", "alembic", "uvicorn.access")


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    """Send logs to stderr in the chosen format; quiet the chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
