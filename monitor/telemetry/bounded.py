"""Label values the upstream chooses, kept bounded: the served model names of a target.

`gen_ai_response_model` comes from the server's answers, not from the config. A server that names a model per
call (a proxy that appends a request id, a deployment id that rotates) would add a set of histogram series for
every call, per canary, until the daemon and the Prometheus scraping it ran out of memory. Each target keeps the
first `MAX_RESPONSE_MODELS` names it served; calls naming another are exported under `OTHER`, with one warning per
target saying so (the stored observations, traces and drift events keep the real name).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

MAX_RESPONSE_MODELS = 16  # distinct served model names exported per target; a model rotation a month fits years
OTHER = "_OTHER"  # the OpenTelemetry conventions' fallback for a value past a label's bound (as for error.type)

log = logging.getLogger("monitor.telemetry")


class BoundedLabel:
    """Per key (a target), the first `limit` values seen pass as they are; later new ones become `OTHER`."""

    def __init__(self, what: str, limit: int = MAX_RESPONSE_MODELS) -> None:
        self.what, self.limit = what, limit
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def label(self, key: str, value: str) -> str:
        """The label value to export for `value` (empty stays empty: no answer named one)."""
        if not value:
            return value
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if value in seen:
                return value
            if len(seen) < self.limit:
                seen.add(value)
                return value
            first = key not in self._warned
            self._warned.add(key)
        if first:
            log.warning("target %s: more than %d distinct %s values; calls naming a new one are exported as %s "
                        "(their observations keep the name; a restart, or a reload that removes the target, starts "
                        "the count again)", key, self.limit, self.what, OTHER, extra={"target": key, "value": value})
        return OTHER

    def keep(self, keys: Iterable[str]) -> None:
        """Forget the keys not in `keys` (targets a reload removed, whose series went with them)."""
        keep = set(keys)
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if k in keep}
            self._warned &= keep
