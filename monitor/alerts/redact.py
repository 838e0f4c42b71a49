"""Keep sink secrets out of logs written by the HTTP library (httpx logs each request's full URL at INFO)."""

from __future__ import annotations

import logging
import threading

_LOGGERS = ("httpx", "httpcore")
_lock = threading.Lock()
_secrets: set[str] = set()
_longest_first: tuple[str, ...] = ()  # `_secrets` ordered once at `register`: a secret URL before its pieces


class RedactSecrets(logging.Filter):
    """Replace every registered secret in a record's rendered message with <redacted>."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _longest_first
        if not secrets:
            return True
        msg = record.getMessage()
        clean = msg
        for s in secrets:  # the longest first (`Sink.secrets`): a piece would cut a longer one short
            clean = clean.replace(s, "<redacted>")
        if clean != msg:
            record.msg, record.args = clean, ()
        return True


_FILTER = RedactSecrets()


def register(*secrets: str) -> None:
    """Remember secrets to scrub from HTTP library logs; installs the filter once."""
    global _longest_first
    with _lock:
        _secrets.update(s for s in secrets if s)
        _longest_first = tuple(sorted(_secrets, key=len, reverse=True))
        for name in _LOGGERS:
            lg = logging.getLogger(name)
            if _FILTER not in lg.filters:
                lg.addFilter(_FILTER)
