"""What the config in force watches, for telling stored drift events apart: its canary x target pairs, and their
checks (a check's drift signal is `check:NAME`). An open event of anything else stays open, nothing watching it:
`drift` shows it `open (not configured)`, `--json` and `/api/drift` `"configured": false`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.checks import check_names
from monitor.drift.names import check_of


@dataclass(frozen=True)
class Configured:
    """The configured pairs (canary, target) and checks (canary, target, result name)."""

    pairs: frozenset[tuple[str, str]] = frozenset()
    checks: frozenset[tuple[str, str, str]] = frozenset()

    @classmethod
    def of(cls, pairs: Iterable[tuple[Any, Any]]) -> Configured:
        """From a config's `pairs()`: (canary, target) config objects."""
        pairs = list(pairs)
        return cls(frozenset((c.id, t.id) for c, t in pairs),
                   frozenset((c.id, t.id, name) for c, t in pairs for name in check_names(c.checks)))

    def event(self, row: Mapping[str, Any]) -> bool:
        """Whether a stored event (its canary, target, signal) is of a configured pair and, on a check's signal, of
        a check the pair still has."""
        return self.signal(row["canary"], row["target"], str(row.get("signal") or ""))

    def signal(self, canary: str, target: str, signal: str) -> bool:
        """Whether the pair is configured and, for a check's signal `check:NAME`, still has that check."""
        check = check_of(signal)
        return (canary, target) in self.pairs and (check is None or (canary, target, check) in self.checks)
