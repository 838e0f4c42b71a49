"""Structured logs to stderr: one JSON object per line (or plain text for people at a terminal)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from monitor.escapes import printable

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
    a traceback or stack; their control characters escaped as the console writes them (`\\x1b`), as the JSON
    format's are."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name); a traceback follows
        extras = [f" {k}={_logfmt(v)}" for k, v in vars(record).items() if k not in _STD]
        return printable(super().formatMessage(record) + "".join(extras))

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name); the exception's text is others'
        return printable(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        return printable(super().formatStack(stack_info))


def _logfmt(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n\t') else text


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
